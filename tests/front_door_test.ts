// The front door on loopback: descriptor exhaustion under a lowered limit, connection-phase deadlines on
// both HTTP entry points, ICE-TCP connections' memory, shutdown with a body in flight, upstream body
// deadlines and cancellation, and body limits on streamed routes. No Janus needed: non-Janus routes go
// to an upstream of the test's own.
import assert from "node:assert/strict";
import { loadConfigText } from "../src/config/load.ts";
import { start, type Xrtc } from "../src/app.ts";
import { encodeFrame } from "../src/io/framing.ts";
import { ROOT } from "./lib/xrtc.ts";
import { collectLines, freePort, recordFigure, sleep, waitFor } from "./lib/run.ts";
import { BINDING_REQUEST, buildStun, randomTransactionId } from "../src/stun/message.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const DENO = `${ROOT}node_modules/.bin/deno`;

/** Resolves true when the peer closes the connection within `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(4096);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const n = await Promise.race([conn.read(buf).catch(() => null), sleep(end - Date.now()).then(() => -1)]);
    if (n === null) return true;
    if (n === -1) return false;
  }
  return false;
}

function configText(
  p: { http: number; tcp: number; upstream?: number; extraOptions?: string; timeouts?: string },
): string {
  const timeouts = p.timeouts ?? "header_timeout: 2s\n      body_timeout: 2s\n      keepalive_timeout: 2s";
  const routes = p.upstream
    ? `
      routes:
        other: { upstream: "http://127.0.0.1:${p.upstream}", paths: [/up] }
        janus: { upstream: "http://127.0.0.1:1", paths: [/janus] }`
    : "";
  return `
options:
  consent_timeout: 30s
${p.extraOptions ?? ""}
services:
  ice:
    proto: tcp
    net: { addr: "127.0.0.1:${p.tcp}", enable_ice: true, candidate_ips: [127.0.0.1] }
    enable_http: true
    http:
      root: ${ROOT}html
      ${timeouts}${routes}
  web:
    proto: http
    net: { addr: "127.0.0.1:${p.http}" }
    http:
      root: ${ROOT}html
      ${timeouts}${routes}
`;
}

async function withXrtc(text: string, fn: (x: Xrtc) => Promise<void>): Promise<void> {
  const x = await start(loadConfigText(text, "front-door.yml").config, { ioBackend: "deno" });
  try {
    await fn(x);
  } finally {
    await x.stop();
  }
}

/** xRTC as its own process under a descriptor limit (prlimit), printing its lines as they come. */
function spawnXrtc(configFile: string, nofile?: number) {
  const args = ["run", "-A", `${ROOT}main.ts`, "--config", configFile, "--io", "deno"];
  const cmd = nofile
    ? new Deno.Command("prlimit", {
      args: [`--nofile=${nofile}:${nofile}`, DENO, ...args],
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(DENO, { args, stdout: "piped", stderr: "piped" });
  const child = cmd.spawn();
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) collectLines(stream, lines);
  return {
    child,
    lines,
    ready: () => waitFor("xrtc: ready", () => lines.includes("xrtc: ready") || undefined, 20_000),
  };
}

async function httpGet(port: number, path = "/"): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  await r.body?.cancel();
  return r.status;
}

Deno.test(
  "descriptor exhaustion: with 256 descriptors, 1,000 connections to each port neither kill xRTC nor stop it serving",
  opts,
  async (t) => {
    const dir = await Deno.makeTempDir();
    try {
      const cases = [
        ["the limit derived from the descriptors refuses the excess", ""],
        [
          "a configured limit beyond the descriptors is held to what they allow",
          "  limits: { max_connections: 100000, max_connections_per_address: 100000 }",
        ],
      ];
      for (const [label, extra] of cases) {
        await t.step(label, async () => {
          const http = freePort(), tcp = freePort();
          const file = `${dir}/fd.yml`;
          await Deno.writeTextFile(file, configText({ http, tcp, extraOptions: extra }));
          const x = spawnXrtc(file, 256);
          try {
            await x.ready();
            const conns: Deno.Conn[] = [];
            for (const port of [http, tcp]) {
              for (let i = 0; i < 1_000; i++) {
                try {
                  conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
                } catch { /* the backlog may fill */ }
              }
            }
            await sleep(1_000);
            const alive = await Promise.race([x.child.status.then(() => false), sleep(100).then(() => true)]);
            assert.ok(alive, `xRTC is alive:\n${x.lines.slice(-20).join("\n")}`);
            for (const c of conns) {
              try {
                c.close();
              } catch { /* closed by xRTC */ }
            }
            await sleep(1_000);
            assert.equal(await httpGet(http), 200, "the http listener serves again");
            assert.equal(await httpGet(tcp), 200, "the TCP port serves again");
            if (extra) {
              assert.ok(
                x.lines.some((l) => /max_connections 100000 needs more descriptors/.test(l)),
                "and says so",
              );
            }
          } finally {
            x.child.kill("SIGKILL");
            await x.child.status;
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "slow clients: header drip, body drip and idle keep-alive are closed on time on both HTTP entry points",
  opts,
  async (t) => {
    const http = freePort(), tcp = freePort(), upstreamPort = freePort();
    const upstream = Deno.serve(
      { hostname: "127.0.0.1", port: upstreamPort, onListen() {} },
      () => new Response("up"),
    );
    try {
      await withXrtc(configText({ http, tcp, upstream: upstreamPort }), async () => {
        for (const [name, port] of [["http listener", http], ["TCP port", tcp]] as const) {
          await t.step(
            `${name}: a request head dripped a byte at a time is closed after header_timeout`,
            async () => {
              const conn = await Deno.connect({ hostname: "127.0.0.1", port });
              const started = Date.now();
              const drip = (async () => {
                for (
                  const b of new TextEncoder().encode(
                    "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(100),
                  )
                ) {
                  try {
                    await conn.write(new Uint8Array([b]));
                  } catch {
                    return;
                  }
                  await sleep(300);
                }
              })();
              assert.ok(await closedWithin(conn, 8_000), "closed");
              const elapsed = Date.now() - started;
              assert.ok(elapsed >= 1_500 && elapsed < 6_000, `after ~2 s: ${elapsed} ms`);
              conn.close();
              await drip;
            },
          );
          await t.step(
            `${name}: a request body dripped to the Janus route is answered 408 after body_timeout`,
            async () => {
              const conn = await Deno.connect({ hostname: "127.0.0.1", port });
              await conn.write(
                new TextEncoder().encode("POST /janus HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"),
              );
              const started = Date.now();
              const buf = new Uint8Array(1024);
              let text = "";
              const reader = (async () => {
                for (;;) {
                  const n = await conn.read(buf).catch(() => null);
                  if (n === null) return;
                  text += new TextDecoder().decode(buf.subarray(0, n));
                }
              })();
              for (let i = 0; i < 10 && !text; i++) {
                await conn.write(new Uint8Array([0x20])).catch(() => {});
                await sleep(500);
              }
              await Promise.race([reader, sleep(5_000)]);
              assert.match(text, /^HTTP\/1\.1 408/, text.slice(0, 80));
              assert.ok(Date.now() - started < 6_000);
              conn.close();
            },
          );
          await t.step(
            `${name}: an idle keep-alive connection is closed after keepalive_timeout`,
            async () => {
              const conn = await Deno.connect({ hostname: "127.0.0.1", port });
              await conn.write(new TextEncoder().encode("GET /up/x HTTP/1.1\r\nHost: x\r\n\r\n"));
              const buf = new Uint8Array(1024);
              const n = await conn.read(buf);
              assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
              const started = Date.now();
              assert.ok(await closedWithin(conn, 8_000), "closed");
              const elapsed = Date.now() - started;
              assert.ok(elapsed >= 1_500 && elapsed < 6_000, `after ~2 s: ${elapsed} ms`);
              conn.close();
            },
          );
        }
      });
    } finally {
      await upstream.shutdown();
    }
  },
);

/** Resident memory of another process. */
function rssOfMb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return Number(m![1]) / 1024;
}

Deno.test(
  "10,000 ICE-TCP connections without a valid check cost little memory and are all closed",
  opts,
  async () => {
    const http = freePort(), tcp = freePort(), admin = freePort();
    const dir = await Deno.makeTempDir();
    const file = `${dir}/ice.yml`;
    await Deno.writeTextFile(
      file,
      configText({
        http,
        tcp,
        extraOptions: "  limits: { max_connections: 30000, max_connections_per_address: 30000 }",
      }) +
        `  admin:\n    proto: admin\n    net: { addr: "127.0.0.1:${admin}" }\n`,
    );
    const x = spawnXrtc(file);
    try {
      await x.ready();
      const pid = x.child.pid;
      const closedNoCheck = async () => {
        const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
        return Number(
          /xrtc_tcp_connections_closed_total\{reason="no_valid_check"\} (\d+)/.exec(text)?.[1] ?? 0,
        );
      };
      // A framed Binding request cut short: classified as ICE-TCP, never complete.
      const check = buildStun({
        type: BINDING_REQUEST,
        transactionId: randomTransactionId(),
        attributes: [],
      });
      const frame = encodeFrame(check).subarray(0, 10);
      const rssBefore = rssOfMb(pid);
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < 10_000; i += 500) {
        const batch = await Promise.all(
          Array.from({ length: 500 }, () => Deno.connect({ hostname: "127.0.0.1", port: tcp })),
        );
        await Promise.all(batch.map((c) => c.write(frame)));
        conns.push(...batch);
      }
      await sleep(2_000);
      const grown = rssOfMb(pid) - rssBefore;
      await recordFigure("10,000 unchecked ICE-TCP connections", { rss_growth_mb: Math.round(grown) });
      assert.ok(grown < 150, `xRTC's RSS grew ${Math.round(grown)} MB for 10,000 connections`);
      await waitFor(
        "every connection closed for want of a valid check",
        async () => await closedNoCheck() >= 10_000 || undefined,
        45_000,
        1_000,
      );
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    } finally {
      x.child.kill("SIGKILL");
      await x.child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("SIGTERM completes while a client trickles a request body", opts, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const http = freePort(), tcp = freePort();
    const file = `${dir}/term.yml`;
    await Deno.writeTextFile(file, configText({ http, tcp, timeouts: "header_timeout: 10s" }));
    const x = spawnXrtc(file);
    await x.ready();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: http });
    await conn.write(
      new TextEncoder().encode("POST /janus HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"),
    );
    const drip = setInterval(() => conn.write(new Uint8Array([0x20])).catch(() => {}), 200);
    await sleep(500);
    const started = Date.now();
    x.child.kill("SIGTERM");
    const status = await Promise.race([x.child.status, sleep(10_000).then(() => undefined)]);
    clearInterval(drip);
    conn.close();
    if (!status) x.child.kill("SIGKILL");
    assert.equal(status?.code, 0, "exited cleanly");
    assert.ok(Date.now() - started < 5_000, `within ${Date.now() - started} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "upstream bodies have a deadline, upstream requests end when the client goes away, streamed bodies get 413",
  opts,
  async (t) => {
    const http = freePort(), tcp = freePort(), upstreamPort = freePort();
    let aborted = 0;
    const upstream = Deno.serve({ hostname: "127.0.0.1", port: upstreamPort, onListen() {} }, async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/up/stall") {
        // Headers and a first chunk, then nothing.
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode("first"));
            },
          }),
        );
      }
      if (path === "/up/slow") {
        req.signal.addEventListener("abort", () => aborted++);
        await sleep(5_000);
        return new Response("late");
      }
      if (path === "/up/echo") return new Response(`${(await req.arrayBuffer()).byteLength} bytes`); // reads it all first
      return new Response("ok");
    });
    try {
      await withXrtc(configText({ http, tcp, upstream: upstreamPort }), async () => {
        await t.step("an upstream body that stalls ends at body_timeout", async () => {
          const started = Date.now();
          const r = await fetch(`http://127.0.0.1:${http}/up/stall`);
          await assert.rejects(r.text());
          const elapsed = Date.now() - started;
          assert.ok(elapsed >= 1_500 && elapsed < 6_000, `after ~2 s: ${elapsed} ms`);
        });
        await t.step("a client that goes away cancels its upstream request", async () => {
          const abort = new AbortController();
          const p = fetch(`http://127.0.0.1:${http}/up/slow`, { signal: abort.signal }).catch(() =>
            undefined
          );
          await sleep(500);
          abort.abort();
          await p;
          await waitFor("the upstream request aborted", () => aborted > 0 || undefined, 3_000);
        });
        await t.step("a chunked body over max_body_bytes on a streamed route gets 413", async () => {
          const big = new ReadableStream<Uint8Array>({
            start(c) {
              for (let i = 0; i < 40; i++) c.enqueue(new Uint8Array(64 * 1024));
              c.close();
            },
          });
          const r = await fetch(`http://127.0.0.1:${http}/up/echo`, { method: "POST", body: big });
          await r.body?.cancel();
          assert.equal(r.status, 413);
        });
      });
    } finally {
      await upstream.shutdown();
    }
  },
);
