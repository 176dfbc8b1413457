import assert from "node:assert/strict";
import { encodeCommand, RespDecoder, RespError, RespProtocolError, type RespValue } from "./resp.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

function decodeAll(text: string, chunk = text.length): RespValue[] {
  const d = new RespDecoder();
  const out: RespValue[] = [];
  const b = bytes(text);
  for (let i = 0; i < b.length; i += chunk) {
    d.push(b.subarray(i, i + chunk));
    for (let r = d.next(); r; r = d.next()) out.push(r.value);
  }
  return out;
}

Deno.test("RESP: a command is an array of bulk strings, byte lengths for UTF-8", () => {
  assert.equal(
    new TextDecoder().decode(encodeCommand(["SET", "k", "vé"])),
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n",
  );
});

Deno.test("RESP: every reply type, whole and one byte at a time", () => {
  const text =
    "+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:-7\r\n*-1\r\n$0\r\n\r\n";
  const want: RespValue[] = ["OK", new RespError("ERR wrong"), 42, "hello", null, ["a", [-7]], null, ""];
  assert.deepEqual(decodeAll(text), want);
  assert.deepEqual(decodeAll(text, 1), want);
});

Deno.test("RESP: a partial reply waits for its bytes; nothing is lost between pushes", () => {
  const d = new RespDecoder();
  d.push(bytes("*2\r\n$3\r\nfo"));
  assert.equal(d.next(), undefined);
  d.push(bytes("o\r\n:1"));
  assert.equal(d.next(), undefined);
  d.push(bytes("\r\n+NEXT\r\n"));
  assert.deepEqual(d.next(), { value: ["foo", 1] });
  assert.deepEqual(d.next(), { value: "NEXT" });
  assert.equal(d.next(), undefined);
});

Deno.test("RESP: what is not RESP, or over the limits, is a protocol error", () => {
  for (
    const bad of [
      "?what\r\n",
      ":12x\r\n",
      "$99999999\r\n",
      "*9999999\r\n",
      "$3\r\nabcXY",
      "+" + "x".repeat(70_000),
      "*1\r\n".repeat(20) + ":1\r\n",
    ]
  ) {
    const d = new RespDecoder();
    d.push(bytes(bad));
    assert.throws(() => d.next(), RespProtocolError, JSON.stringify(bad.slice(0, 20)));
  }
});
