// Half proxy on one UDP port against the real Janus: werift and Chromium clients in a namespace with
// no route to Janus, so media can only flow through xRTC.
import assert from "node:assert/strict";
import {
  assertEcho,
  onlyXrtcCandidates,
  openEchoSession,
  PORTS,
  runEchotest,
  runWeriftClient,
  signedCheck,
  withStack,
} from "./lib/xrtc.ts";
import { chromiumEchotest } from "./lib/browser.ts";
import { countSettlesAt, sleep, waitFor } from "./lib/run.ts";
import { metric, Snapshot } from "./lib/metrics.ts";
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeString,
  encodeUint64,
  getXorMappedAddress,
  parseStun,
  randomTransactionId,
} from "../src/stun/message.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("half proxy: werift and Chromium through one UDP port", opts, async (t) => {
  await withStack({}, async ({ topo, xrtc, base }) => {
    await t.step("werift echotest, signalling over HTTP (long-poll, maxev)", async () => {
      const r = await runEchotest(topo, base, "h");
      assertEcho(topo, r);
      assert.ok(r.sawArray);
      assert.ok(!(r.offerCandidates as string[]).some((c) => c.includes(topo.xrtcPublic)));
    });

    await t.step("werift echotest, signalling over WebSocket", async () => {
      const r = await runEchotest(topo, base, "w", { signal: "ws" });
      assertEcho(topo, r);
      assert.equal(r.wsProtocol, "janus-protocol");
    });

    await t.step("VideoRoom: Janus offers to the subscriber; roles swap on both legs", async () => {
      const r = await runWeriftClient(topo, {
        signal: "http",
        base,
        scenario: "videoroom",
        tag: "v",
        messages: 0,
        rtp: 0,
      });
      assert.deepEqual(r.errors, []);
      assert.ok(
        onlyXrtcCandidates(topo, r.offerCandidates),
        "Janus's offer reaches the client with xRTC's candidates only",
      );
      assert.ok(r.offerLite);
      assert.ok((r.subscriberRtp as number) > 30, `subscriber received ${r.subscriberRtp} packets`);
    });

    await t.step("5 clients at once on the same port, each gets only its own payloads", async () => {
      const results = await Promise.all(
        [0, 1, 2, 3, 4].map((i) => runEchotest(topo, base, `c${i}`, { signal: i % 2 ? "ws" : "http" })),
      );
      for (const r of results) assertEcho(topo, r);
    });

    await t.step("hangups released every session", async () => {
      // Summed over the shards: with the ffi backend the media runs on a worker thread (media_thread auto).
      const totals = async () => {
        const stats = (await xrtc.shards!.reports()).map((r) => r.report.stats);
        return {
          sessions: stats.reduce((n, s) => n + s.sessions, 0),
          upstreams: stats.reduce((n, s) => n + s.upstreamRoutes, 0),
        };
      };
      await waitFor("sessions released", async () => (await totals()).sessions === 0 || undefined, 10_000);
      assert.equal((await totals()).upstreams, 0);
    });

    for (const signal of ["http", "ws"]) {
      await t.step(`Chromium echotest from xRTC's own page, signalling over ${signal}`, async () => {
        const out = await chromiumEchotest(topo, `${base}/echotest.html?autostart=1&signal=${signal}`, {
          secureOrigin: base,
        });
        assert.deepEqual(out.result.errors, []);
        assert.ok(["connected", "completed"].includes(out.result.iceState));
        assert.ok(onlyXrtcCandidates(topo, out.result.answerCandidates));
        assert.equal(out.selectedRemote, `udp:${topo.xrtcPublic}:${PORTS.udp}`);
      });
    }
  });
});

Deno.test(
  "half proxy with Janus full_trickle: Janus's trickles feed xRTC's agent, never the client",
  opts,
  async () => {
    await withStack({ janus: { fullTrickle: true } }, async ({ topo, base }) => {
      const before = await metric("xrtc_trickles_absorbed_total", { from: "janus" });
      const r = await runEchotest(topo, base, "ft");
      assertEcho(topo, r);
      assert.ok(
        (await metric("xrtc_trickles_absorbed_total", { from: "janus" })) > before,
        "Janus trickled and xRTC absorbed it",
      );
    });
  },
);

Deno.test("half proxy: bad input binds nothing, reaches nothing, and is counted", opts, async (t) => {
  // The steps look into the media plane and its counters in this process: media on the main thread.
  const options = "  consent_timeout: 3s\n  media_thread: main";
  await withStack({ xrtc: { options } }, async ({ topo, xrtc, base }) => {
    const target = { transport: "udp" as const, hostname: topo.xrtcPublic, port: PORTS.udp };
    const attacker = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
    const client = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
    /** The first STUN response that arrives within `ms` (media such as Janus's DTLS may arrive too, and
     * xRTC's own Binding requests validating the client's address, which are not answers). */
    const received = async (sock: Deno.DatagramConn, ms = 500): Promise<Uint8Array | undefined> => {
      const buf = new Uint8Array(2048);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const r = await Promise.race([
          sock.receive(buf).then(([d]) => d.slice()),
          sleep(end - Date.now()).then(() => undefined),
        ]);
        if (r === undefined) return undefined;
        if (r[0] <= 3 && !(r[0] === 0 && r[1] === 1)) return r;
      }
      return undefined;
    };
    const port = xrtc.plane!.ports[0];
    const delta = (reason: string, before: Snapshot) =>
      Snapshot.local().delta(before, "xrtc_dropped_packets_total", { reason });
    try {
      const s = await openEchoSession(base);
      await t.step(
        "garbage, truncated STUN, unknown ufrag, SRTP from an unbound tuple: dropped and counted",
        async () => {
          const before = Snapshot.local();
          const valid = signedCheck(s.ufrag, s.clientUfrag, s.pwd);
          await attacker.send(
            crypto.getRandomValues(new Uint8Array(300)).map((b, i) => i === 0 ? 0x80 : b),
            target,
          ); // SRTP-looking
          await attacker.send(new Uint8Array([0x17, 0xfe, 0xfd, 0, 1]), target); // DTLS-looking
          await attacker.send(valid.subarray(0, 30), target); // truncated STUN
          await attacker.send(signedCheck("nosuchuf", s.clientUfrag, s.pwd), target); // unknown ufrag
          await attacker.send(new Uint8Array(0), target);
          assert.equal(await received(attacker), undefined, "no answer to any of it");
          assert.equal(delta("unknown_tuple", before), 2);
          assert.equal(delta("empty_datagram", before), 1);
          assert.equal(delta("stun_malformed", before), 1);
          assert.equal(delta("unknown_ufrag", before), 1);
          assert.equal(port.boundCount, 0);
        },
      );
      await t.step(
        "wrong MESSAGE-INTEGRITY, no FINGERPRINT, wrong client ufrag: not bound, counted",
        async () => {
          const before = Snapshot.local();
          await attacker.send(signedCheck(s.ufrag, s.clientUfrag, "wrong-password-123456789"), target);
          const noFp = buildStun({
            type: BINDING_REQUEST,
            transactionId: randomTransactionId(),
            attributes: [[Attr.USERNAME, encodeString(`${s.ufrag}:${s.clientUfrag}`)]],
            integrityKey: new TextEncoder().encode(s.pwd),
          });
          await attacker.send(noFp, target);
          await attacker.send(signedCheck(s.ufrag, "otherufrag", s.pwd), target);
          assert.equal(await received(attacker), undefined);
          assert.equal(delta("check_bad_integrity", before), 1);
          assert.equal(delta("check_no_fingerprint", before), 1);
          assert.equal(delta("check_bad_username", before), 1);
          assert.equal(port.boundCount, 0);
        },
      );
      await t.step(
        "a correctly signed check binds, with a correct XOR-MAPPED-ADDRESS; ICE-CONTROLLED gets a signed 487",
        async () => {
          await client.send(
            signedCheck(s.ufrag, s.clientUfrag, s.pwd, { useCandidate: true }),
            target,
          );
          const resp = await received(client, 2000);
          assert.ok(resp, "a response");
          const msg = parseStun(resp!);
          assert.equal(msg.type, BINDING_SUCCESS);
          const local = client.addr as Deno.NetAddr;
          assert.deepEqual(getXorMappedAddress(msg), { host: local.hostname, port: local.port });
          assert.equal(port.boundCount, 1);
          const conflict = buildStun({
            type: BINDING_REQUEST,
            transactionId: randomTransactionId(),
            attributes: [[Attr.USERNAME, encodeString(`${s.ufrag}:${s.clientUfrag}`)], [
              Attr.ICE_CONTROLLED,
              encodeUint64(1n),
            ]],
            integrityKey: new TextEncoder().encode(s.pwd),
            fingerprint: true,
          });
          await attacker.send(conflict, target);
          const err = parseStun((await received(attacker, 2000))!);
          assert.equal(err.type, 0x0111);
          assert.equal(port.boundCount, 1, "the 487 bound nothing");
        },
      );
      await t.step(
        "SRTP from the attacker tuple still goes nowhere while the client's is bound",
        async () => {
          const before = Snapshot.local();
          await attacker.send(new Uint8Array(200).fill(0x80, 0, 1), target);
          await countSettlesAt(
            "SRTP from the attacker's tuple dropped",
            () => delta("unknown_tuple", before),
            1,
          );
        },
      );
      await t.step(
        "consent freshness (RFC 7675): silent for the consent timeout, the session and its tuple are freed",
        async () => {
          assert.equal(xrtc.plane!.table.liveCount, 1);
          await waitFor("session expiry", () => xrtc.plane!.table.liveCount === 0 || undefined, 8_000);
          assert.equal(port.boundCount, 0, "tuple freed");
          assert.equal(xrtc.plane!.table.byUfrag(s.ufrag), undefined, "ufrag freed");
          assert.equal(xrtc.plane!.table.upstreamCount, 0, "Janus leg closed");
          await client.send(signedCheck(s.ufrag, s.clientUfrag, s.pwd), target);
          assert.equal(await received(client), undefined, "the expired ufrag answers nothing");
        },
      );
    } finally {
      attacker.close();
      client.close();
    }
  });
});
