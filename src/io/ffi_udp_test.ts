// The FFI backend on loopback (real sockets, no root): batched sends arrive whole and in order per
// destination, with UDP GSO grouping and without it.
import assert from "node:assert/strict";
import { FfiUdpBackend } from "./ffi_udp.ts";
import type { PeerAddress } from "./address.ts";
import { registry } from "../telemetry/catalog.ts";

function segmentedTotal(): number {
  const m = registry.snapshot().find((s) => s.name === "xrtc_udp_gso_datagrams_total");
  return m?.series.reduce((n, s) => n + s.value, 0) ?? 0;
}

async function exchange(gso: boolean) {
  const backend = FfiUdpBackend.open({ gso });
  const got = new Map<string, string[]>();
  const sinks = [0, 1].map(() =>
    backend.bind({ host: "127.0.0.1", port: 0 }, (data, _from, socket) => {
      const key = socket.localAddress.text;
      const list = got.get(key) ?? [];
      list.push(`${data.length}:${new TextDecoder().decode(data.subarray(0, 12))}`);
      got.set(key, list);
    })
  );
  const source = backend.bind({ host: "127.0.0.1", port: 0 }, () => {});
  const before = segmentedTotal();
  // One flush: 40 datagrams of 1,200 bytes interleaved to two sinks, then a shorter last one to the
  // first, then a large one that goes alone.
  const sent = new Map<string, string[]>();
  const send = (to: PeerAddress, size: number, tag: string) => {
    const data = new Uint8Array(size).fill(0x61);
    data.set(new TextEncoder().encode(tag.padEnd(12, ".")));
    source.send(data, to);
    const list = sent.get(to.text) ?? [];
    list.push(`${size}:${tag.padEnd(12, ".")}`);
    sent.set(to.text, list);
  };
  for (let i = 0; i < 40; i++) send(sinks[i % 2].localAddress, 1200, `p${i}`);
  send(sinks[0].localAddress, 700, "short");
  send(sinks[0].localAddress, 1200, "after");
  send(sinks[1].localAddress, 3000, "big");
  const deadline = Date.now() + 3000;
  const total = () => [...got.values()].reduce((n, l) => n + l.length, 0);
  while (total() < 43 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const segmented = segmentedTotal() - before;
  for (const s of [...sinks, source]) s.close();
  await backend.close();
  return { sent, got, segmented };
}

Deno.test("ffi backend: batched datagrams arrive whole, in order per destination, with UDP GSO", async () => {
  const r = await exchange(true);
  for (const [to, list] of r.sent) assert.deepEqual(r.got.get(to), list, to);
  assert.ok(r.segmented >= 40, `datagrams sent as GSO segments: ${r.segmented}`);
});

Deno.test("ffi backend: the same without GSO (options.udp_gso: false)", async () => {
  const r = await exchange(false);
  for (const [to, list] of r.sent) assert.deepEqual(r.got.get(to), list, to);
  assert.equal(r.segmented, 0);
});
