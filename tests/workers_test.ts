// Every core on the one port: xRTC with `workers: 2` (the main thread and one worker, each with its
// own SO_REUSEPORT socket on the shared UDP port, FFI backend) against the real Janus. The kernel
// spreads client tuples over the two sockets; each session is claimed by the shard that received its
// first authentic check, and tuples that land on the other shard are handed to the owner.
import assert from "node:assert/strict";
import { assertEcho, openEchoSession, PORTS, runEchotest, signedCheck, withStack } from "./lib/xrtc.ts";
import { sleep, waitFor } from "./lib/run.ts";
import { BINDING_SUCCESS, getXorMappedAddress, parseStun } from "../src/stun/message.ts";
import type { ShardStats } from "../src/ice/shards.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TWO_SHARDS = {
  options: "  consent_timeout: 30s\n  io_backend: ffi\n  workers: 2",
  ioBackend: "ffi" as const,
};

const total = (stats: ShardStats[], name: string) => stats.reduce((n, s) => n + (s.counters[name] ?? 0), 0);

Deno.test("two shards on one UDP port: werift echotests end to end on both shards", opts, async () => {
  await withStack({ xrtc: TWO_SHARDS }, async ({ topo, xrtc, base }) => {
    assert.equal(xrtc.shards!.count, 2);
    // Batches of 4 until both shards have owned a session (each client's tuple is hashed by the
    // kernel, so which shard gets it is chance: 24 clients leave a 1 in 8 million chance of one shard).
    let clients = 0;
    const before = await xrtc.shards!.stats(); // shard 0's counters are the test process's own
    const claimed = (s: ShardStats) =>
      (s.counters.sessions_claimed ?? 0) -
      (before.find((b) => b.shard === s.shard)?.counters.sessions_claimed ?? 0);
    let stats: ShardStats[] = [];
    while (clients < 24) {
      const batch = await Promise.all([0, 1, 2, 3].map((i) => runEchotest(topo, base, `s${clients + i}`)));
      clients += batch.length;
      for (const r of batch) assertEcho(topo, r);
      stats = await xrtc.shards!.stats();
      if (stats.every((s) => claimed(s) > 0)) break;
    }
    assert.equal(stats.length, 2, "both shards answered");
    for (const s of stats) {
      assert.ok(
        (s.counters.sessions_claimed ?? 0) > 0,
        `shard ${s.shard} owned a session: ${JSON.stringify(stats)}`,
      );
    }
    assert.equal(stats.reduce((n, s) => n + claimed(s), 0), clients, "each session claimed exactly once");
    await waitFor("sessions released", async () => {
      const now = await xrtc.shards!.stats();
      return now.every((s) => s.sessions === 0 && s.specs === 0) || undefined;
    }, 10_000);
    assert.equal(xrtc.negotiator!.sessionCount, 0);
  });
});

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
          if (r[0] <= 3) return parseStun(r);
        }
        return undefined;
      };
      try {
        const s = await openEchoSession(base);
        await t.step(
          "forged checks from every tuple: no shard claims the session, none answers",
          async () => {
            // Shard 0's counters are the test process's own: compare with before.
            const before = await xrtc.shards!.stats();
            for (const sock of sockets) {
              await sock.send(signedCheck(s.ufrag, s.clientUfrag, "forged-password-123456789"), target);
            }
            const replies = await Promise.all(sockets.map((sock) => stunReply(sock, 500)));
            assert.ok(replies.every((r) => r === undefined), "no answer to a forged check");
            const stats = await xrtc.shards!.stats();
            const delta = (name: string) => total(stats, name) - total(before, name);
            assert.equal(delta("stun_drop_bad_integrity"), 32);
            assert.equal(delta("sessions_claimed"), 0);
            assert.equal(stats.reduce((n, x) => n + x.sessions, 0), 0);
          },
        );

        await t.step(
          "signed checks from every tuple: one owner answers them all, the rest handed over",
          async () => {
            const before = await xrtc.shards!.stats();
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
            const stats = await xrtc.shards!.stats();
            const owners = stats.filter((x) => x.sessions === 1);
            assert.equal(owners.length, 1, `one owner: ${JSON.stringify(stats)}`);
            assert.equal(owners[0].boundTuples, 32, "every tuple is bound on the owner");
            const delta = (name: string) => total(stats, name) - total(before, name);
            assert.equal(delta("sessions_claimed"), 1);
            assert.ok(delta("handoff_packets_out") > 0, "some tuples landed on the other shard");
            assert.equal(
              delta("handoff_packets_in"),
              delta("handoff_packets_out"),
              "every handed packet arrived",
            );
          },
        );

        await t.step(
          "media from a handed-over tuple reaches the owner; after hangup it is dropped",
          async () => {
            const before = await xrtc.shards!.stats();
            const srtp = crypto.getRandomValues(new Uint8Array(200)).map((b, i) => i === 0 ? 0x80 : b);
            for (const sock of sockets) await sock.send(srtp, target);
            await waitFor("handed-over media", async () => {
              const now = await xrtc.shards!.stats();
              return total(now, "handoff_packets_in") - total(before, "handoff_packets_in") ===
                      total(now, "handoff_packets_out") - total(before, "handoff_packets_out") &&
                  total(now, "handoff_packets_out") > total(before, "handoff_packets_out") || undefined;
            }, 5_000);
            await fetch(`${base}/janus/${s.sid}`, {
              method: "POST",
              body: JSON.stringify({ janus: "destroy", transaction: "d" }),
            }).then((r) => r.body?.cancel());
            await waitFor("session ended on every shard", async () => {
              const now = await xrtc.shards!.stats();
              return now.every((x) => x.specs === 0 && x.sessions === 0) || undefined;
            }, 5_000);
            const mid = total(await xrtc.shards!.stats(), "udp_drop_unknown_tuple");
            for (const sock of sockets) await sock.send(srtp, target);
            await waitFor("dropped on both shards", async () => {
              const now = await xrtc.shards!.stats();
              return total(now, "udp_drop_unknown_tuple") - mid === 32 || undefined;
            }, 5_000);
          },
        );
      } finally {
        for (const sock of sockets) sock.close();
      }
    });
  },
);
