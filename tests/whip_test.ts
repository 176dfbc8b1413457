// WHIP ingest (RFC 9725) through xRTC into the real Janus VideoRoom: Debian's simple-whip-client
// (GStreamer webrtcbin) and a browser publisher of the test's own page, in a client namespace with no
// route to Janus, watched by a Chromium VideoRoom subscriber through xRTC; the errors the RFC names;
// DELETE, and a publisher that vanishes, release the Janus session (checked with Janus's admin API).
import assert from "node:assert/strict";
import { onlyXrtcCandidates, PORTS, type Stack, whipPublish, withStack } from "./lib/xrtc.ts";
import { launchChromium } from "./lib/browser.ts";
import { recordFigure, run, waitFor } from "./lib/run.ts";
import { metric } from "./lib/metrics.ts";
import { whipSetup } from "../src/telemetry/catalog.ts";
import type { Topology } from "./lib/topology.ts";
import type { Page } from "playwright-core";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TOKEN = "whip-test-token-0123456789";
const ROOM = 1234;
const WHIP =
  `live: { upstream: http://janus, room: ${ROOM}, token: ${TOKEN}, max_publishers: 1, display: "xRTC WHIP" }
open: { upstream: http://janus, room: ${ROOM} }
direct: { upstream: http://janus, room: ${ROOM}, icedirect: true }`;
const FIXTURE_OFFER = Deno.readTextFileSync(new URL("./fixtures/chromium-offer.sdp", import.meta.url));

const VIDEO = "videotestsrc is-live=true pattern=ball ! videoconvert ! queue ! vp8enc deadline=1 ! " +
  "rtpvp8pay pt=96 ssrc=2 ! queue ! application/x-rtp,media=video,encoding-name=VP8,payload=96";
const AUDIO = "audiotestsrc is-live=true wave=red-noise ! audioconvert ! audioresample ! queue ! opusenc ! " +
  "rtpopuspay pt=100 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=100";

/** The preload that lets Debian's whip-client start beside libsoup3 (see the C file). */
async function soupShim(dir: string): Promise<string> {
  const out = `${dir}/soup2_guard_shim.so`;
  const src = new URL("./tools/soup2_guard_shim.c", import.meta.url).pathname;
  await run(["gcc", "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"]);
  return out;
}

/** simple-whip-client in the client namespace; its output is kept for a failure's message. */
function startWhipClient(t: Topology, shim: string, url: string, token?: string) {
  const args = ["-u", url, "-V", VIDEO, "-A", AUDIO, "-o", ...(token ? ["-t", token] : [])];
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", t.clientNs, "env", `LD_PRELOAD=${shim}`, "whip-client", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      output = (output + chunk).slice(-20_000);
    }
  };
  void drain(child.stdout);
  void drain(child.stderr);
  return {
    output: () => output,
    kill: (signal: Deno.Signal) => {
      try {
        child.kill(signal);
      } catch { /* gone */ }
    },
    status: child.status,
  };
}

/** The Janus sessions Janus itself has (its admin API). */
async function janusSessionIds(s: Stack): Promise<number[]> {
  return ((await s.janus.admin({ janus: "list_sessions" })).sessions ?? []) as number[];
}

/** The Janus session xRTC holds for the WHIP endpoint `tag`, if any. */
function whipJanusSession(s: Stack, tag: string): string | undefined {
  for (const js of s.xrtc.signalling.sessions.sessions()) if (js.whip === tag) return js.id;
  return undefined;
}

interface SubscriberStats {
  frames: number;
  firstFrameMs: number | null;
}

/** A VideoRoom subscriber page: subscribes to the room's publisher through xRTC's Janus API. */
async function subscriber(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/whip.html`);
  await page.waitForFunction(() => (globalThis as unknown as { whipReady: boolean }).whipReady);
  await page.evaluate(
    (room) => (globalThis as unknown as { subscribe(r: number): Promise<number> }).subscribe(room),
    ROOM,
  );
}

async function framesAbove(page: Page, n: number, timeoutMs = 20_000): Promise<SubscriberStats> {
  return await waitFor(
    `more than ${n} decoded frames at the subscriber`,
    async () => {
      const s = await page.evaluate(() =>
        (globalThis as unknown as { subscriberStats(): Promise<SubscriberStats> }).subscriberStats()
      );
      return s.frames > n ? s : undefined;
    },
    timeoutMs,
    100,
  );
}

async function whipFetch(base: string, path: string, init: RequestInit): Promise<Response> {
  const r = await fetch(`${base}${path}`, init);
  await r.arrayBuffer();
  return r;
}

Deno.test("WHIP: whip-client and a browser publish through one port into the VideoRoom", opts, async (t) => {
  const root = await Deno.makeTempDir({ prefix: "xrtc-whip-www-" });
  await Deno.copyFile(new URL("./pages/whip.html", import.meta.url).pathname, `${root}/whip.html`);
  const shim = await soupShim(root);
  try {
    await withStack(
      { xrtc: { whip: WHIP, root, options: "  consent_timeout: 3s" } },
      async (s) => {
        const { topo, xrtc, base } = s;
        const chromium = await launchChromium(topo, { secureOrigin: base });
        try {
          await t.step(
            "whip-client (half proxy) publishes; a Chromium subscriber decodes > 30 frames",
            async () => {
              const setupBefore = whipSetup.count({});
              const setupSumBefore = await metric("xrtc_whip_setup_seconds");
              const wc = startWhipClient(topo, shim, `${base}/whip/live`, TOKEN);
              try {
                await waitFor("the WHIP session", () => xrtc.whip.size === 1 || undefined, 15_000).catch(
                  (e) => {
                    throw new Error(`${e}\n--- whip-client ---\n${wc.output().slice(-4000)}`);
                  },
                );
                const setupMs = ((await metric("xrtc_whip_setup_seconds")) - setupSumBefore) * 1000;
                assert.equal(whipSetup.count({}) - setupBefore, 1);
                const page = await chromium.browser.newPage();
                const subscribeAt = Date.now();
                await subscriber(page, base);
                const stats = await framesAbove(page, 30);
                const status = await xrtc.status() as { sessions: Array<Record<string, unknown>> };
                const mine = status.sessions.find((x) => x.signalling === "whip");
                assert.ok(mine, "the WHIP session is on the status page");
                assert.equal(mine.whip_endpoint, "live");
                assert.equal(mine.plugin, "janus.plugin.videoroom");
                assert.equal(mine.mode, "half");
                assert.ok((mine.packets_to_janus as number) > 0, "media reached Janus through xRTC");
                assert.match(await xrtc.metricsText(), /^xrtc_whip_sessions 1$/m);
                await recordFigure("whip: whip-client, half proxy", {
                  post_to_201_ms: Math.round(setupMs),
                  subscriber_first_frame_ms: Math.round(stats.firstFrameMs ?? -1),
                  subscriber_30_frames_ms: Date.now() - subscribeAt,
                });
                console.log(
                  `whip-client: POST to 201 ${setupMs.toFixed(0)} ms; subscriber's first frame ${
                    stats.firstFrameMs?.toFixed(0)
                  } ms after it subscribed`,
                );

                // Bad input while the endpoint's one publisher is live: each its status, nothing kept.
                const sessionsBefore = xrtc.signalling.sessions.size;
                const janusBefore = (await janusSessionIds(s)).length;
                const auth = { authorization: `Bearer ${TOKEN}` };
                const sdp = { ...auth, "content-type": "application/sdp" };
                const post = (headers: Record<string, string>, body = FIXTURE_OFFER) =>
                  whipFetch(base, "/whip/live", { method: "POST", headers, body });
                assert.equal((await post(sdp)).status, 503, "a second publisher on an endpoint of one");
                assert.equal((await post({ ...sdp, authorization: "Bearer not-the-token" })).status, 401);
                assert.equal((await post({ "content-type": "application/sdp" })).status, 401);
                assert.equal((await post({ ...auth, "content-type": "text/plain" })).status, 415);
                const noCredentials = FIXTURE_OFFER.replace(/a=ice-(ufrag|pwd):.*\r?\n/g, "");
                assert.equal(
                  (await whipFetch(base, "/whip/open", {
                    method: "POST",
                    headers: { "content-type": "application/sdp" },
                    body: noCredentials,
                  })).status,
                  400,
                );
                assert.equal(xrtc.signalling.sessions.size, sessionsBefore);
                assert.equal((await janusSessionIds(s)).length, janusBefore);
                assert.equal(xrtc.whip.size, 1);
                await page.close();

                // The publisher vanishes (no DELETE): its consent expires and the Janus session goes.
                const janusSession = whipJanusSession(s, "live");
                assert.ok(janusSession);
                assert.ok((await janusSessionIds(s)).includes(Number(janusSession)));
                const iceEnded = await metric("xrtc_whip_sessions_ended_total", { reason: "ice_ended" });
                wc.kill("SIGKILL");
                await waitFor(
                  "the vanished publisher's WHIP session ended",
                  () => xrtc.whip.size === 0 || undefined,
                  15_000,
                );
                assert.equal(
                  await metric("xrtc_whip_sessions_ended_total", { reason: "ice_ended" }),
                  iceEnded + 1,
                );
                await waitFor(
                  "Janus released the session",
                  async () => !(await janusSessionIds(s)).includes(Number(janusSession)) || undefined,
                  10_000,
                );
              } finally {
                wc.kill("SIGKILL");
                await wc.status;
              }
            },
          );

          await t.step("PATCH and DELETE: 428, 412, 204, 200, then 404; a silent POST expires", async () => {
            const before = await janusSessionIds(s);
            const { response: r, answer, location, etag } = await whipPublish(
              `${base}/whip/open`,
              FIXTURE_OFFER,
            );
            assert.match(location, /^\/whip\/open\/[A-Za-z0-9_-]{22}$/);
            assert.equal(r.headers.get("accept-patch"), "application/trickle-ice-sdpfrag");
            assert.equal(r.headers.get("content-type"), "application/sdp");
            assert.ok(
              onlyXrtcCandidates(topo, answer.split(/\r?\n/).filter((l) => l.startsWith("a=candidate:"))),
            );
            const janusSession = whipJanusSession(s, "open")!;
            assert.ok(!location.includes(janusSession), "the Janus session id is not the resource id");
            const frag = "a=ice-ufrag:" + /a=ice-ufrag:(\S+)/.exec(FIXTURE_OFFER)![1] +
              "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2113937151 198.19.0.2 50000 typ host\r\n";
            const patch = (headers: Record<string, string>) =>
              whipFetch(base, location, {
                method: "PATCH",
                headers: { "content-type": "application/trickle-ice-sdpfrag", ...headers },
                body: frag,
              });
            assert.equal((await patch({})).status, 428);
            assert.equal((await patch({ "if-match": '"stale"' })).status, 412);
            assert.equal(
              (await whipFetch(base, location, {
                method: "PATCH",
                headers: { "content-type": "application/sdp", "if-match": etag },
                body: frag,
              })).status,
              415,
            );
            assert.equal((await patch({ "if-match": etag })).status, 204);
            assert.equal((await whipFetch(base, location, { method: "DELETE" })).status, 200);
            assert.equal((await patch({ "if-match": etag })).status, 404, "PATCH on a deleted resource");
            assert.equal((await whipFetch(base, location, { method: "DELETE" })).status, 404);
            assert.equal(xrtc.whip.size, 0);
            assert.equal(whipJanusSession(s, "open"), undefined);
            assert.deepEqual(
              (await janusSessionIds(s)).sort(),
              before.sort(),
              "DELETE destroyed it on Janus",
            );

            // An offer whose publisher never sends a check: never connected, released all the same.
            const silent = await fetch(`${base}/whip/open`, {
              method: "POST",
              headers: { "content-type": "application/sdp" },
              body: FIXTURE_OFFER,
            });
            await silent.arrayBuffer();
            assert.equal(silent.status, 201);
            await waitFor(
              "the silent publisher's session ended",
              () => xrtc.whip.size === 0 || undefined,
              15_000,
            );
            await waitFor(
              "Janus released it",
              async () => (await janusSessionIds(s)).length === before.length || undefined,
              10_000,
            );
          });

          await t.step(
            "a browser WHIP publisher; an ICE restart by PATCH resumes media in < 1 s",
            async () => {
              const pub = await chromium.browser.newPage();
              await pub.goto(`${base}/whip.html`);
              type W = {
                whipState: {
                  patches: number[];
                  answerCandidates: string[];
                  setupMs: number;
                  errors: string[];
                };
                publish(url: string): Promise<string>;
                restartIce(): Promise<{ ufrag: string; remoteUfrag: string; patchMs: number }>;
                publisherIce(): Promise<{ state: string; localUfrag?: string; framesSent?: number }>;
                unpublish(): Promise<number>;
              };
              const w = <T>(call: string): Promise<T> => pub.evaluate(call) as Promise<T>;
              await w("publish('/whip/open')");
              const state = await w<W["whipState"]>("whipState");
              assert.ok(onlyXrtcCandidates(topo, state.answerCandidates), "the answer names only xRTC");
              const page = await chromium.browser.newPage();
              await subscriber(page, base);
              const stats = await framesAbove(page, 30);
              const patches = (await w<W["whipState"]>("whipState")).patches;
              assert.ok(patches.length > 0 && patches.every((p) => p === 204), `trickle PATCHes: ${patches}`);
              await recordFigure("whip: browser publisher, half proxy", {
                post_to_201_ms: Math.round(state.setupMs),
                subscriber_first_frame_ms: Math.round(stats.firstFrameMs ?? -1),
              });
              console.log(
                `browser: POST to 201 ${state.setupMs.toFixed(0)} ms; subscriber's first frame ${
                  stats.firstFrameMs?.toFixed(0)
                } ms`,
              );

              // ICE restart: Janus's side must not change (no renegotiation, same ICE credentials).
              const janusSession = whipJanusSession(s, "open")!;
              const handle = [...xrtc.signalling.sessions.get(janusSession)!.handles.values()][0];
              const handleInfo = async () =>
                (await s.janus.admin({ janus: "handle_info" }, `/${janusSession}/${handle.id}`)).info as {
                  sdps?: { local?: string; remote?: string };
                };
              const sdpsBefore = (await handleInfo()).sdps;
              const specBefore = structuredClone(handle.ice.spec);
              const restartsClosed = await metric("xrtc_sessions_closed_total", { reason: "ice_restart" });
              const framesBefore = (await framesAbove(page, 0)).frames;
              const t0 = Date.now();
              const restart = await w<Awaited<ReturnType<W["restartIce"]>>>("restartIce()");
              const resumed = await waitFor(
                "media on the new credentials",
                async () => {
                  const ice = await w<Awaited<ReturnType<W["publisherIce"]>>>("publisherIce()");
                  if (ice.localUfrag !== restart.ufrag || !["connected", "completed"].includes(ice.state)) {
                    return undefined;
                  }
                  const now = (await framesAbove(page, 0)).frames;
                  return now > framesBefore + 5 ? Date.now() - t0 : undefined;
                },
                5_000,
                50,
              );
              assert.ok(resumed < 1000, `media resumed ${resumed} ms after the restart`);
              const spec = handle.ice.spec!;
              assert.equal(spec.mode, "half");
              if (spec.mode === "half" && specBefore?.mode === "half") {
                assert.equal(spec.clientFacing.ufrag, restart.remoteUfrag);
                assert.deepEqual(
                  spec.janusRemote,
                  specBefore.janusRemote,
                  "Janus's ICE credentials unchanged",
                );
                assert.deepEqual(spec.janusLocal, specBefore.janusLocal);
              }
              assert.deepEqual((await handleInfo()).sdps, sdpsBefore, "Janus saw no renegotiation");
              assert.equal(
                await metric("xrtc_sessions_closed_total", { reason: "ice_restart" }),
                restartsClosed,
              );
              const grow = (await framesAbove(page, 0)).frames;
              await framesAbove(page, grow + 30, 5_000);
              await recordFigure("whip: browser ICE restart", {
                resumed_ms: resumed,
                patch_ms: Math.round(restart.patchMs),
              });
              console.log(
                `browser ICE restart: PATCH answered in ${
                  restart.patchMs.toFixed(0)
                } ms; media on the new credentials ${resumed} ms after`,
              );

              assert.equal(await w<number>("unpublish()"), 200);
              await waitFor(
                "DELETE released the Janus session",
                async () => !(await janusSessionIds(s)).includes(Number(janusSession)) || undefined,
                5_000,
              );
              assert.equal(xrtc.whip.size, 0);
              await page.close();
              await pub.close();
            },
          );

          await t.step(
            "full proxy (icedirect endpoint): whip-client publishes, the subscriber decodes",
            async () => {
              const wc = startWhipClient(topo, shim, `${base}/whip/direct`);
              try {
                await waitFor("the WHIP session", () => xrtc.whip.size === 1 || undefined, 15_000).catch(
                  (e) => {
                    throw new Error(`${e}\n--- whip-client ---\n${wc.output().slice(-4000)}`);
                  },
                );
                const page = await chromium.browser.newPage();
                await subscriber(page, base);
                await framesAbove(page, 30);
                const status = await xrtc.status() as { sessions: Array<Record<string, unknown>> };
                const mine = status.sessions.find((x) => x.signalling === "whip");
                assert.equal(mine?.mode, "full");
                await page.close();
                const janusSession = whipJanusSession(s, "direct")!;
                wc.kill("SIGKILL");
                await waitFor(
                  "the vanished publisher's WHIP session ended",
                  () => xrtc.whip.size === 0 || undefined,
                  20_000,
                );
                await waitFor(
                  "Janus released the session",
                  async () => !(await janusSessionIds(s)).includes(Number(janusSession)) || undefined,
                  10_000,
                );
              } finally {
                wc.kill("SIGKILL");
                await wc.status;
              }
            },
          );
        } finally {
          await chromium.close();
        }
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  void PORTS;
});
