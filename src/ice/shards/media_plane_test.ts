// Two shards without sockets or workers: two media planes on one claim board, each with its own socket
// (on the wire they share one port through SO_REUSEPORT), handing packets to each other.
import assert from "node:assert/strict";
import { mustPeer } from "../../io/address.ts";
import { type MemoryBackend, MemoryNetwork } from "../../io/memory_udp.ts";
import { randomCredentials } from "../credentials.ts";
import { ClaimBoard } from "./claims.ts";
import { TIMING } from "../timing.ts";
import type { MediaPlane } from "./media_plane.ts";
import {
  facing,
  halfSpec,
  ICE_PORT,
  JANUS_ADDR,
  type PlaneHarness,
  planeHarness,
  srtp,
  TestClient,
  TestJanus,
  XRTC_PUBLIC,
} from "../test_support.ts";
import { type FrameSink, TcpClientPort, type TcpRelay } from "../demux/ice_tcp.ts";
import { BINDING_SUCCESS, parseStun } from "../../stun/message.ts";
import { drops, handoffPackets, internalErrors, registry } from "../../telemetry/catalog.ts";

/** Opens a half-proxy session on the plane and makes it live with its client's nominating check (the
 * client at 198.19.0.2, port 50000 + `i`). */
function goLive(h: PlaneHarness, backend: MemoryBackend, janus: TestJanus, id: string, i: number): void {
  const creds = randomCredentials();
  const spec = halfSpec(h.claims, janus, creds, id);
  h.plane.open(spec);
  new TestClient(
    h.net,
    backend,
    mustPeer("198.19.0.2", 50000 + i),
    creds,
    facing(spec),
    mustPeer(XRTC_PUBLIC, ICE_PORT),
  )
    .sendCheck({ nominate: true });
  h.settle();
}

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

/** A main thread that serves no UDP port and relays ICE-TCP connections to a worker shard (ShardSet's
 * part played by a map), one session opened on both, and its client. */
function relayedPair() {
  const net = new MemoryNetwork();
  const claims = ClaimBoard.create(16);
  /** The main thread's relayed connections: id -> where the worker's writes go. */
  const sinks = new Map<number, FrameSink>();
  const relay: TcpRelay = {
    relayOpen: (_shard, id, peer, port, sink) => {
      sinks.set(id, sink);
      worker.plane.relayedTcpOpen(id, peer, port);
    },
    relayFrame: (_shard, id, frame) => worker.plane.relayedTcpFrame(id, frame.slice()),
    relayClosed: (_shard, id) => {
      sinks.delete(id);
      worker.plane.relayedTcpClosed(id);
    },
  };
  const worker = planeHarness({
    net,
    claims,
    shard: 1,
    relaying: {
      relayBack: {
        send: (id, data) => sinks.get(id)?.sendFrame(data.slice()),
        close: (id, reason) => {
          const sink = sinks.get(id);
          sinks.delete(id);
          sink?.close(reason);
        },
      },
    },
  });
  const main = planeHarness({
    net,
    claims,
    shard: 0,
    port: false,
    relaying: { claimFor: () => 1, tcpRelay: relay },
  });
  const backend = net.backend();
  const janus = new TestJanus(net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  const clientCreds = randomCredentials();
  const spec = halfSpec(claims, janus, clientCreds);
  main.plane.open(structuredClone(spec));
  worker.plane.open(structuredClone(spec));
  const client = new TestClient(net, backend, mustPeer("198.19.0.2", 50000), clientCreds, facing(spec));
  /** The client's connection as the main thread's TCP port serves it: what it writes, why it closed. */
  const connection = (id: number) => {
    const written: Uint8Array[] = [];
    const closed: string[] = [];
    const port: TcpClientPort = new TcpClientPort(id, mustPeer("198.19.0.2", 50001), main.plane, "tcp", {
      sendFrame: (d) => written.push(d.slice()),
      close: (reason) => {
        closed.push(reason);
        port.ended();
      },
    }, relay);
    return { port, written, closed };
  };
  return { claims, sinks, worker, main, janus, spec, client, connection };
}

Deno.test("a session first checked over ICE-TCP on a main thread without UDP ports lives on a worker: the connection is relayed there, and its UDP path joins it", () => {
  const { claims, sinks, worker, main, janus, spec, client, connection } = relayedPair();
  const conn = connection(7);
  const otherShardBefore = drops.value({ reason: "tcp_session_on_other_shard" });

  conn.port.onFrame(client.check({ pwd: "not-the-password-at-all-0" }));
  assert.equal(conn.port.proven, false, "a forged check neither claims nor relays");
  assert.equal(sinks.size, 0);

  conn.port.onFrame(client.check({ nominate: true }));
  worker.settle();
  assert.equal(conn.port.proven, true);
  assert.equal(main.plane.table.liveCount, 0, "the main thread claimed it for the worker, not for itself");
  assert.equal(worker.plane.table.liveCount, 1, "live on the worker");
  assert.equal(claims.owner(spec.ticket), 1);
  const answers = conn.written.map((f) => parseStun(f)).filter((m) => m.type === BINDING_SUCCESS);
  assert.equal(answers.length, 1, "the worker's answer went back over the connection");

  worker.advance(200);
  conn.port.onFrame(srtp(1));
  worker.settle();
  assert.equal(janus.media.length, 1, "media over the relayed connection reached Janus");

  client.sendCheck({ nominate: true });
  worker.settle();
  assert.equal(client.responses.length, 1, "the UDP path, on the same shard, is answered");
  client.send(srtp(2));
  worker.settle();
  assert.equal(janus.media.length, 2, "and its media reaches Janus");
  assert.equal(drops.value({ reason: "tcp_session_on_other_shard" }), otherShardBefore);

  // The session ends on the worker: the connection on the main thread closes, and nothing is left.
  worker.plane.end(spec.id, "client_hangup");
  assert.deepEqual(conn.closed, ["session closed"]);
  assert.equal(sinks.size, 0);
  conn.port.onFrame(srtp(3));
  assert.equal(janus.media.length, 2);
});

Deno.test("a relayed connection that ends on the main thread frees its path on the worker; the session keeps its UDP path", () => {
  const { sinks, worker, janus, client, connection } = relayedPair();
  const conn = connection(8);
  conn.port.onFrame(client.check({ nominate: true }));
  client.sendCheck({ nominate: true });
  worker.settle();
  worker.advance(200);
  assert.equal(worker.plane.table.liveCount, 1);

  conn.port.ended(); // the client closed the connection
  assert.equal(sinks.size, 0, "the main thread forgot it");
  worker.advance(200);
  client.send(srtp(1));
  worker.settle();
  assert.equal(worker.plane.table.liveCount, 1, "the session lives on over UDP");
  assert.equal(janus.media.length, 1);
  assert.equal(conn.closed.length, 0, "closed by the client, not by xRTC");
});

Deno.test("a session whose maintenance or check pacing throws is ended (internal_error); the others are still served", () => {
  const h = planeHarness();
  const backend = h.net.backend();
  const janus = new TestJanus(h.net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  ["1/2", "1/3", "1/4"].forEach((id, i) => goLive(h, backend, janus, id, i));
  assert.equal(h.plane.table.liveCount, 3);
  const session = (id: string) => h.plane.table.byId(id)!.session!;
  // Fault injection: the first session's maintenance throws, the second's check pacing; the third is
  // left as it is and must go on being maintained.
  session("1/2").maintain = () => {
    throw new Error("maintenance fault");
  };
  const paced = session("1/3");
  paced.tick = () => {
    throw new Error("tick fault");
  };
  // A trickled Janus candidate puts the session back on the check-pacing timer.
  h.plane.update("1/3", { kind: "janusCandidate", candidate: janus.candidate() });
  let maintained = 0;
  const healthy = session("1/4");
  const maintain = healthy.maintain.bind(healthy);
  healthy.maintain = (now) => {
    maintained++;
    return maintain(now);
  };
  const errorsBefore = internalErrors.value({ where: "session_timer" });
  h.advance(5_000, 1_000);
  assert.deepEqual(
    h.ended.map((e) => `${e.id} ${e.reason}`).sort(),
    ["1/2 internal_error", "1/3 internal_error"],
  );
  assert.equal(internalErrors.value({ where: "session_timer" }) - errorsBefore, 2);
  assert.equal(h.plane.table.liveCount, 1);
  // The third is still maintained: its client sends no consent checks, so it ends when consent runs out.
  h.advance(40_000, 1_000);
  assert.ok(maintained >= 3, `the healthy session was maintained ${maintained} times`);
  assert.deepEqual(h.ended.at(-1), { id: "1/4", reason: "consent_expired" });
});

Deno.test("a plane whose sessions have nothing due sleeps until one has: maintenance runs when due, not every tick", () => {
  const h = planeHarness({ periodic: true });
  const periodic = h.periodic!;
  const backend = h.net.backend();
  const janus = new TestJanus(h.net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  ["1/2", "1/3", "1/4"].forEach((id, i) => goLive(h, backend, janus, id, i));
  assert.equal(h.plane.table.liveCount, 3);
  h.advance(1_000, 5); // the Janus legs come up
  const stunBefore = janus.requests.length + janus.responses.length;
  const runsBefore = periodic.runs.get(TIMING.maintenanceTickMs) ?? 0;
  // 20 s in steps of 5 ms: a task run every tick would run 1,000 times.
  h.advance(20_000, 5);
  const runs = (periodic.runs.get(TIMING.maintenanceTickMs) ?? 0) - runsBefore;
  assert.ok(runs > 0 && runs < 100, `maintenance ran ${runs} times in 20 s`);
  assert.ok(
    janus.requests.length + janus.responses.length > stunBefore,
    "the Janus legs were kept alive meanwhile",
  );
  // A session going live while the task sleeps is maintained within a tick.
  const sleeping = periodic.runs.get(TIMING.maintenanceTickMs) ?? 0;
  goLive(h, backend, janus, "1/5", 3);
  h.advance(TIMING.maintenanceTickMs, 5);
  assert.ok(
    (periodic.runs.get(TIMING.maintenanceTickMs) ?? 0) > sleeping,
    "a new live session woke the maintenance task",
  );
  // The first three sessions' clients sent their last check 21 s ago: their consent (30 s) runs out on
  // time, though the task sleeps between due times.
  h.advance(8_900, 5);
  assert.equal(h.ended.length, 0, "no consent ran out early");
  h.advance(200, 5);
  assert.deepEqual(h.ended.map((e) => `${e.id} ${e.reason}`).sort(), [
    "1/2 consent_expired",
    "1/3 consent_expired",
    "1/4 consent_expired",
  ]);
  h.advance(31_000, 5);
  assert.equal(h.plane.table.liveCount, 0);
  assert.deepEqual(periodic.active(), [], "no task runs for a plane without sessions");
});
