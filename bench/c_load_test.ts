// bench/c_load.c, built with the machine's gcc and run as the bench runs it: its echo answers checks the
// project's own STUN codec signs and verifies, stamps and echoes media, and its generator drives sockets
// handed over by this process and reads their echoes.
import assert from "node:assert/strict";
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import { buildCheck } from "../src/ice/check.ts";
import {
  Attr,
  BINDING_SUCCESS,
  getAttribute,
  parseStun,
  verifyFingerprint,
  verifyIntegrity,
} from "../src/stun/message.ts";
import { buildC, LineChannel } from "./procs.ts";
import { Stamp, STAMPED_BYTES, wallMs } from "./stamps.ts";

const PWD = "testechopasswordtestecho";
const key = new TextEncoder().encode(PWD);

async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(done(), what);
}

Deno.test("c_load echo: answers authentic checks only, and echoes media stamped", async () => {
  const echo = LineChannel.start(await buildC("c_load"), ["echo", "peer", PWD]);
  const backend = FfiUdpBackend.open({ gso: false, gro: false });
  try {
    const first = Number((await echo.next()).split(" ")[1]);
    const bound = Number((await echo.request("bind")).split(" ")[1]);
    assert.ok(bound > 0 && bound !== first, `a second port (${first}, ${bound})`);
    const got: Uint8Array[] = [];
    const socket = backend.bind({ host: "127.0.0.1", port: 0 }, (data) => void got.push(data.slice()));
    const to: PeerAddress = mustPeer("127.0.0.1", bound);
    const check = (k: Uint8Array, receiverUfrag = "peer") =>
      buildCheck({
        receiverUfrag,
        senderUfrag: "xrtc",
        key: k,
        priority: 1,
        controlling: true,
        tieBreaker: 7n,
      });
    // Refused: a wrong password, another ufrag. Then an authentic one and a packet of media.
    socket.send(check(new TextEncoder().encode("wrong")), to);
    socket.send(check(key, "other"), to);
    const authentic = check(key);
    socket.send(authentic, to);
    const media = new Uint8Array(100);
    media[0] = 0x80;
    const sentAt = wallMs();
    new DataView(media.buffer).setFloat64(Stamp.clientSent, sentAt);
    socket.send(media, to);
    backend.flush();
    await until("two answers", () => got.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got.length, 2, "the refused checks get no answer");
    const response = parseStun(got.find((d) => d[0] <= 3)!);
    assert.deepEqual(response.type, BINDING_SUCCESS);
    assert.deepEqual([...response.transactionId], [...authentic.subarray(8, 20)]);
    assert.ok(verifyIntegrity(response, key), "signed with the peer's password");
    assert.ok(verifyFingerprint(response), "fingerprinted");
    // XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the port XORed with the cookie's high half.
    const mapped = new DataView(getAttribute(response, Attr.XOR_MAPPED_ADDRESS)!.slice().buffer);
    assert.equal(mapped.getUint16(2) ^ 0x2112, socket.localAddress.port);
    const echoed = got.find((d) => d[0] > 3)!;
    assert.deepEqual(echoed.length, 100);
    const v = new DataView(echoed.buffer, 0, STAMPED_BYTES);
    const received = v.getFloat64(Stamp.peerReceived), sent = v.getFloat64(Stamp.peerSent);
    assert.ok(
      received >= sentAt && sent >= received && sent - sentAt < 1_000,
      `stamps ${sentAt} ${received} ${sent}`,
    );
  } finally {
    await echo.close();
    await backend.close();
  }
});

Deno.test("c_load gen: sends for handed-over sockets at a rate and reads their echoes", async () => {
  const binary = await buildC("c_load");
  const echo = LineChannel.start(binary, ["echo", "peer", PWD]);
  const backend = FfiUdpBackend.open({ gso: false, gro: false });
  let gen: LineChannel | undefined;
  try {
    const port = Number((await echo.next()).split(" ")[1]);
    const specs = [0, 1].map((index) =>
      `${backend.handOver(backend.bind({ host: "127.0.0.1", port: 0 }, () => {}))}:0:${index}:${port}`
    );
    gen = LineChannel.start(binary, ["gen", "200", "1", "0", "20000", ...specs]);
    assert.deepEqual(await gen.next(), "GEN 2");
    await gen.send("reset 0");
    assert.deepEqual(await gen.request("send 0 2000 300"), "SENT 600");
    await new Promise((r) => setTimeout(r, 200));
    const stats = JSON.parse((await gen.request("stats 0")).slice(6));
    assert.deepEqual([stats.received, stats.foreign, stats.reordered], [600, 0, 0]);
    for (const p of ["oneWayP50", "oneWayP99", "rttP50"]) {
      assert.ok(stats[p] > 0 && stats[p] < 100, `${p} ${stats[p]} ms`);
    }
    assert.ok(stats.rttP50 >= stats.oneWayP50, "a round trip is longer than a leg");
    await gen.send("reset 0");
    const none = JSON.parse((await gen.request("stats 0")).slice(6));
    assert.deepEqual([none.received, none.oneWayP50], [0, null]);
  } finally {
    await gen?.close();
    await echo.close();
    await backend.close();
  }
});
