// Every core on the one port: xRTC with `workers: 2` (two worker threads, each with its own
// SO_REUSEPORT socket on the shared UDP port, FFI backend; the main thread serves signalling and the
// TCP port) against the real Janus. The kernel spreads client tuples over the two sockets; each session
// is claimed by the shard that received its first authentic check, and tuples that land on the other
// shard are handed to the owner.
import assert from "node:assert/strict";
import {
  assertEcho,
  assertRelayed,
  openEchoSession,
  PORTS,
  readStunResponses,
  runEchotest,
  signedCheck,
  withStack,
} from "./lib/xrtc.ts";
import { sleep, waitFor } from "./lib/run.ts";
import { BINDING_SUCCESS, getXorMappedAddress, parseStun } from "../src/stun/message.ts";
import { encodeFrame } from "../src/io/framing.ts";
import type { Xrtc } from "../src/app.ts";
import { seriesTotal } from "../src/telemetry/exposition.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TWO_SHARDS = {
  options: "  consent_timeout: 30s\n  io_backend: ffi\n  workers: 2",
  ioBackend: "ffi" as const,
};

/** Each shard's tables, and its counters by the metric names of the catalog. */
interface ShardStats {
  shard: number;
  sessions: number;
  specs: number;
  boundTuples: number;
  get(name: string, labels?: Record<string, string>): number;
}

async function shardStats(xrtc: Xrtc): Promise<ShardStats[]> {
  const reports = await xrtc.shards!.reports();
  return reports.map((r) => ({ ...r.report.stats, get: (n, l = {}) => seriesTotal(r.report.metrics, n, l) }));
}

const CLAIMED = "xrtc_sessions_claimed_total";
const DROPS = "xrtc_dropped_packets_total";
const HANDOFF = "xrtc_handoff_packets_total";
const total = (stats: ShardStats[], name: string, labels: Record<string, string> = {}) =>
  stats.reduce((n, s) => n + s.get(name, labels), 0);

Deno.test("two worker shards on one UDP port: werift echotests end to end on both", opts, async () => {
  await withStack({ xrtc: TWO_SHARDS }, async ({ topo, xrtc, base }) => {
    assert.equal(xrtc.shards!.count, 3, "the main thread's shard and two workers");
    // Batches of 4 until both shards have owned a session (each client's tuple is hashed by the
    // kernel, so which shard gets it is chance: 24 clients leave a 1 in 8 million chance of one shard).
    let clients = 0;
    const before = await shardStats(xrtc); // shard 0's counters are the test process's own
    const claimed = (s: ShardStats) =>
      s.get(CLAIMED) - (before.find((b) => b.shard === s.shard)?.get(CLAIMED) ?? 0);
    let stats: ShardStats[] = [];
    while (clients < 24) {
      const batch = await Promise.all([0, 1, 2, 3].map((i) => runEchotest(topo, base, `s${clients + i}`)));
      clients += batch.length;
      for (const r of batch) assertEcho(topo, r);
      stats = await shardStats(xrtc);
      if (stats.every((s) => s.shard === 0 || claimed(s) > 0)) break;
    }
    assert.equal(stats.length, 3, "every shard answered");
    for (const s of stats) {
      if (s.shard === 0) assert.equal(claimed(s), 0, "the main thread serves no UDP port");
      else assert.ok(claimed(s) > 0, `worker shard ${s.shard} owned a session: ${JSON.stringify(stats)}`);
    }
    assert.equal(stats.reduce((n, s) => n + claimed(s), 0), clients, "each session claimed exactly once");
    // Each worker's own figures: its reactor's wakeups, and its thread's CPU time (not the process's).
    const processCpu = stats[0].get("xrtc_process_cpu_seconds_total");
    for (const s of stats.filter((s) => s.shard > 0)) {
      assert.ok(s.get("xrtc_shard_wakeups_total") > 0, `shard ${s.shard} woke for datagrams`);
      const cpu = s.get("xrtc_shard_cpu_seconds_total");
      assert.ok(cpu > 0 && cpu < processCpu, `shard ${s.shard}: ${cpu} s of the process's ${processCpu} s`);
    }
    await waitFor("sessions released", async () => {
      const now = await shardStats(xrtc);
      return now.every((s) => s.sessions === 0 && s.specs === 0) || undefined;
    }, 10_000);
    assert.equal(xrtc.negotiator!.sessionCount, 0);
  });
});

Deno.test(
  "one shard on a worker thread (media_thread: worker): werift echotests, the main thread serves no UDP port",
  opts,
  async () => {
    const ONE_WORKER = {
      options: "  consent_timeout: 30s\n  io_backend: ffi\n  media_thread: worker",
      ioBackend: "ffi" as const,
    };
    await withStack({ xrtc: ONE_WORKER }, async ({ topo, xrtc, base }) => {
      assert.equal(xrtc.shards!.count, 2, "the main thread's shard and one worker");
      assert.equal(xrtc.shards!.mainServesUdp, false);
      const before = await shardStats(xrtc);
      const claimedSince = (s: ShardStats) =>
        s.get(CLAIMED) - (before.find((b) => b.shard === s.shard)?.get(CLAIMED) ?? 0);
      const batch = await Promise.all([0, 1, 2].map((i) => runEchotest(topo, base, `w${i}`)));
      for (const r of batch) assertEcho(topo, r);
      const stats = await shardStats(xrtc);
      assert.deepEqual(
        stats.map((s) => [s.shard, claimedSince(s)]),
        [[0, 0], [1, 3]],
        "every session on the worker",
      );
      await waitFor("sessions released", async () => {
        const now = await shardStats(xrtc);
        return now.every((s) => s.sessions === 0 && s.specs === 0) || undefined;
      }, 10_000);
    });
  },
);

Deno.test(
  "two worker shards, full proxy with the Janus leg over ICE-TCP: echotests relayed by the workers",
  opts,
  async () => {
    await withStack(
      { janus: { iceTcp: true }, xrtc: { ...TWO_SHARDS, icedirect: true, icetcp: true } },
      async ({ topo, xrtc, base }) => {
        // The Janus leg is a TCP connection on the worker's event loop, which the worker holds while it
        // is open (its backend then waits for datagrams through that loop).
        const LEGS = "xrtc_janus_legs_connected_total";
        const tcpLegs = { mode: "full", transport: "tcp" };
        const before = await shardStats(xrtc);
        const results = await Promise.all([0, 1, 2, 3].map((i) => runEchotest(topo, base, `ft${i}`)));
        for (const r of results) assertRelayed(topo, r, "udp");
        const after = await shardStats(xrtc);
        assert.equal(
          total(after, LEGS, tcpLegs) - total(before, LEGS, tcpLegs),
          4,
          "four Janus legs over TCP",
        );
        const main = (x: ShardStats[]) => x.find((s) => s.shard === 0)!.get(CLAIMED);
        assert.equal(main(after) - main(before), 0, "claimed by the workers, not the main thread");
        await waitFor("sessions released", async () => {
          const now = await shardStats(xrtc);
          return now.every((s) => s.sessions === 0 && s.specs === 0) || undefined;
        }, 10_000);
      },
    );
  },
);

Deno.test(
  "two shards: forged checks claim nothing; a tuple on the other shard is handed to the owner",
  opts,
  async (t) => {
    await withStack({ xrtc: TWO_SHARDS }, async ({ topo, xrtc, base }) => {
      const target = { transport: "udp" as const, hostname: topo.xrtcPublic, port: PORTS.udp };
      // 32 client tuples: with two sockets on the port, the chance that all land on one is 2^-31.
      const sockets = Array.from(
        { length: 32 },
        () => Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 }),
      );
      const stunReply = async (sock: Deno.DatagramConn, ms = 1_000) => {
        const buf = new Uint8Array(2048);
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const r = await Promise.race([sock.receive(buf).then(([d]) => d.slice()), sleep(end - Date.now())]);
          if (!r) return undefined;
          if (r[0] <= 3 && !(r[0] === 0 && r[1] === 1)) return parseStun(r); // responses, not xRTC's own checks
        }
        return undefined;
      };
      try {
        const s = await openEchoSession(base);
        await t.step(
          "forged checks from every tuple: no shard claims the session, none answers",
          async () => {
            // Shard 0's counters are the test process's own: compare with before.
            const before = await shardStats(xrtc);
            for (const sock of sockets) {
              await sock.send(signedCheck(s.ufrag, s.clientUfrag, "forged-password-123456789"), target);
            }
            const replies = await Promise.all(sockets.map((sock) => stunReply(sock, 500)));
            assert.ok(replies.every((r) => r === undefined), "no answer to a forged check");
            const stats = await shardStats(xrtc);
            const delta = (name: string, labels: Record<string, string> = {}) =>
              total(stats, name, labels) - total(before, name, labels);
            assert.equal(delta(DROPS, { reason: "check_bad_integrity" }), 32);
            assert.equal(delta(CLAIMED), 0);
            assert.equal(stats.reduce((n, x) => n + x.sessions, 0), 0);
          },
        );

        await t.step(
          "signed checks from every tuple: one owner answers them all, the rest handed over",
          async () => {
            const before = await shardStats(xrtc);
            for (const sock of sockets) await sock.send(signedCheck(s.ufrag, s.clientUfrag, s.pwd), target);
            const replies = await Promise.all(sockets.map((sock) => stunReply(sock)));
            for (const [i, r] of replies.entries()) {
              assert.equal(r?.type, BINDING_SUCCESS, `tuple ${i} was answered`);
              const mapped = getXorMappedAddress(r!);
              assert.equal(
                mapped?.port,
                (sockets[i].addr as Deno.NetAddr).port,
                "XOR-MAPPED-ADDRESS is the tuple's own",
              );
            }
            const stats = await shardStats(xrtc);
            const owners = stats.filter((x) => x.sessions === 1);
            assert.equal(owners.length, 1, `one owner: ${JSON.stringify(stats)}`);
            assert.equal(owners[0].boundTuples, 32, "every tuple is bound on the owner");
            const delta = (name: string, labels: Record<string, string> = {}) =>
              total(stats, name, labels) - total(before, name, labels);
            assert.equal(delta(CLAIMED), 1);
            assert.ok(delta(HANDOFF, { direction: "out" }) > 0, "some tuples landed on the other shard");
            assert.equal(
              delta(HANDOFF, { direction: "in" }),
              delta(HANDOFF, { direction: "out" }),
              "every handed packet arrived",
            );
          },
        );

        await t.step(
          "media from a handed-over tuple reaches the owner; after hangup it is dropped",
          async () => {
            const before = await shardStats(xrtc);
            const srtp = crypto.getRandomValues(new Uint8Array(200)).map((b, i) => i === 0 ? 0x80 : b);
            for (const sock of sockets) await sock.send(srtp, target);
            await waitFor("handed-over media", async () => {
              const now = await shardStats(xrtc);
              const d = (direction: string) =>
                total(now, HANDOFF, { direction }) - total(before, HANDOFF, { direction });
              return d("in") === d("out") && d("out") > 0 || undefined;
            }, 5_000);
            await fetch(`${base}/janus/${s.sid}`, {
              method: "POST",
              body: JSON.stringify({ janus: "destroy", transaction: "d" }),
            }).then((r) => r.body?.cancel());
            await waitFor("session ended on every shard", async () => {
              const now = await shardStats(xrtc);
              return now.every((x) => x.specs === 0 && x.sessions === 0) || undefined;
            }, 5_000);
            const mid = total(await shardStats(xrtc), DROPS, { reason: "unknown_tuple" });
            for (const sock of sockets) await sock.send(srtp, target);
            await waitFor("dropped on both shards", async () => {
              const now = await shardStats(xrtc);
              return total(now, DROPS, { reason: "unknown_tuple" }) - mid === 32 || undefined;
            }, 5_000);
          },
        );

        await t.step(
          "a session first checked over ICE-TCP lives on a worker, its connection relayed there; its UDP path is answered too",
          async () => {
            const tcp = await openEchoSession(base);
            const conn = await Deno.connect({ hostname: topo.xrtcPublic, port: PORTS.tcp });
            try {
              const before = await shardStats(xrtc);
              await conn.write(encodeFrame(signedCheck(tcp.ufrag, tcp.clientUfrag, tcp.pwd)));
              const frames = await readStunResponses(conn, 3000);
              assert.ok(
                frames?.length,
                "the TCP check was answered (by the worker, through the main thread)",
              );
              assert.equal(parseStun(frames[0]).type, BINDING_SUCCESS);
              const after = await shardStats(xrtc);
              const owners = after.filter((x) =>
                x.sessions > (before.find((b) => b.shard === x.shard)?.sessions ?? 0)
              );
              assert.equal(owners.length, 1, `one owner: ${JSON.stringify(after)}`);
              assert.notEqual(owners[0].shard, 0, "a worker owns it, not the main thread");
              for (const sock of sockets) {
                await sock.send(signedCheck(tcp.ufrag, tcp.clientUfrag, tcp.pwd), target);
              }
              const replies = await Promise.all(sockets.map((sock) => stunReply(sock, 2000)));
              assert.ok(
                replies.every((r) => r?.type === BINDING_SUCCESS),
                "every UDP tuple answered, wherever it landed",
              );
              const now = await shardStats(xrtc);
              const dropped = (reason: string) =>
                total(now, DROPS, { reason }) - total(before, DROPS, { reason });
              assert.equal(dropped("port_not_on_owner_shard"), 0);
              assert.equal(dropped("tcp_session_on_other_shard"), 0);
            } finally {
              conn.close();
              await fetch(`${base}/janus/${tcp.sid}`, {
                method: "POST",
                body: JSON.stringify({ janus: "destroy", transaction: "d" }),
              }).then((r) => r.body?.cancel());
            }
          },
        );
      } finally {
        for (const sock of sockets) sock.close();
      }
    });
  },
);
