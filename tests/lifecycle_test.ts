// Never drop a call, against the real Janus and Chromium: xRTC runs as its own process (main.ts), is
// drained, reloaded, killed with SIGKILL and started again, and upgraded by a new process taking over,
// while calls run through it.
import assert from "node:assert/strict";
import { blockClientUdp, makeTopology, type Topology } from "./lib/topology.ts";
import { launchChromium } from "./lib/browser.ts";
import { type Janus, type JanusOptions, startJanus } from "./lib/janus.ts";
import { openEchoSession, PORTS, runWeriftClient, TEST_BACKEND, type XrtcTestOptions } from "./lib/xrtc.ts";
import { spawnXrtc, writeConfig, type XrtcProcess } from "./lib/xrtc_process.ts";
import { artifactPath, freePort, recordFigure, sleep, waitFor } from "./lib/run.ts";
import { FLUSH_MS } from "../src/state/journal.ts";
import type { Page } from "playwright-core";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Lab {
  topo: Topology;
  janus: Janus;
  dir: string;
  base: string;
  config: string;
  stateDir: string;
  spawn(o?: { takeover?: boolean }): XrtcProcess;
}

/** A topology, Janus, and a state directory; xRTC processes are started by the test. */
async function withLab(
  o: { janus?: JanusOptions; xrtc?: XrtcTestOptions },
  fn: (lab: Lab) => Promise<void>,
): Promise<void> {
  const topo = await makeTopology();
  const dir = await Deno.makeTempDir({ prefix: "xrtc-lifecycle-" });
  const procs: XrtcProcess[] = [];
  let janus: Janus | undefined;
  try {
    janus = await startJanus(topo, o.janus ?? {});
    const stateDir = `${dir}/state`;
    const config = await writeConfig(topo, dir, { ...o.xrtc, stateDir });
    await fn({
      topo,
      janus,
      dir,
      base: `http://${topo.xrtcPublic}:${PORTS.http}`,
      config,
      stateDir,
      spawn: (so = {}) => {
        const p = spawnXrtc(config, { io: TEST_BACKEND, takeover: so.takeover });
        procs.push(p);
        return p;
      },
    });
  } catch (e) {
    // What each xRTC process said last, for the failure report.
    procs.forEach((p, i) =>
      console.error(`--- xRTC process ${i + 1}, last lines:\n${p.lines.slice(-40).join("\n")}`)
    );
    throw e;
  } finally {
    for (const p of procs) await p.kill9();
    await janus?.stop();
    await topo.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** werift's HTTP echotest call through xRTC, started and awaited until xRTC logs `upEvent` for it (the
 * client path selected, by default). The call itself is returned unawaited, in an object. */
async function weriftCallUp(
  lab: Lab,
  x: XrtcProcess,
  o: {
    tag: string;
    messages: number;
    rtp: number;
    timeoutMs: number;
    countAfterMs?: number;
    upEvent?: string;
  },
): Promise<{ call: Promise<Record<string, unknown>> }> {
  const { upEvent = "client_path_selected", ...rest } = o;
  const call = runWeriftClient(lab.topo, { signal: "http", base: lab.base, scenario: "echotest", ...rest });
  await waitFor(
    "the call is up",
    () => x.lines.some((l) => l.includes(`event=${upEvent}`)) || undefined,
    20_000,
    100,
  );
  return { call };
}

/** werift's echotest call (500 RTP packets over 10 s) through xRTC; xRTC is killed about 2 s after `upEvent`
 * and started again at once. The call's last 4 s (200 packets) are counted apart: they must come back. */
async function weriftAcrossCrash(lab: Lab, tag: string, upEvent: string): Promise<void> {
  const x1 = lab.spawn();
  await x1.ready();
  const { call } = await weriftCallUp(lab, x1, {
    tag,
    messages: 5,
    rtp: 500,
    countAfterMs: 6_000,
    timeoutMs: 60_000,
    upEvent,
  });
  await sleep(2_000);
  await x1.kill9();
  const x2 = lab.spawn();
  await x2.ready();
  await x2.logged(/event=state_restored .*live=1/);
  const r = await call;
  assert.deepEqual(r.errors, [], JSON.stringify(r));
  assert.ok(
    (r.rtpEchoedLate as number) >= 190,
    `after the restart, ${r.rtpEchoedLate}/200 packets came back: ${JSON.stringify(r)}`,
  );
}

Deno.test(
  "crash: SIGKILL mid-call and a start within 2 s; werift's call goes on (half proxy, UDP)",
  opts,
  () => withLab({}, (lab) => weriftAcrossCrash(lab, "crash", "client_path_selected")),
);

/** A directory serving the janus.js test page with Debian's janus.js and adapter.js. */
async function janusJsRoot(dir: string): Promise<string> {
  const root = `${dir}/www`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.copyFile(
    new URL("./pages/janus_echotest.html", import.meta.url).pathname,
    `${root}/janus_echotest.html`,
  );
  await Deno.copyFile("/usr/share/javascript/janus-gateway/janus.js", `${root}/janus.js`);
  await Deno.copyFile("/usr/share/javascript/webrtc-adapter/adapter.js", `${root}/adapter.js`);
  return root;
}

interface Sample {
  t: number;
  frames: number;
  pair?: string;
  remote?: string;
  dtls?: string;
  ice?: string;
  pairChanges?: number;
}
interface PageState {
  timeline: Sample[];
  events: Array<{ kind: string; up?: boolean; reason?: string; text?: string }>;
  errors: string[];
  ready: boolean;
}

/** The longest stretch, in ms, in which the decoded-frame count did not move. */
function longestFreeze(timeline: Sample[], from: number): number {
  let worst = 0, lastChange = from;
  for (let i = 1; i < timeline.length; i++) {
    if (timeline[i].t < from) continue;
    if (timeline[i].frames > timeline[i - 1].frames) {
      worst = Math.max(worst, timeline[i].t - lastChange);
      lastChange = timeline[i].t;
    }
  }
  return worst;
}

async function artifact(name: string, data: unknown): Promise<void> {
  await Deno.writeTextFile(await artifactPath(name), JSON.stringify(data, null, 2));
}

interface JanusJsCall {
  lab: Lab;
  /** The xRTC process the call started on. */
  x: XrtcProcess;
  page: Page;
  read(): Promise<PageState>;
  /** The page's state once the call was up. */
  up: PageState;
}

/** A janus.js echotest in Chromium through a freshly started xRTC, handed to `fn` once the last sample
 * satisfies `upWhen` (within 30 s); everything is torn down after. */
async function janusJsCall(
  o: {
    transport: "http" | "ws";
    janus?: JanusOptions;
    xrtc?: XrtcTestOptions;
    blockUdp?: boolean;
    what: string;
    upWhen: (last: Sample) => boolean;
  },
  fn: (c: JanusJsCall) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-page-" });
  try {
    const root = await janusJsRoot(dir);
    await withLab({ janus: o.janus, xrtc: { ...o.xrtc, root } }, async (lab) => {
      if (o.blockUdp) await blockClientUdp(lab.topo);
      const x = lab.spawn();
      await x.ready();
      const b = await launchChromium(lab.topo, { secureOrigin: lab.base });
      try {
        const page = await b.browser.newPage();
        await page.goto(`${lab.base}/janus_echotest.html?transport=${o.transport}`);
        const read = async () => await page.evaluate<PageState>("window.xrtcState");
        const up = await waitFor(
          o.what,
          async () => {
            const s = await read();
            const last = s.timeline.at(-1);
            return last && o.upWhen(last) ? s : undefined;
          },
          30_000,
          200,
        );
        await fn({ lab, x, page, read, up });
      } finally {
        await b.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Restarts of xRTC under a janus.js call in Chromium: the same PeerConnection must go on, untouched. */
async function janusJsAcrossRestart(transport: "http" | "ws", how: "crash" | "upgrade"): Promise<void> {
  await janusJsCall(
    {
      transport,
      janus: transport === "ws" ? { reclaimTimeout: 10 } : {},
      xrtc: {
        options: `  consent_timeout: 30s${transport === "ws" ? "\n  janus: { reclaim_timeout: 10s }" : ""}`,
      },
      what: "30 decoded frames",
      upWhen: (last) => last.frames > 30 && last.dtls === "connected",
    },
    async ({ lab, x: x1, read, up }) => {
      const before = up.timeline.at(-1)!;
      const t0 = before.t;
      if (how === "crash") {
        await x1.kill9();
        const x2 = lab.spawn();
        await x2.ready();
      } else {
        const x2 = lab.spawn({ takeover: true });
        await x2.ready();
        assert.equal(await x1.exited(5_000), 0, "the old process handed over and exited");
      }
      await sleep(6_000);
      const after = await read();
      const last = after.timeline.at(-1)!;
      const freeze = longestFreeze(after.timeline, t0 - 1_000);
      await artifact(`media-gap-janusjs-${transport}-${how}.json`, {
        freeze_ms: freeze,
        before,
        last,
        events: after.events,
      });
      assert.deepEqual(after.errors, []);
      assert.ok(
        last.frames > before.frames + 60,
        `frames went on decoding: ${before.frames} -> ${last.frames}`,
      );
      assert.equal(last.pair, before.pair, "the same selected candidate pair");
      assert.equal(last.pairChanges, before.pairChanges, "no other pair was selected (no ICE restart)");
      assert.equal(last.remote, before.remote);
      assert.ok(
        after.timeline.filter((s) => s.t > t0).every((s) => s.dtls === "connected"),
        "DTLS stayed connected (no new handshake)",
      );
      assert.ok(
        !after.events.some((e) => e.kind === "webrtc" && e.up === false),
        `Janus reported no hangup: ${JSON.stringify(after.events)}`,
      );
      assert.ok(freeze < 5_000, `the media gap was ${freeze} ms`);
      if (transport === "ws" || how === "crash") {
        // The connection to the server was lost with the process: janus.js reconnected and claimed.
        assert.ok(after.events.some((e) => e.kind === "reconnected"), JSON.stringify(after.events));
      }
    },
  );
}

Deno.test(
  "crash: Chromium with janus.js over HTTP long-poll keeps its PeerConnection through SIGKILL and a restart",
  opts,
  async () => {
    await janusJsAcrossRestart("http", "crash");
  },
);

Deno.test(
  "crash: janus.js over WebSocket reconnects and claims its session (Janus reclaim window); the call goes on",
  opts,
  async () => {
    await janusJsAcrossRestart("ws", "crash");
  },
);

Deno.test(
  "upgrade: a new process takes over the ports and the live sessions; the old one exits; the call goes on",
  opts,
  async () => {
    await janusJsAcrossRestart("http", "upgrade");
  },
);

Deno.test(
  "crash: the full proxy (icedirect) resumes werift's call",
  opts,
  () =>
    withLab({ xrtc: { icedirect: true } }, (lab) => weriftAcrossCrash(lab, "full", "janus_target_selected")),
);

Deno.test("crash: 100 werift sessions at once all resume", opts, async () => {
  await withLab({
    xrtc: {
      options:
        "  consent_timeout: 30s\n  limits: { janus_session_rate_per_address: 1000, handles_per_session: 200 }",
    },
  }, async (lab) => {
    const x1 = lab.spawn();
    await x1.ready();
    // Each session sends 10 RTP packets a second for 30 s; its last 5 s are counted apart, after the
    // restart (all 100 in one werift process, so the rate is kept low).
    const call = runWeriftClient(lab.topo, {
      signal: "http",
      base: lab.base,
      scenario: "echotest",
      tag: "many",
      messages: 1,
      rtp: 300,
      rtpIntervalMs: 100,
      countAfterMs: 25_000,
      sessions: 100,
      timeoutMs: 120_000,
    });
    await waitFor(
      "100 calls up",
      () =>
        x1.lines.filter((l) => l.includes("event=client_path_selected")).length >= 100 &&
          x1.lines.filter((l) => l.includes("event=janus_leg_selected")).length >= 100 || undefined,
      60_000,
      200,
    );
    // The journal is written every 100 ms (FLUSH_MS): a crash loses at most the latest 100 ms of changes.
    await sleep(3 * FLUSH_MS);
    await x1.kill9();
    const x2 = lab.spawn();
    await x2.ready();
    const restored = /event=state_restored .*live=(\d+)/.exec(await x2.logged(/event=state_restored/));
    assert.equal(Number(restored?.[1]), 100, "every live session restored");
    const r = await call;
    assert.deepEqual(r.errors, []);
    const per = r.perSession as Array<{ rtpEchoedLate: number }>;
    assert.equal(per.length, 100);
    const resumed = per.filter((s) => s.rtpEchoedLate >= 45).length; // 90 % of the last 50
    assert.equal(
      resumed,
      100,
      `sessions whose media came back: ${resumed}/100 (${per.map((s) => s.rtpEchoedLate).join(",")})`,
    );
  });
});

Deno.test(
  "ICE-TCP across a crash: the connection dies with the process; the client's ICE restart brings the media back",
  opts,
  () =>
    janusJsCall(
      {
        transport: "http",
        blockUdp: true,
        what: "30 decoded frames over ICE-TCP",
        upWhen: (last) => last.frames > 30 && last.remote?.startsWith("tcp:") === true,
      },
      async ({ lab, x: x1, page, read, up: upState }) => {
        const up = upState.timeline.at(-1)!;
        await x1.kill9();
        const x2 = lab.spawn();
        await x2.ready();
        // The client's TCP connection ended with the process: nothing flows on it any more.
        await sleep(3_000);
        const stalled = (await read()).timeline.at(-1)!;
        assert.ok(
          stalled.frames - up.frames < 90,
          `media stopped with the TCP connection (${up.frames} -> ${stalled.frames})`,
        );
        const restartAt = stalled.t;
        await page.evaluate("window.xrtcIceRestart()");
        const back = await waitFor(
          "frames again after the ICE restart",
          async () => {
            const s = await read();
            const last = s.timeline.at(-1)!;
            return last.frames > stalled.frames + 60 ? s : undefined;
          },
          15_000,
          200,
        );
        const resumedAt = back.timeline.find((x) => x.t > restartAt && x.frames > stalled.frames)!.t;
        await artifact("media-gap-ice-tcp-crash-then-ice-restart.json", {
          resumed_after_ice_restart_ms: resumedAt - restartAt,
        });
        assert.ok(
          back.timeline.at(-1)!.remote?.startsWith("tcp:"),
          "over a new TCP connection to the same port",
        );
        assert.ok(
          x2.lines.some((l) => l.includes("event=client_ice_restart")),
          "xRTC answered the ICE restart itself",
        );
      },
    ),
);

Deno.test(
  "client ICE restart over UDP (half proxy): xRTC answers it with new credentials, the Janus leg stays as it is",
  opts,
  () =>
    janusJsCall(
      {
        transport: "http",
        what: "30 decoded frames over UDP",
        upWhen: (last) => last.frames > 30 && last.remote?.startsWith("udp:") === true,
      },
      async ({ x, page, read, up: upState }) => {
        const up = upState.timeline.at(-1)!;
        const legEvents = () => x.lines.filter((l) => /event=janus_leg_(selected|failed)/.test(l)).length;
        const legsBefore = legEvents();
        await page.evaluate("window.xrtcIceRestart()");
        const after = await waitFor(
          "frames again after the ICE restart",
          async () => {
            const s = await read();
            const restarted = x.lines.some((l) => l.includes("event=client_ice_restart"));
            return restarted && s.timeline.at(-1)!.frames > up.frames + 90 ? s : undefined;
          },
          15_000,
          200,
        );
        const freeze = longestFreeze(after.timeline, up.t);
        await artifact("media-gap-client-ice-restart-udp.json", { freeze_ms: freeze });
        assert.equal(legEvents(), legsBefore, "the Janus leg neither re-selected nor failed");
        assert.deepEqual(after.errors, []);
        assert.equal(after.timeline.at(-1)!.dtls, "connected", "the same DTLS session");
      },
    ),
);

Deno.test(
  "drain: SIGTERM refuses new sessions (HTTP and WebSocket, 503), the live calls go on, then xRTC exits; a second SIGTERM stops at once",
  opts,
  async (t) => {
    const adminPort = freePort();
    await withLab({ xrtc: { admin: { addr: `127.0.0.1:${adminPort}` } } }, async (lab) => {
      await t.step("drain", async () => {
        const x = lab.spawn();
        // A failure here must not leave this xRTC on the state directory (the next step starts its own).
        let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
        try {
          await x.ready();
          const calls = [0, 1, 2, 3, 4].map((i) =>
            runWeriftClient(lab.topo, {
              signal: i % 2 ? "ws" : "http",
              base: lab.base,
              scenario: "echotest",
              tag: `d${i}`,
              messages: 5,
              rtp: 300,
              timeoutMs: 60_000,
            })
          );
          browser = await launchChromium(lab.topo, { secureOrigin: lab.base });
          const page = await browser.browser.newPage();
          await page.goto(`${lab.base}/echotest.html?autostart=1&signal=http`);
          await waitFor(
            "6 calls up",
            () => x.lines.filter((l) => l.includes("event=client_path_selected")).length >= 6 || undefined,
            30_000,
            100,
          );
          const frames = async () =>
            (await page.evaluate<{ framesDecoded: number }>("window.xrtcStats()")).framesDecoded;
          // A selected path is not yet decoded video (DTLS, the first keyframe): the drain starts on a call
          // whose media flows.
          await waitFor(
            "Chromium decodes the echo",
            async () => await frames() >= 30 || undefined,
            20_000,
            100,
          );
          x.signal("SIGTERM");
          await sleep(300);
          const created = await fetch(`${lab.base}/janus`, {
            method: "POST",
            body: JSON.stringify({ janus: "create", transaction: "c" }),
          });
          assert.equal(created.status, 503);
          assert.ok(Number(created.headers.get("retry-after")) > 0);
          assert.equal((await created.json()).janus, "error");
          const ws = new WebSocket(`ws://${lab.topo.xrtcPublic}:${PORTS.http}/`, "janus-protocol");
          await new Promise((r) => ws.onopen = r);
          const refused = await new Promise<Record<string, unknown>>((resolve) => {
            ws.onmessage = (ev) => resolve(JSON.parse(ev.data));
            ws.send(JSON.stringify({ janus: "create", transaction: "w" }));
          });
          ws.close();
          assert.equal((refused.error as { code: number }).code, 503);
          assert.equal(
            (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status,
            503,
            "not ready while draining",
          );
          const f1 = await frames();
          await waitFor(
            "Chromium's call goes on",
            async () => await frames() > f1 + 20 || undefined,
            5_000,
            100,
          );
          const results = await Promise.all(calls);
          for (const r of results) {
            assert.deepEqual(r.errors, []);
            assert.ok(
              (r.rtpEchoed as number) >= 285,
              `a werift call kept ${r.rtpEchoed}/300 through the drain`,
            );
          }
          assert.equal(await x.exited(200), undefined, "still running: Chromium's call is live");
          const hungUp = Date.now();
          await page.evaluate("window.xrtcStop()");
          const code = await x.exited(5_000);
          const exitMs = Date.now() - hungUp;
          await recordFigure("drain: exit after the last hangup", { exit_ms: exitMs });
          assert.equal(code, 0);
          assert.ok(exitMs < 1_500, `exited ${exitMs} ms after the last hangup`);
        } finally {
          await browser?.close().catch(() => {});
          await x.kill9();
        }
      });
      await t.step("a second SIGTERM during a drain stops at once", async () => {
        const x = lab.spawn();
        await x.ready();
        const { call } = await weriftCallUp(lab, x, {
          tag: "twice",
          messages: 1,
          rtp: 500,
          timeoutMs: 30_000,
        });
        x.signal("SIGTERM");
        await sleep(500);
        assert.equal(await x.exited(100), undefined, "draining");
        const sent = Date.now();
        x.signal("SIGTERM");
        const code = await x.exited(3_000);
        const stopMs = Date.now() - sent;
        await recordFigure("drain: stop after a second SIGTERM", { stop_ms: stopMs });
        assert.equal(code, 0);
        assert.ok(stopMs < 1_000, `stopped ${stopMs} ms after the second signal`);
        await call;
      });
    });
  },
);

Deno.test(
  "reload: SIGHUP applies a new upstream, route and candidate_ips with live calls; a broken file changes nothing",
  opts,
  async () => {
    const adminPort = freePort();
    await withLab({ xrtc: { admin: { addr: `127.0.0.1:${adminPort}` } } }, async (lab) => {
      const x = lab.spawn();
      await x.ready();
      const { call } = await weriftCallUp(lab, x, {
        tag: "reload",
        messages: 5,
        rtp: 400,
        timeoutMs: 60_000,
      });
      const original = await Deno.readTextFile(lab.config);
      // A second candidate address, the upstream placed by least sessions with faster probes, a new route.
      // And an option a running process cannot change, which is reported as not applied.
      const changed = original
        .replace("  consent_timeout: 30s\n", "  consent_timeout: 30s\n  udp_gro: false\n")
        .replace(
          `candidate_ips: [${lab.topo.xrtcPublic}]\n  ice_tcp:`,
          `candidate_ips: [${lab.topo.xrtcPublic}, 198.19.0.3]\n  ice_tcp:`,
        )
        .replace("mode: rr", "mode: least_sessions\n    health: { interval: 1s }")
        .replace(
          "        janus:\n          upstream: http://janus",
          "        other:\n          upstream: http://janus\n          paths: [/other]\n        janus:\n          upstream: http://janus",
        );
      assert.notEqual(changed, original);
      await Deno.writeTextFile(lab.config, changed);
      x.signal("SIGHUP");
      await waitFor(
        "reloaded",
        () => x.lines.some((l) => /event=reloaded generation=2/.test(l)) || undefined,
        5_000,
        100,
      );
      await waitFor(
        "udp_gro reported as not applied",
        () => x.lines.some((l) => /event=reload_not_applied what="options\.udp_gro/.test(l)) || undefined,
        5_000,
        100,
      );
      const status = await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json();
      assert.equal(status.config.generation, 2);
      assert.match(
        await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(),
        /xrtc_config_generation 2/,
      );
      const s = await openEchoSession(lab.base);
      assert.ok(
        s.candidates.some((c) => c.includes(" 198.19.0.3 ")),
        `new sessions get the new candidate: ${s.candidates}`,
      );
      // A broken file: refused with its errors and lines; everything stays as it was.
      await Deno.writeTextFile(lab.config, changed.replace("proto: udp", "proto: [udp"));
      x.signal("SIGHUP");
      await waitFor(
        "refused",
        () => x.lines.some((l) => l.includes("event=reload_refused")) || undefined,
        5_000,
        100,
      );
      assert.ok(
        x.lines.some((l) => /event=reload_error problem=.*routes\.yml:\d+/.test(l)),
        x.lines.filter((l) => l.includes("reload")).join("\n"),
      );
      assert.match(
        await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(),
        /xrtc_config_last_reload_success 0/,
      );
      assert.equal((await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()).config.generation, 2);
      const r = await call;
      assert.deepEqual(r.errors, []);
      assert.ok((r.rtpEchoed as number) >= 380, `the live call kept ${r.rtpEchoed}/400 through both reloads`);
    });
  },
);

/** The bytes Janus has received on a handle, every medium (its admin API's webrtc.media[].stats.in). */
async function janusBytesIn(janus: Janus, session: string, handle: string): Promise<number> {
  const info = (await janus.admin({ janus: "handle_info" }, `/${session}/${handle}`)).info as {
    webrtc?: { media?: Record<string, { stats?: { in?: { bytes?: number } } }> };
  };
  return Object.values(info?.webrtc?.media ?? {}).reduce((n, m) => n + (m.stats?.in?.bytes ?? 0), 0);
}

Deno.test(
  "a WHIP publisher survives an xRTC crash: media resumes, the resource keeps its ETag and answers, DELETE releases it",
  opts,
  async () => {
    const root = await Deno.makeTempDir({ prefix: "xrtc-whip-www-" });
    await Deno.copyFile(new URL("./pages/whip.html", import.meta.url).pathname, `${root}/whip.html`);
    try {
      await withLab({ xrtc: { root, whip: "open: { upstream: http://janus, room: 1234 }" } }, async (lab) => {
        const x1 = lab.spawn();
        await x1.ready();
        const b = await launchChromium(lab.topo, { secureOrigin: lab.base });
        try {
          const pub = await b.browser.newPage();
          await pub.goto(`${lab.base}/whip.html`);
          await pub.evaluate("publish('/whip/open')");
          const state = await pub.evaluate<{ resource: string; etag: string }>("whipState");
          const opened = await waitFor(
            "the WHIP session open",
            () => x1.lines.find((l) => l.includes("event=whip_session_open")),
            10_000,
          );
          const [janusSession, handle] = /session=(\d+)\/(\d+)/.exec(opened)!.slice(1);
          const flowing = async (label: string) => {
            const from = await janusBytesIn(lab.janus, janusSession, handle);
            const t0 = Date.now();
            await waitFor(
              label,
              async () => (await janusBytesIn(lab.janus, janusSession, handle)) > from + 20_000 || undefined,
              15_000,
              100,
            );
            return Date.now() - t0;
          };
          await flowing("media reaching Janus through xRTC");
          await sleep(FLUSH_MS * 3); // the journal has the live state

          await x1.kill9();
          const killedAt = Date.now();
          const x2 = lab.spawn();
          await x2.ready();
          await x2.logged(/event=whip_session_restored/);
          const resumedMs = (await flowing("media reaching Janus again after the restart")) +
            (Date.now() - killedAt);

          // The resource is known under its id and ETag: a trickle with the ETag is taken, a stale one not.
          const patch = async (etag: string) => {
            const r = await fetch(state.resource.replace(/^http:\/\/[^/]+/, lab.base), {
              method: "PATCH",
              headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": etag },
              body: "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n",
            });
            await r.body?.cancel();
            return r.status;
          };
          assert.equal(await patch(state.etag), 204);
          assert.equal(await patch('"stale"'), 412);
          assert.equal(await pub.evaluate<number>("unpublish()"), 200);
          await waitFor(
            "DELETE released the Janus session",
            async () =>
              !((await lab.janus.admin({ janus: "list_sessions" })).sessions as number[]).includes(
                Number(janusSession),
              ) || undefined,
            5_000,
          );
          await artifact("media-gap-whip-crash.json", { resumed_ms: resumedMs });
        } finally {
          await b.close();
        }
      });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
