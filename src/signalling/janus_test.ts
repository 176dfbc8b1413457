import assert from "node:assert/strict";
import { type ClientContext, JanusSignalling, type JsonObject, rewriteJanusText } from "./janus.ts";
import { BackendPool } from "./backends.ts";
import { defaultOptions } from "../config/load.ts";

const ANSWER = Deno.readTextFileSync(new URL("../../tests/fixtures/janus-answer.sdp", import.meta.url));
const OFFER = Deno.readTextFileSync(new URL("../../tests/fixtures/chromium-offer.sdp", import.meta.url));
const pool = BackendPool.fromUrl("http://127.0.0.1:1", {
  intervalMs: 1000,
  timeoutMs: 100,
  fall: 1,
  rise: 1,
});
const ctx: ClientContext = {
  protocol: "http",
  client: "198.19.0.2",
  route: { icedirect: false, icetcp: false },
  pool,
};

function signalling(): JanusSignalling {
  const o = defaultOptions();
  return new JanusSignalling(undefined, { limits: o.limits, timers: o.janus });
}

/** A Janus session and handle as Janus issued them (create and attach answered with success). */
function open(sig: JanusSignalling, sid: number, hid: number): void {
  const c = sig.fromClient({ janus: "create", transaction: "c" }, ctx);
  assert.equal(c.action, "forward");
  if (c.action === "forward") {
    sig.replied(c.pending, { janus: "success", transaction: "c", data: { id: sid } }, pool.backends[0]);
  }
  const a = sig.fromClient({ janus: "attach", transaction: "a", plugin: "janus.plugin.echotest" }, {
    ...ctx,
    sessionId: String(sid),
  });
  assert.equal(a.action, "forward");
  if (a.action === "forward") {
    sig.replied(a.pending, { janus: "success", transaction: "a", data: { id: hid } }, pool.backends[0]);
  }
}

Deno.test("messages xRTC does not change pass as their original text: unknown fields and big ids survive", () => {
  const sig = signalling();
  const text =
    '{"janus":"event","session_id":12345678901234567890,"sender":1,"x-unknown":{"deep":[1,2,3]},"plugindata":{}}';
  assert.equal(rewriteJanusText(text, sig, {}, undefined), text);
  const arr = '[{"janus":"keepalive"},{"janus":"webrtcup","session_id":1,"sender":2,"extra":true}]';
  assert.equal(rewriteJanusText(arr, sig, {}, undefined), arr);
  assert.equal(rewriteJanusText("not json", sig, {}, undefined), "not json");
});

Deno.test("maxev arrays: Janus trickles are removed, the other events kept in order", () => {
  const sig = signalling();
  const arr = JSON.stringify([
    {
      janus: "trickle",
      session_id: 1,
      sender: 2,
      candidate: { sdpMid: "0", candidate: "candidate:1 1 udp 1 198.18.0.2 4000 typ host" },
    },
    {
      janus: "event",
      session_id: 1,
      sender: 2,
      plugindata: { data: { result: "ok" } },
      unknown_field: "kept",
    },
    { janus: "trickle", session_id: 1, sender: 2, candidate: { completed: true } },
  ]);
  const out = JSON.parse(rewriteJanusText(arr, sig, {}, undefined)!);
  assert.deepEqual(out, [{
    janus: "event",
    session_id: 1,
    sender: 2,
    plugindata: { data: { result: "ok" } },
    unknown_field: "kept",
  }]);
  // A single swallowed long-poll event becomes the replacement (a keepalive for janus.js).
  const single = JSON.stringify({
    janus: "trickle",
    session_id: 1,
    sender: 2,
    candidate: { completed: true },
  });
  assert.equal(rewriteJanusText(single, sig, {}, '{"janus":"keepalive"}'), '{"janus":"keepalive"}');
});

Deno.test("client trickles are answered with the ack Janus would send and never forwarded", () => {
  const sig = signalling();
  open(sig, 77, 88);
  const v = sig.fromClient({
    janus: "trickle",
    transaction: "t1",
    candidate: { candidate: "candidate:1 1 udp 1 198.19.0.2 5 typ host" },
  }, { ...ctx, sessionId: "77", handleId: "88" });
  assert.deepEqual(v, {
    action: "reply",
    reply: { janus: "ack", transaction: "t1", session_id: 77 },
    status: 200,
  });
});

Deno.test("candidates never cross; jsep without ids is stripped", () => {
  const sig = signalling();
  open(sig, 5, 6);
  const offer: JsonObject = {
    janus: "message",
    transaction: "t",
    body: { audio: true },
    jsep: { type: "offer", sdp: OFFER + "a=candidate:9 1 udp 1 198.19.0.2 5000 typ host\r\n" },
  };
  const v = sig.fromClient(offer, { ...ctx, sessionId: "5", handleId: "6" });
  assert.equal(v.action, "forward");
  assert.ok(v.action === "forward" && v.changed);
  assert.ok(!((offer.jsep as JsonObject).sdp as string).includes("198.19.0.2"));
  assert.deepEqual(offer.body, { audio: true });
  const ev: JsonObject = { janus: "event", session_id: 5, sender: 6, jsep: { type: "answer", sdp: ANSWER } };
  assert.equal(sig.fromJanus(ev, {}), "changed");
  assert.ok(!((ev.jsep as JsonObject).sdp as string).includes("198.18.0.2"));
  const orphan: JsonObject = { janus: "event", jsep: { type: "answer", sdp: ANSWER } };
  assert.equal(sig.fromJanus(orphan, {}), "changed");
  assert.ok(!((orphan.jsep as JsonObject).sdp as string).includes("a=candidate"));
  const d = sig.fromClient({ janus: "destroy", transaction: "d" }, { ...ctx, sessionId: "5" });
  assert.equal(sig.sessions.size, 1, "a destroy takes effect only when Janus says success");
  if (d.action === "forward") {
    sig.replied(d.pending, { janus: "success", transaction: "d" }, pool.backends[0]);
  }
  assert.equal(sig.sessions.size, 0);
});

Deno.test("a bad SDP from the client gets a Janus-style error reply, not a crash", () => {
  const sig = signalling();
  open(sig, 5, 6);
  const v = sig.fromClient({ janus: "message", transaction: "t", jsep: { type: "offer", sdp: "garbage" } }, {
    ...ctx,
    sessionId: "5",
    handleId: "6",
  });
  assert.equal(v.action, "reply");
  if (v.action === "reply") {
    assert.equal(v.reply.janus, "error");
    assert.equal((v.reply.error as JsonObject).code, 465);
  }
});
