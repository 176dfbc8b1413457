// Full proxy (icedirect): ICE end to end between client and Janus, every packet relayed by xRTC, over
// UDP and TCP on either leg.
import assert from "node:assert/strict";
import { blockClientUdp, type Topology } from "./lib/topology.ts";
import { assertRelayed, PORTS, runEchotest, signedCheck, withStack } from "./lib/xrtc.ts";
import { chromiumEchotest } from "./lib/browser.ts";
import { countSettlesAt, waitFor } from "./lib/run.ts";
import { dropped, metric } from "./lib/metrics.ts";
import { iceCredentials, parseSdp } from "../src/sdp/sdp.ts";
import {
  Attr,
  BINDING_REQUEST,
  buildStun,
  encodeString,
  encodeUint64,
  randomTransactionId,
} from "../src/stun/message.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const OFFER = await Deno.readTextFile(new URL("./fixtures/chromium-offer.sdp", import.meta.url));

async function chromium(t: Topology, base: string) {
  return await chromiumEchotest(t, `${base}/echotest.html?autostart=1&signal=http`, { secureOrigin: base });
}

Deno.test(
  "full proxy, Janus leg UDP: werift over HTTP and WS, Chromium, 4 sessions at once, then client over ICE-TCP",
  opts,
  async (t) => {
    await withStack({ xrtc: { icedirect: true } }, async ({ topo, base }) => {
      await t.step("werift, client UDP <-> Janus UDP, HTTP and WS signalling", async () => {
        for (const signal of ["http", "ws"] as const) {
          const before = await metric("xrtc_janus_legs_connected_total", { mode: "full", transport: "udp" });
          assertRelayed(
            topo,
            await runEchotest(topo, base, `f${signal}`, { signal }),
            "udp",
          );
          assert.equal(
            await metric("xrtc_janus_legs_connected_total", { mode: "full", transport: "udp" }),
            before + 1,
          );
        }
      });
      await t.step("Chromium, client UDP <-> Janus UDP", async () => {
        assert.equal((await chromium(topo, base)).selectedRemote, `udp:${topo.xrtcPublic}:${PORTS.udp}`);
      });
      await t.step("4 concurrent sessions, no cross-talk", async () => {
        const rs = await Promise.all(
          [0, 1, 2, 3].map((i) => runEchotest(topo, base, `p${i}`, { signal: i % 2 ? "ws" : "http" })),
        );
        for (const r of rs) {
          assertRelayed(topo, r, "udp");
        }
      });
      await t.step("UDP blocked: werift and Chromium over ICE-TCP to xRTC, Janus leg still UDP", async () => {
        await blockClientUdp(topo);
        assertRelayed(
          topo,
          await runEchotest(topo, base, "ft", { iceTcp: true }),
          "tcp",
        );
        assert.equal((await chromium(topo, base)).selectedRemote, `tcp:${topo.xrtcPublic}:${PORTS.tcp}`);
      });
    });
  },
);

Deno.test(
  "full proxy, Janus leg ICE-TCP (icetcp: true, Janus ice_tcp): client over UDP, then over ICE-TCP",
  opts,
  async () => {
    await withStack(
      { janus: { iceTcp: true }, xrtc: { icedirect: true, icetcp: true } },
      async ({ topo, base }) => {
        const before = await metric("xrtc_janus_legs_connected_total", { mode: "full", transport: "tcp" });
        assertRelayed(
          topo,
          await runEchotest(topo, base, "jt"),
          "udp",
        );
        await blockClientUdp(topo);
        assertRelayed(
          topo,
          await runEchotest(topo, base, "jtt", { signal: "ws", iceTcp: true }),
          "tcp",
        );
        assert.equal(
          await metric("xrtc_janus_legs_connected_total", { mode: "full", transport: "tcp" }),
          before + 2,
          "both sessions reached Janus over ICE-TCP",
        );
      },
    );
  },
);

Deno.test(
  "full proxy: forged checks bind nothing; packets from addresses Janus did not announce are dropped",
  opts,
  async () => {
    // The steps look into the media plane in this process: media on the main thread.
    const xrtcOptions = { icedirect: true, options: "  consent_timeout: 30s\n  media_thread: main" };
    await withStack({ xrtc: xrtcOptions }, async ({ topo, xrtc, base }) => {
      const post = async (path: string, body: unknown) =>
        await (await fetch(`${base}/janus${path}`, { method: "POST", body: JSON.stringify(body) })).json();
      const sid = (await post("", { janus: "create", transaction: "c" })).data.id;
      const hid =
        (await post(`/${sid}`, { janus: "attach", plugin: "janus.plugin.echotest", transaction: "a" })).data
          .id;
      await post(`/${sid}/${hid}`, {
        janus: "message",
        transaction: "m",
        body: { audio: true },
        jsep: { type: "offer", sdp: OFFER },
      });
      let answer = "";
      for (let i = 0; i < 10 && !answer; i++) {
        const events = await (await fetch(`${base}/janus/${sid}?maxev=5`)).json();
        for (const e of Array.isArray(events) ? events : [events]) if (e.jsep) answer = e.jsep.sdp;
      }
      const seen = iceCredentials(parseSdp(answer))!;
      // Janus's credentials, as its answer gave them to xRTC.
      const spec = xrtc.signalling.sessions.handle(String(sid), String(hid))!.ice.spec!;
      if (spec.mode !== "full") throw new Error(`a ${spec.mode}-proxy session`);
      const janus = spec.janus;
      assert.notEqual(seen.ufrag, janus.ufrag, "the client sees xRTC's node-unique ufrag, not Janus's");
      assert.equal(seen.pwd, janus.pwd, "with Janus's password");
      const attacker = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
      try {
        const before = await dropped("check_bad_integrity");
        const forged = buildStun({
          type: BINDING_REQUEST,
          transactionId: randomTransactionId(),
          attributes: [[
            Attr.USERNAME,
            encodeString(`${seen.ufrag}:${iceCredentials(parseSdp(OFFER))!.ufrag}`),
          ], [Attr.ICE_CONTROLLING, encodeUint64(1n)]],
          integrityKey: new TextEncoder().encode("not-the-password-at-all"),
          fingerprint: true,
        });
        await attacker.send(forged, { transport: "udp", hostname: topo.xrtcPublic, port: PORTS.udp });
        await countSettlesAt("the forged check dropped", () => dropped("check_bad_integrity"), before + 1);
        assert.equal(xrtc.plane!.ports[0].boundCount, 0, "the forged check bound nothing");
        assert.equal(xrtc.plane!.table.liveCount, 0, "nor made the session live");
        // A check signed with the password the client was given makes it live (and is relayed to Janus).
        await attacker.send(
          signedCheck(seen.ufrag, iceCredentials(parseSdp(OFFER))!.ufrag, seen.pwd),
          { transport: "udp", hostname: topo.xrtcPublic, port: PORTS.udp },
        );
        await waitFor("session live", () => xrtc.plane!.table.liveCount === 1 || undefined, 2000);
        assert.equal(xrtc.plane!.ports[0].boundCount, 1);
        // The relay socket towards Janus accepts only the addresses Janus announced.
        const upstreamPort = xrtc.plane!.upstream.localAddress.port;
        const droppedBefore = await dropped("upstream_unknown_source");
        const stranger = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
        await stranger.send(new Uint8Array(100).fill(0x80, 0, 1), {
          transport: "udp",
          hostname: "127.0.0.1",
          port: upstreamPort,
        });
        stranger.close();
        await waitFor(
          "drop counted",
          async () => (await dropped("upstream_unknown_source")) > droppedBefore || undefined,
          2000,
        );
        const announced = xrtc.plane!.table.upstreamAddresses().map((a) => a.host);
        assert.ok(
          announced.length > 0 && announced.every((h) => h === topo.janusAddr),
          `relay targets are Janus's own: ${announced}`,
        );
      } finally {
        attacker.close();
      }
    });
  },
);
