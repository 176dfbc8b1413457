// Two shards without sockets or workers: two media planes on one claim board, each with its own socket
// (on the wire they share one port through SO_REUSEPORT), handing packets to each other.
import assert from "node:assert/strict";
import { mustPeer } from "../../io/address.ts";
import { MemoryNetwork } from "../../io/memory_udp.ts";
import { randomCredentials } from "../credentials.ts";
import { ClaimBoard } from "./claims.ts";
import type { MediaPlane } from "./media_plane.ts";
import { facing, halfSpec, JANUS_ADDR, planeHarness, srtp, TestClient, TestJanus } from "../test_support.ts";
import { drops, handoffPackets, registry } from "../../telemetry/catalog.ts";

Deno.test("a session is claimed once; an address that lands on the other shard is handed to the owner, then dropped after the end", () => {
  const net = new MemoryNetwork();
  const claims = ClaimBoard.create(16);
  const planes: MediaPlane[] = [];
  const handoff = (shard: number, port: string, data: Uint8Array, from: ReturnType<typeof mustPeer>) =>
    planes[shard].inject(port, data, from);
  const a = planeHarness({ net, claims, shard: 0, port: 6001, handoff });
  const b = planeHarness({ net, claims, shard: 1, port: 6002, handoff });
  planes.push(a.plane, b.plane);
  const backend = net.backend();
  const janus = new TestJanus(net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  const clientCreds = randomCredentials();
  const spec = halfSpec(claims, janus, clientCreds);
  a.plane.open(structuredClone(spec));
  b.plane.open(structuredClone(spec));
  const x = new TestClient(
    net,
    backend,
    mustPeer("198.19.0.2", 50000),
    clientCreds,
    facing(spec),
    mustPeer("198.19.0.1", 6001),
  );
  const y = new TestClient(
    net,
    backend,
    mustPeer("198.19.0.2", 50001),
    clientCreds,
    facing(spec),
    mustPeer("198.19.0.1", 6002),
  );
  x.sendCheck({ nominate: true });
  a.settle();
  assert.equal(a.plane.table.liveCount, 1, "shard 0 claimed it");
  const outBefore = handoffPackets.value({ direction: "out" }),
    inBefore = handoffPackets.value({ direction: "in" });
  y.sendCheck();
  b.settle();
  a.settle();
  assert.equal(b.plane.table.liveCount, 0, "shard 1 did not build a second session");
  assert.equal(y.responses.length, 1, "the owner answered the address that reached shard 1");
  a.advance(200);
  y.send(srtp(1));
  b.settle();
  a.settle();
  assert.equal(janus.media.length, 1, "its media reached Janus through the owner");
  assert.equal(
    handoffPackets.value({ direction: "out" }) - outBefore,
    handoffPackets.value({ direction: "in" }) - inBefore,
  );
  a.plane.end("1/2", "client_hangup");
  b.plane.end("1/2", "client_hangup");
  const dropsBefore = drops.value({ reason: "unknown_tuple" });
  y.send(srtp(2));
  b.settle();
  assert.equal(
    drops.value({ reason: "unknown_tuple" }),
    dropsBefore + 1,
    "after the end, dropped where it lands",
  );
  assert.equal(janus.media.length, 1);
});

Deno.test("10,000 live sessions add no metric series: no label grows with sessions, clients or addresses", () => {
  const series = () => registry.snapshot().reduce((n, m) => n + m.series.length, 0);
  const h = planeHarness({ claims: ClaimBoard.create(10_001) });
  const backend = h.net.backend();
  const before = series();
  for (let i = 0; i < 10_000; i++) {
    const janus = new TestJanus(h.net, backend, mustPeer(JANUS_ADDR, 10_000 + i), randomCredentials());
    const creds = randomCredentials();
    const spec = halfSpec(h.claims, janus, creds, `${i}/${i}`);
    h.plane.open(spec);
    const client = new TestClient(
      h.net,
      backend,
      mustPeer(`198.19.${i >> 8}.${i & 255}`, 40_000),
      creds,
      facing(spec),
    );
    client.sendCheck({ nominate: true });
    if (i % 500 === 0) h.settle();
  }
  h.settle();
  h.advance(300);
  assert.equal(h.plane.table.liveCount, 10_000);
  assert.equal(series(), before, "the same series with 10,000 sessions as with none");
  assert.equal(registry.refusedSeries, 0);
});
