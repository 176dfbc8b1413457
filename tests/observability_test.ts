// Seeing inside a running xRTC, against the real parts: Debian's Prometheus scrapes the admin listener
// while calls run; Chromium opens the status page during a live call; 1,000 abandoned Janus sessions are
// forgotten; /readyz follows Janus going down and coming back.
import assert from "node:assert/strict";
import { openEchoSession, PORTS, runWeriftClient, signedCheck, withStack } from "./lib/xrtc.ts";
import { artifactPath, freePort, recordFigure, sleep, waitFor } from "./lib/run.ts";
import { startJanus } from "./lib/janus.ts";
import { launchChromium } from "./lib/browser.ts";
import { dropped, metric } from "./lib/metrics.ts";
import type { Xrtc } from "../src/app.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Every password xRTC holds for its live sessions (none may appear in any admin response). */
function passwords(x: Xrtc): string[] {
  const out: string[] = [];
  for (const s of x.signalling.sessions.sessions()) {
    for (const h of s.handles.values()) {
      const spec = h.ice.spec;
      out.push(h.ice.janusLocal.pwd);
      if (spec?.client) out.push(spec.client.pwd);
      if (spec?.mode === "half") out.push(spec.clientFacing.pwd, spec.janusRemote.pwd);
      if (spec?.mode === "full") out.push(spec.janus.pwd);
    }
  }
  return out;
}

Deno.test(
  "Prometheus (Debian's) scrapes xRTC: the values match what the test did; promtool accepts the exposition",
  opts,
  async () => {
    const adminPort = freePort(), promPort = freePort();
    await withStack({ xrtc: { admin: { addr: `127.0.0.1:${adminPort}` } } }, async ({ topo, xrtc, base }) => {
      const dir = await Deno.makeTempDir({ prefix: "xrtc-prometheus-" });
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        `
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: xrtc
    static_configs: [{ targets: ["127.0.0.1:${adminPort}"] }]
`,
      );
      const prom = new Deno.Command("prometheus", {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${promPort}`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const query = async (q: string): Promise<number> => {
        const r =
          await (await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`))
            .json();
        return r.data.result.length ? Number(r.data.result[0].value[1]) : NaN;
      };
      try {
        await waitFor(
          "Prometheus up and scraping xRTC",
          async () => await query('up{job="xrtc"}') === 1 || undefined,
          30_000,
          500,
        );
        const r = await runWeriftClient(topo, {
          signal: "http",
          base,
          scenario: "echotest",
          tag: "prom",
          messages: 5,
          rtp: 30,
        });
        assert.deepEqual(r.errors, []);
        const s = await openEchoSession(base);
        const attacker = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
        await attacker.send(signedCheck(s.ufrag, s.clientUfrag, "forged-password-forged-pw"), {
          transport: "udp",
          hostname: topo.xrtcPublic,
          port: PORTS.udp,
        });
        attacker.close();
        await waitFor(
          "the forged check counted here",
          async () => (await dropped("check_bad_integrity")) >= 1 || undefined,
          3_000,
        );
        const local = await xrtc.metricsText();
        // Scraped once the drop is: then exactly one, and both sessions (the echotest's and the forged one's).
        await waitFor(
          "Prometheus's scrape with the forged check and both sessions",
          async () =>
            await query('xrtc_dropped_packets_total{reason="check_bad_integrity"}') === 1 &&
              await query("sum(xrtc_sessions_opened_total)") >= 2 || undefined,
          10_000,
          250,
        );
        const toJanus = await query('sum(xrtc_forwarded_packets_total{direction="to_janus"})');
        const toClient = await query('sum(xrtc_forwarded_packets_total{direction="to_client"})');
        assert.ok(toJanus >= 30 && toJanus < 400, `to Janus: ${toJanus} (30 RTP, data channel, DTLS)`);
        assert.ok(toClient >= 27 && toClient < 400, `to the client: ${toClient}`);
        const here = Number(
          /xrtc_forwarded_packets_total\{direction="to_janus",transport="udp"\} (\d+)/.exec(local)?.[1],
        );
        assert.ok(
          Math.abs(toJanus - here) <= 10,
          `Prometheus ${toJanus} and xRTC ${here} agree within 10 packets`,
        );
        assert.ok(
          await query('xrtc_signalling_requests_total{protocol="http",kind="create",outcome="ok"}') >= 2,
        );
        // Every shard is up: the main thread's and, with media on worker threads (ffi), each worker's.
        assert.equal(await query("sum(xrtc_shard_up)"), xrtc.shards!.count);
        assert.ok(await query("xrtc_process_resident_memory_bytes") > 1e6);
        assert.ok(await query('xrtc_build_info{io_backend!=""}') === 1);
        const file = `${dir}/metrics.txt`;
        await Deno.writeTextFile(file, local);
        const check = await new Deno.Command("promtool", {
          args: ["check", "metrics"],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = check.stdin.getWriter();
        await writer.write(new TextEncoder().encode(local));
        await writer.close();
        const out = await check.output();
        assert.equal(
          out.code,
          0,
          new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
        );
      } finally {
        prom.kill("SIGKILL");
        await prom.status;
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
);

Deno.test(
  "the status page in Chromium during a live call: the session's row, rising counts, a moving chart, no password anywhere",
  opts,
  async () => {
    const token = "status-page-token-0123456789";
    await withStack({ xrtc: { admin: { addr: `198.19.0.1:9090`, token } } }, async ({ topo, xrtc, base }) => {
      const call = runWeriftClient(topo, {
        signal: "http",
        base,
        scenario: "echotest",
        tag: "page",
        messages: 5,
        rtp: 400,
        timeoutMs: 60_000,
      });
      // Read over every shard: with the ffi backend the session is live on a worker thread.
      await waitFor(
        "a live session",
        async () => await metric("xrtc_sessions_active") === 1 || undefined,
        15_000,
        200,
      );
      const held = passwords(xrtc);
      const b = await launchChromium(topo);
      try {
        const page = await b.browser.newPage();
        const bodies: string[] = [];
        page.on("response", (r) => void r.text().then((t) => bodies.push(t)).catch(() => {}));
        await page.goto(`http://${topo.xrtcPublic}:9090/status.html?token=${token}`);
        const row = page.locator("#sessions tbody tr").first();
        await row.waitFor({ timeout: 10_000 });
        const cells = async () => await row.locator("td").allTextContents();
        const first = await cells();
        assert.match(first[0], /^\d+$/, "the Janus session id");
        assert.match(first[1], /^\d+$/, "the handle id");
        assert.match(
          first[5],
          new RegExp(`udp:${topo.clientAddr.replaceAll(".", "\\.")}:\\d+`),
          `the client's tuple: ${first[5]}`,
        );
        const chart = async () => await page.evaluate<string>(`document.getElementById("chart").toDataURL()`);
        const chart1 = await chart();
        await sleep(2_500);
        const later = await cells();
        const parse = (t: string) => t.endsWith("k") ? Number(t.slice(0, -1)) * 1000 : Number(t);
        assert.ok(parse(later[8]) > parse(first[8]), `packets to Janus rise: ${first[8]} -> ${later[8]}`);
        assert.notEqual(await chart(), chart1, "the chart moved");
        await page.screenshot({ path: await artifactPath("status-page.png"), fullPage: true });
        const html = await page.content();
        for (const pwd of held) {
          assert.ok(!html.includes(pwd), "no password in the page");
          assert.ok(!bodies.some((body) => body.includes(pwd)), "no password in any response");
        }
        assert.ok(bodies.length >= 2, "the page polled /status");
      } finally {
        await b.close();
      }
      const r = await call;
      assert.deepEqual(r.errors, []);
    });
  },
);

Deno.test(
  "churn: 1,000 Janus sessions abandoned over HTTP and WebSocket are forgotten, and the heap with them",
  opts,
  async () => {
    const options =
      "  consent_timeout: 30s\n  janus: { session_timeout: 5s }\n  limits: { janus_session_rate_per_address: 2000, janus_sessions_per_address: 2000 }";
    await withStack({ janus: { sessionTimeout: 5 }, xrtc: { options } }, async ({ topo, xrtc, base }) => {
      // The JS heap and the memory outside it (buffers: a retained request keeps its bodies there).
      const heap = () => Deno.memoryUsage().heapUsed / 1048576;
      const external = () => Deno.memoryUsage().external / 1048576;
      const heapBefore = heap(), externalBefore = external();
      for (let i = 0; i < 500; i += 50) {
        await Promise.all(Array.from({ length: 50 }, async () => {
          const r = await fetch(`${base}/janus`, {
            method: "POST",
            body: JSON.stringify({ janus: "create", transaction: "c" }),
          });
          const sid = (await r.json()).data.id;
          await (await fetch(`${base}/janus/${sid}`, {
            method: "POST",
            body: JSON.stringify({ janus: "attach", transaction: "a", plugin: "janus.plugin.echotest" }),
          })).body?.cancel();
        }));
      }
      for (let i = 0; i < 10; i++) {
        const ws = new WebSocket(`ws://${topo.xrtcPublic}:${PORTS.http}/`, "janus-protocol");
        await new Promise((res) => ws.onopen = res);
        let created = 0;
        await new Promise<void>((res) => {
          ws.onmessage = (ev) => {
            if (JSON.parse(ev.data).janus === "success" && ++created === 50) res();
          };
          for (let j = 0; j < 50; j++) ws.send(JSON.stringify({ janus: "create", transaction: `c${j}` }));
        });
        ws.close(); // abruptly, with every session on it
      }
      assert.ok(xrtc.signalling.sessions.size <= 1_000);
      await waitFor(
        "every Janus session forgotten",
        () => xrtc.signalling.sessions.size === 0 || undefined,
        20_000,
        500,
      );
      assert.equal(xrtc.signalling.sessions.handleCount, 0);
      assert.equal(xrtc.signalling.sessions.trackedClients, 0);
      assert.equal(xrtc.negotiator!.committed, 0);
      // Memory comes back once the collector has run (no --expose-gc here: give it work and time). The JS
      // heap, with garbage of buffers (which do not count on it); then the memory outside it, where a
      // retained request keeps its bodies, with garbage of objects (which do not count there).
      const settles = async (what: string, grown: () => number, garbage: () => void) => {
        const mb = await waitFor(
          `${what} back near its baseline`,
          () => {
            garbage();
            const mb = grown();
            if (mb < 20) return mb;
            throw new Error(`${what} +${mb.toFixed(1)} MB`);
          },
          20_000,
          500,
        );
        await recordFigure("churn: 1,000 abandoned Janus sessions", {
          [`${what}_growth_mb`]: Math.round(mb),
        });
      };
      await settles("heap", () => heap() - heapBefore, () => {
        for (let i = 0; i < 200; i++) new Uint8Array(1 << 20);
      });
      await settles("external", () => external() - externalBefore, () => {
        for (let i = 0; i < 50; i++) Array.from({ length: 100_000 }, (_, j) => ({ j }));
      });
    });
  },
);

Deno.test(
  "/readyz turns 503 when every Janus backend is down, and 200 again when one returns; admin paths are 404 on public listeners",
  opts,
  async () => {
    const adminPort = freePort();
    const upstream = "\n    health: { interval: 500ms, timeout: 400ms, fall: 2, rise: 1 }";
    await withStack(
      { xrtc: { admin: { addr: `127.0.0.1:${adminPort}` }, upstream } },
      async ({ topo, janus, base }) => {
        const readyz = async () => {
          const r = await fetch(`http://127.0.0.1:${adminPort}/readyz?verbose`);
          return { status: r.status, text: await r.text() };
        };
        await waitFor("ready", async () => (await readyz()).status === 200 || undefined, 10_000, 200);
        assert.equal((await fetch(`http://127.0.0.1:${adminPort}/livez`)).status, 200);
        for (const path of ["/metrics", "/readyz", "/status", "/livez", "/healthz"]) {
          const r = await fetch(`${base}${path}`);
          await r.body?.cancel();
          assert.equal(r.status, 404, `${path} on a public listener`);
        }
        await janus.stop();
        const down = await waitFor(
          "not ready",
          async () => {
            const r = await readyz();
            return r.status === 503 ? r : undefined;
          },
          10_000,
          200,
        );
        assert.match(down.text, /\[-\]janus failed/);
        const again = await startJanus(topo);
        try {
          await waitFor("ready again", async () => (await readyz()).status === 200 || undefined, 10_000, 200);
        } finally {
          await again.stop();
        }
      },
    );
  },
);
