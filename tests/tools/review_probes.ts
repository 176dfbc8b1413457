// Black-box probes of the issue-10 security review: starts xRTC as a process from a checkout directory
// (`deno run -A <dir>/main.ts --config <file>`), runs the review's attacks against it on 127.0.0.1 and
// prints one table row per finding with a measured figure. The config it writes uses only the seed's
// routes.yml keys, so the commit before the fixes (acb1080) and every later one accept it.
//
//   deno run -A tests/tools/review_probes.ts --target /tmp/xrtc-acb1080 [--label before]
//     [--only 1,2,3,5,6,8,12,16] [--scale 1]
//
// --scale multiplies every count (offers, connections, datagrams) for a quick smoke run.
// Where Janus stands: an in-process stand-in (HTTP + WebSocket, Janus-style replies, error 458 for
// ids it never issued) for probes 1, 2, 6, 8, 12 and 16; the project's echo peer (bench/peer.ts, not
// Janus) for the live sessions of probes 3 and 5. The spoofed-source flood of probe 3 uses
// tests/tools/spoof.py (a raw socket: needs root) with sources in 127.0.1.0/24.
import { FfiUdpBackend } from "../../src/io/ffi_udp.ts";
import { mustPeer } from "../../src/io/address.ts";
import type { DatagramSocket } from "../../src/io/types.ts";
import { clientStun, nominatingCheck, type Signalled, signalOffer } from "../../bench/client.ts";
import { benchSdp } from "../../bench/sdp.ts";
import { BINDING_REQUEST, parseStun } from "../../src/stun/message.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DENO = `${ROOT}node_modules/.bin/deno`;
const PEER = `${ROOT}bench/peer.ts`;
const SPOOF = `${ROOT}tests/tools/spoof.py`;
const HOST = "127.0.0.1";

// ---------------------------------------------------------------- arguments

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] !== undefined ? Deno.args[i + 1] : fallback;
}
const TARGET = arg("target", ROOT).replace(/\/$/, "");
const LABEL = arg("label", TARGET);
const ONLY = new Set(arg("only", "1,2,3,5,6,8,12,16").split(",").map((s) => s.trim()));
const SCALE = Number(arg("scale", "1"));
const n = (x: number) => Math.max(1, Math.round(x * SCALE));

const SCALES = {
  httpOffers: n(1000),
  wsOffers: n(500),
  sdpBytes: 255_000,
  idleConns: n(1000),
  nofile: 256,
  floodDatagrams: n(250_000),
  floodRate: 25_000,
  echoRate: 500,
  badUpgrades: n(200),
  binaryFrame: 2 * 1024 * 1024,
  iceTcpConns: n(10_000),
  chunkedBody: 2 * 1024 * 1024,
};

// ---------------------------------------------------------------- small helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (x: number) => x.toLocaleString("en-US");
const mb = (kb: number | undefined) => kb === undefined ? "?" : `${Math.round(kb / 1024)} MB`;

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  p.catch(() => {});
  return Promise.race([p, sleep(ms).then(() => fallback)]);
}

/** Runs `task(i)` for i < count with at most `width` at a time. */
async function pool(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
}

/** A port free for TCP and UDP on 127.0.0.1, below the ephemeral range. */
function freePort(taken: Set<number>): number {
  for (;;) {
    const port = 21000 + Math.floor(Math.random() * 9000);
    if (taken.has(port)) continue;
    try {
      Deno.listen({ hostname: HOST, port }).close();
      Deno.listenDatagram({ hostname: HOST, port, transport: "udp" }).close();
      taken.add(port);
      return port;
    } catch { /* in use */ }
  }
}

/** Janus-style ids: positive integers below 2^53. */
const janusId = () => 1 + Math.floor(Math.random() * (2 ** 52));

/** A data-channel offer padded with host candidates to about `bytes`. */
function bigSdp(ufrag: string, bytes: number): string {
  const base = benchSdp({ ufrag, pwd: "clientpasswordclientpassword", setup: "actpass" });
  const parts = [base];
  let size = base.length;
  for (let i = 0; size < bytes; i++) {
    const line = `a=candidate:${i} 1 udp 2130706431 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} ${
      10000 + (i % 50000)
    } typ host\r\n`;
    parts.push(line);
    size += line.length;
  }
  return parts.join("");
}

/** One raw HTTP exchange on a fresh connection: the response's status line, or what went wrong. */
async function rawRequest(port: number, text: string, timeoutMs = 5000): Promise<string> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await withTimeout(Deno.connect({ hostname: HOST, port }), timeoutMs, undefined);
    if (!conn) return "connect timeout";
    await conn.write(new TextEncoder().encode(text));
    const buf = new Uint8Array(4096);
    const got = await withTimeout(conn.read(buf), timeoutMs, -1 as number | null);
    if (got === -1) return "no answer";
    if (got === null) return "closed without answer";
    return new TextDecoder().decode(buf.subarray(0, got)).split("\r\n")[0];
  } catch (e) {
    return `error: ${e instanceof Error ? e.name : e}`;
  } finally {
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

const get = (port: number, path = "/") =>
  rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);

// ---------------------------------------------------------------- processes

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

class Proc {
  readonly child: Deno.ChildProcess;
  readonly tail: string[] = [];
  readonly stdout: string[] = [];
  exit?: Deno.CommandStatus;
  exitedAt?: number;
  readonly ready: Promise<string>;

  constructor(cmd: string, args: string[], cwd: string, readyRe: RegExp, env: Record<string, string> = {}) {
    const child = new Deno.Command(cmd, {
      args,
      cwd,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    this.child = child;
    let resolve!: (line: string) => void, reject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => [resolve, reject] = [res, rej]);
    this.ready.catch(() => {});
    (async () => {
      for await (const line of lines(child.stdout)) {
        if (this.stdout.length < 200) this.stdout.push(line);
        if (readyRe.test(line)) resolve(line);
      }
    })().catch(() => {});
    (async () => {
      for await (const line of lines(child.stderr)) {
        this.tail.push(line.slice(0, 300));
        if (this.tail.length > 40) this.tail.shift();
      }
    })().catch(() => {});
    child.status.then((s) => {
      this.exit = s;
      this.exitedAt = performance.now();
      reject(new Error(`${cmd} exited (${s.code}) before ready:\n${this.tail.slice(-8).join("\n")}`));
    });
  }

  get pid(): number {
    return this.child.pid;
  }
  get alive(): boolean {
    return this.exit === undefined;
  }
  /** VmRSS in kB. */
  rss(): number | undefined {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${this.pid}/status`));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }
  /** Open descriptors (entries of /proc/<pid>/fd). */
  fds(): number | undefined {
    try {
      let count = 0;
      for (const _ of Deno.readDirSync(`/proc/${this.pid}/fd`)) count++;
      return count;
    } catch {
      return undefined;
    }
  }
  exitText(): string {
    if (!this.exit) return "alive";
    const last = [...this.tail].reverse();
    const why = last.find((l) => /uncaught|panic|fatal|out of memory/i.test(l)) ??
      last.find((l) => /^error|too many open files/i.test(l));
    return `DEAD (exit ${this.exit.code}${this.exit.signal ? ` ${this.exit.signal}` : ""})${
      why ? `: ${why.slice(0, 140)}` : ""
    }`;
  }
  async stop(): Promise<void> {
    if (this.alive) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await this.child.status;
  }
}

/** Peak RSS sampler. */
function sampler(p: Proc, everyMs = 250): { peak: () => number; stop: () => void } {
  let peak = p.rss() ?? 0;
  const t = setInterval(() => peak = Math.max(peak, p.rss() ?? 0), everyMs);
  return { peak: () => peak, stop: () => clearInterval(t) };
}

interface Ports {
  udp: number;
  tcp: number;
  web: number;
}

/** Seed-schema routes.yml: every key here is one acb1080 knows. */
function configText(ports: Ports, janusServers: string[], other: string, root: string): string {
  const routes = `
      routes:
        janus: { upstream: http://janus, paths: [/janus], protos: [ws@janus-protocol] }
        other: { upstream: ${other}, paths: [/other] }`;
  return `options:
  io_backend: ffi
services:
  janus:
    proto: upstream
    mode: rr
    servers: [${janusServers.join(", ")}]
  ice_udp:
    proto: udp
    net: { addr: "${HOST}:${ports.udp}", enable_ice: true, candidate_ips: [${HOST}] }
  ice_tcp:
    proto: tcp
    net: { addr: "${HOST}:${ports.tcp}", enable_ice: true, candidate_ips: [${HOST}] }
    enable_http: true
    http:
      servername: _
      root: ${root}${routes}
  web:
    proto: http
    net: { addr: "${HOST}:${ports.web}" }
    http:
      servername: _
      root: ${root}${routes}
`;
}

const WORK = Deno.makeTempDirSync({ prefix: "review-probes-" });
Deno.writeTextFileSync(`${WORK}/index.html`, "<p>probe</p>\n");
const takenPorts = new Set<number>();

async function startXrtc(
  janusServers: string[],
  other: string,
  opts: { nofile?: number } = {},
): Promise<{ x: Proc; ports: Ports }> {
  const ports = { udp: freePort(takenPorts), tcp: freePort(takenPorts), web: freePort(takenPorts) };
  const file = `${WORK}/routes-${ports.web}.yml`;
  Deno.writeTextFileSync(file, configText(ports, janusServers, other, WORK));
  const xrtcArgs = ["run", "-A", `${TARGET}/main.ts`, "--config", file];
  const x = opts.nofile
    ? new Proc(
      "prlimit",
      [`--nofile=${opts.nofile}:${opts.nofile}`, DENO, ...xrtcArgs],
      TARGET,
      /xrtc: ready/,
      {
        XRTC_LOG: "warn",
      },
    )
    : new Proc(DENO, xrtcArgs, TARGET, /xrtc: ready/, { XRTC_LOG: "warn" });
  await withTimeout(x.ready, 90_000, "timeout").then((r) => {
    if (r === "timeout") throw new Error("xRTC not ready in 90 s");
  });
  await sleep(1500); // settle (health probes, first GC)
  return { x, ports };
}

// ---------------------------------------------------------------- the Janus stand-in

class StandIn {
  wsOpen = 0;
  wsOpened = 0;
  binaryBytes = 0;
  otherBodyBytes = 0;
  messages = 0;
  readonly sessions = new Set<number>();
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  port = 0;

  constructor() {
    this.server = Deno.serve({ hostname: HOST, port: 0, onListen: () => {} }, (req) => this.#handle(req));
    this.port = this.server.addr.port;
  }

  #reply(msg: Record<string, unknown>): Record<string, unknown> {
    const transaction = msg.transaction ?? "";
    const sid = Number(msg.session_id ?? 0);
    this.messages++;
    if (msg.janus === "create") {
      const id = janusId();
      this.sessions.add(id);
      return { janus: "success", transaction, data: { id } };
    }
    if (msg.janus === "keepalive") return { janus: "ack", session_id: sid, transaction };
    if (!this.sessions.has(sid)) {
      return {
        janus: "error",
        session_id: sid,
        transaction,
        error: { code: 458, reason: `No such session ${sid}` },
      };
    }
    if (msg.janus === "attach") {
      return { janus: "success", session_id: sid, transaction, data: { id: janusId() } };
    }
    return { janus: "ack", session_id: sid, transaction };
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/other")) {
      let bytes = 0;
      try {
        for await (const c of req.body ?? []) bytes += c.length;
      } catch { /* cut */ }
      this.otherBodyBytes += bytes;
      return new Response("other ok\n");
    }
    if ((req.headers.get("upgrade") ?? "").toLowerCase() === "websocket") {
      const wanted = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim());
      const { socket, response } = Deno.upgradeWebSocket(
        req,
        wanted.includes("janus-protocol") ? { protocol: "janus-protocol" } : {},
      );
      socket.binaryType = "arraybuffer";
      socket.onopen = () => {
        this.wsOpen++;
        this.wsOpened++;
      };
      socket.onclose = () => this.wsOpen--;
      socket.onerror = () => {};
      socket.onmessage = (ev) => {
        if (typeof ev.data !== "string") {
          this.binaryBytes += (ev.data as ArrayBuffer).byteLength;
          return;
        }
        try {
          const msg = JSON.parse(ev.data);
          if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(this.#reply(msg)));
        } catch { /* not JSON */ }
      };
      return response;
    }
    if (req.method === "GET" && url.pathname === "/janus/info") {
      return Response.json({ janus: "server_info", name: "review probe stand-in (not Janus)" });
    }
    if (req.method === "POST" && url.pathname.startsWith("/janus")) {
      let msg: Record<string, unknown>;
      try {
        msg = await req.json();
      } catch {
        return Response.json({ janus: "error", error: { code: 454, reason: "bad JSON" } });
      }
      const ids = url.pathname.split("/").filter((s) => /^\d+$/.test(s));
      if (ids[0]) msg.session_id = Number(ids[0]);
      return Response.json(this.#reply(msg));
    }
    return new Response("not found\n", { status: 404 });
  }

  servers(): string[] {
    return [`http://${HOST}:${this.port}`, `ws://${HOST}:${this.port}`];
  }
  async close(): Promise<void> {
    await this.server.shutdown().catch(() => {});
  }
}

// ---------------------------------------------------------------- results

interface Row {
  id: string;
  probe: string;
  figure: string;
}
const rows: Row[] = [];
function row(id: string, probe: string, figure: string) {
  rows.push({ id, probe, figure });
  console.error(`[${LABEL}] #${id}: ${figure}`);
}

// ---------------------------------------------------------------- probe 1: memory

async function probeMemory() {
  const up = new StandIn();
  const { x, ports } = await startXrtc(up.servers(), `http://${HOST}:${up.port}`);
  try {
    const rss0 = x.rss();
    const s = sampler(x);
    const sdp = bigSdp("memprobe", SCALES.sdpBytes);
    const statuses = new Map<string, number>();
    const count = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);
    const t0 = performance.now();
    await pool(SCALES.httpOffers, 4, async (i) => {
      if (!x.alive) return void count("xrtc dead");
      const body = JSON.stringify({
        janus: "message",
        transaction: `m${i}`,
        body: { request: "probe" },
        jsep: { type: "offer", sdp },
      });
      try {
        const r = await fetch(`http://${HOST}:${ports.web}/janus/${janusId()}/${janusId()}`, {
          method: "POST",
          body,
          signal: AbortSignal.timeout(30_000),
        });
        const text = await r.text();
        const code = /"code"\s*:\s*(\d+)/.exec(text)?.[1];
        count(`${r.status}${code ? `/janus ${code}` : ""}`);
      } catch (e) {
        count(`fetch ${e instanceof Error ? e.name : "error"}`);
      }
    });
    const httpSeconds = (performance.now() - t0) / 1000;
    const rssHttp = x.rss();
    // The same over one WebSocket (ids in the message), 8 in flight.
    let wsReplies = 0, wsSent = 0, wsClose = "";
    if (x.alive) {
      const ws = new WebSocket(`ws://${HOST}:${ports.web}/janus`, ["janus-protocol"]);
      const opened = await withTimeout(
        new Promise<boolean>((res) => {
          ws.onopen = () => res(true);
          ws.onerror = () => res(false);
        }),
        10_000,
        false,
      );
      if (opened) {
        let inFlight = 0, lastReply = performance.now(), closed = false;
        ws.onmessage = () => {
          wsReplies++;
          inFlight--;
          lastReply = performance.now();
        };
        ws.onclose = (ev) => {
          closed = true;
          wsClose = `closed ${ev.code}`;
        };
        for (let i = 0; i < SCALES.wsOffers && !closed && x.alive; i++) {
          while (inFlight >= 8 && !closed && performance.now() - lastReply < 15_000) await sleep(2);
          if (inFlight >= 8) {
            wsClose ||= "stalled 15 s";
            break;
          }
          inFlight++;
          wsSent++;
          ws.send(JSON.stringify({
            janus: "message",
            session_id: janusId(),
            handle_id: janusId(),
            transaction: `w${i}`,
            body: { request: "probe" },
            jsep: { type: "offer", sdp },
          }));
        }
        const until = performance.now() + 15_000;
        while (wsReplies < wsSent && !closed && performance.now() < until) await sleep(20);
        if (!closed) {
          ws.onclose = null;
          ws.close();
        }
      } else wsClose = "upgrade failed";
    }
    await sleep(3000);
    s.stop();
    const rss1 = x.rss();
    const st = [...statuses].map(([k, v]) => `${v}× ${k}`).join(", ");
    row(
      "1",
      `memory: ${fmt(SCALES.httpOffers)} HTTP + ${fmt(SCALES.wsOffers)} WS offers of ${
        Math.round(SCALES.sdpBytes / 1000)
      } KB to made-up ids`,
      `RSS ${mb(rss0)} → peak ${mb(s.peak())}, ${mb(rss1)} 3 s after (+${
        mb((rss1 ?? s.peak()) - (rss0 ?? 0))
      }; ` +
        `after HTTP part ${mb(rssHttp)} in ${httpSeconds.toFixed(1)} s); xRTC ${x.exitText()}; ` +
        `HTTP replies: ${st}; WS: ${wsReplies}/${wsSent} answered${wsClose ? `, ${wsClose}` : ""}; ` +
        `stand-in saw ${fmt(up.messages)} messages`,
    );
  } finally {
    await x.stop();
    await up.close();
  }
}

// ---------------------------------------------------------------- probe 2: descriptors

async function openIdle(port: number, count: number, conns: Deno.Conn[]) {
  const r = { answered: 0, silent: 0, closed: 0, failed: 0 };
  const req = new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: keep-alive\r\n\r\n`);
  await pool(count, 50, async () => {
    let conn: Deno.TcpConn | undefined;
    try {
      conn = await withTimeout(Deno.connect({ hostname: HOST, port }), 3000, undefined);
      if (!conn) return void r.failed++;
      conns.push(conn);
      await conn.write(req);
      const got = await withTimeout(conn.read(new Uint8Array(4096)), 3000, -1 as number | null);
      if (got === -1) r.silent++;
      else if (got === null) r.closed++;
      else r.answered++;
    } catch {
      r.failed++;
    }
  });
  return r;
}

async function probeDescriptors() {
  const up = new StandIn();
  const { x, ports } = await startXrtc(up.servers(), `http://${HOST}:${up.port}`, { nofile: SCALES.nofile });
  const conns: Deno.Conn[] = [];
  try {
    const before = { web: await get(ports.web), tcp: await get(ports.tcp) };
    const onTcp = await openIdle(ports.tcp, SCALES.idleConns, conns);
    const onWeb = await openIdle(ports.web, SCALES.idleConns, conns);
    await sleep(2000);
    const heldFds = x.fds();
    const held = { alive: x.exitText(), web: await get(ports.web), tcp: await get(ports.tcp) };
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await sleep(3000);
    const after = { alive: x.exitText(), web: await get(ports.web), tcp: await get(ports.tcp) };
    const d = (o: typeof onTcp) =>
      `${o.answered} answered, ${o.silent} silent, ${o.closed} closed, ${o.failed} failed`;
    row(
      "2",
      `descriptors: nofile ${SCALES.nofile}, ${
        fmt(SCALES.idleConns)
      } idle keep-alive conns to the TCP port + ${fmt(SCALES.idleConns)} to the HTTP port`,
      `xRTC while held: ${held.alive} (${heldFds ?? "no"} descriptors); after release: ${after.alive}. ` +
        `GET / before: web "${before.web}", tcp "${before.tcp}"; while held: web "${held.web}", tcp "${held.tcp}"; ` +
        `after release: web "${after.web}", tcp "${after.tcp}". Conns TCP port: ${d(onTcp)}; HTTP port: ${
          d(onWeb)
        }`,
    );
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await x.stop();
    await up.close();
  }
}

// ---------------------------------------------------------------- probes 3 and 5: live sessions

interface Client {
  s: Signalled;
  socket: DatagramSocket;
  media: number;
  answered: boolean;
  validated: boolean;
}

async function liveSession(backend: FfiUdpBackend, webPort: number, ufrag: string): Promise<Client> {
  let s: Signalled | undefined;
  let lastError = "";
  for (let attempt = 0; attempt < 15 && !s; attempt++) {
    try {
      s = await signalOffer(`http://${HOST}:${webPort}`, ufrag);
    } catch (e) {
      lastError = String(e);
      await sleep(1000);
    }
  }
  if (!s) throw new Error(`signalling through xRTC failed: ${lastError}`);
  const c: Client = { s, socket: undefined!, media: 0, answered: false, validated: false };
  c.socket = backend.bind({ host: HOST, port: 0 }, (data, from, sock) => {
    if (data[0] <= 3) {
      const what = clientStun(data, from, sock);
      if (what === "success") c.answered = true;
      else if (what === "request") c.validated = true;
    } else c.media++;
  });
  const target = mustPeer(HOST, s.port);
  // Until xRTC answered the check, and (where xRTC checks the client's address) answered its check;
  // at most 3 s more for the latter, since an older xRTC sends none.
  let answeredAt = 0;
  for (let i = 0; i < 100 && !(c.answered && c.validated); i++) {
    if (!c.answered) c.socket.send(nominatingCheck(s, 1), target);
    await sleep(50);
    if (c.answered && !answeredAt) answeredAt = performance.now();
    if (answeredAt && performance.now() - answeredAt > 3000) break;
  }
  if (!c.answered) throw new Error("no STUN answer from xRTC");
  await sleep(500); // the Janus leg
  return c;
}

/** Sends 100-byte media datagrams from the client at `rate` per second until stopped. */
function pump(c: Client, rate: number): { sent: () => number; stop: () => void } {
  const packet = new Uint8Array(100);
  packet[0] = 0x80;
  const target = mustPeer(HOST, c.s.port);
  let sent = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * rate) / 1000);
    while (sent < due) {
      packet[1] = sent & 255;
      c.socket.send(packet, target);
      sent++;
    }
  }, 2);
  return { sent: () => sent, stop: () => clearInterval(timer) };
}

/** Echoes / sent over `ms`, with the pump running. */
async function measure(
  c: Client,
  p: { sent: () => number },
  ms: number,
): Promise<{ sent: number; got: number }> {
  const s0 = p.sent(), m0 = c.media;
  await sleep(ms);
  await sleep(200); // in flight
  return { sent: p.sent() - s0, got: c.media - m0 };
}

async function probeSessions() {
  const peer = new Proc(DENO, ["run", "-A", PEER], ROOT, /^PEER \d+ \d+/);
  const peerLine = await withTimeout(peer.ready, 60_000, "timeout");
  if (peerLine === "timeout") throw new Error("echo peer not ready");
  const peerHttp = Number(peerLine.split(" ")[2]);
  const { x, ports } = await startXrtc([`http://${HOST}:${peerHttp}`], `http://${HOST}:${peerHttp}`);
  const backend = FfiUdpBackend.open();
  try {
    if (ONLY.has("5")) {
      const a = await liveSession(backend, ports.web, "victimtest");
      const p = pump(a, 250);
      const warm = await measure(a, p, 1000);
      let victimMedia = 0, victimStunRequests = 0, victimStunOther = 0;
      const v = backend.bind({ host: HOST, port: 0 }, (data) => {
        if (data[0] > 3) return void victimMedia++;
        try {
          if (parseStun(data).type === BINDING_REQUEST) victimStunRequests++;
          else victimStunOther++;
        } catch {
          victimStunOther++;
        }
      });
      v.send(nominatingCheck(a.s, 2), mustPeer(HOST, a.s.port)); // authentic, from the "victim" address
      const w = await measure(a, p, 2000);
      p.stop();
      v.close();
      a.socket.close();
      row(
        "5",
        "media redirection: one authentic nominating check from a second local socket, media at 250 pps",
        `victim received ${
          fmt(victimMedia)
        } media datagrams in 2 s (+${victimStunRequests} STUN requests, ${victimStunOther} other STUN); ` +
          `the real client got ${fmt(w.got)}/${
            fmt(w.sent)
          } echoes in that window (before: ${warm.got}/${warm.sent}); ` +
          `client address checked by xRTC: ${a.validated ? "yes" : "no"}`,
      );
    }
    if (ONLY.has("3")) {
      const b = await liveSession(backend, ports.web, "floodtest");
      const p = pump(b, SCALES.echoRate);
      const keep = setInterval(() => b.socket.send(nominatingCheck(b.s, 1), mustPeer(HOST, b.s.port)), 2000);
      const before = await measure(b, p, 2000);
      const sDuring = p.sent(), mDuring = b.media;
      const t0 = performance.now();
      const flood = await new Deno.Command("python3", {
        args: [
          SPOOF,
          "flood",
          HOST,
          String(ports.udp),
          "127.0.1",
          String(SCALES.floodDatagrams),
          String(SCALES.floodRate),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const floodSeconds = (performance.now() - t0) / 1000;
      const floodOut = new TextDecoder().decode(flood.stdout).trim() ||
        new TextDecoder().decode(flood.stderr).trim().split("\n").at(-1);
      const during = { sent: p.sent() - sDuring, got: b.media - mDuring };
      await sleep(1000);
      const after = await measure(b, p, 3000);
      const later = await measure(b, p, 3000);
      clearInterval(keep);
      p.stop();
      b.socket.close();
      const pct = (w: { sent: number; got: number }) =>
        `${fmt(w.got)}/${fmt(w.sent)} (${w.sent ? ((100 * w.got) / w.sent).toFixed(1) : "0"} %)`;
      row(
        "3",
        `address cache: ${
          fmt(SCALES.floodDatagrams)
        } one-byte datagrams from distinct spoofed sources (127.0.1.10-13, ports 1024-65535) at ${
          fmt(SCALES.floodRate)
        }/s, echo stream ${SCALES.echoRate} pps`,
        `echoed/sent before ${pct(before)}; during flood ${pct(during)}; 1-4 s after ${
          pct(after)
        }; 4-7 s after ${pct(later)}; flood: ${floodOut} in ${
          floodSeconds.toFixed(1)
        } s (exit ${flood.code}); xRTC ${x.exitText()}`,
      );
    }
  } finally {
    await backend.close();
    await x.stop();
    await peer.stop();
  }
}

// ---------------------------------------------------------------- probes 6, 12, 16: front door

async function probeFrontDoor() {
  const up = new StandIn();
  const { x, ports } = await startXrtc(up.servers(), `http://${HOST}:${up.port}`);
  try {
    if (ONLY.has("6")) {
      const open0 = up.wsOpen;
      const statuses = new Map<string, number>();
      await pool(SCALES.badUpgrades, 10, async () => {
        // An upgrade Deno refuses: no Connection: Upgrade, no Sec-WebSocket-Key.
        const st = await rawRequest(
          ports.web,
          `GET /janus HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
            `Sec-WebSocket-Protocol: janus-protocol\r\n\r\n`,
        );
        statuses.set(st, (statuses.get(st) ?? 0) + 1);
      });
      await sleep(2000);
      row(
        "6",
        `failed WS upgrades: ${
          fmt(SCALES.badUpgrades)
        } requests to /janus with Upgrade: websocket but no key`,
        `upstream WebSockets left open: ${up.wsOpen - open0} (opened in all: ${up.wsOpened}); client saw ${
          [...statuses].map(([k, v]) => `${v}× "${k}"`).join(", ")
        }; xRTC ${x.exitText()}`,
      );
    }
    if (ONLY.has("12")) {
      const b0 = up.binaryBytes;
      const ws = new WebSocket(`ws://${HOST}:${ports.web}/janus`, ["janus-protocol"]);
      ws.binaryType = "arraybuffer";
      const result = await withTimeout(
        new Promise<string>((res) => {
          ws.onopen = () => ws.send(new Uint8Array(SCALES.binaryFrame));
          ws.onclose = (ev) => res(`closed with code ${ev.code}${ev.reason ? ` "${ev.reason}"` : ""}`);
          ws.onerror = () => {};
        }),
        8000,
        "still open after 8 s",
      );
      try {
        ws.close();
      } catch { /* closed */ }
      await sleep(500);
      row(
        "12",
        `binary frame of ${SCALES.binaryFrame / 1024 / 1024} MB on the Janus WebSocket`,
        `${result}; upstream received ${fmt(up.binaryBytes - b0)} binary bytes; xRTC ${x.exitText()}`,
      );
    }
    if (ONLY.has("16")) {
      const b0 = up.otherBodyBytes;
      const status = await chunkedPost(ports.web, "/other/upload", SCALES.chunkedBody);
      await sleep(300);
      row(
        "16",
        `chunked body of ${SCALES.chunkedBody / 1024 / 1024} MB (limit 1 MiB default) on a non-Janus route`,
        `"${status}"; upstream received ${fmt(up.otherBodyBytes - b0)} bytes; xRTC ${x.exitText()}`,
      );
    }
  } finally {
    await x.stop();
    await up.close();
  }
}

async function chunkedPost(port: number, path: string, total: number): Promise<string> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const enc = new TextEncoder();
  const buf = new Uint8Array(4096);
  const reply = conn.read(buf).then((got) =>
    got === null ? "closed without answer" : new TextDecoder().decode(buf.subarray(0, got)).split("\r\n")[0]
  ).catch((e) => `error: ${e.name}`);
  try {
    await conn.write(enc.encode(
      `POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/octet-stream\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n`,
    ));
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const head = enc.encode(`${chunk.length.toString(16)}\r\n`), crlf = enc.encode("\r\n");
    for (let sent = 0; sent < total; sent += chunk.length) {
      await conn.write(head);
      await conn.write(chunk);
      await conn.write(crlf);
    }
    await conn.write(enc.encode("0\r\n\r\n"));
  } catch { /* the server may answer and close early */ }
  const status = await withTimeout(reply, 15_000, "no answer in 15 s");
  try {
    conn.close();
  } catch { /* closed */ }
  return status;
}

// ---------------------------------------------------------------- probe 8: ICE-TCP connections

async function probeIceTcp() {
  const up = new StandIn();
  const { x, ports } = await startXrtc(up.servers(), `http://${HOST}:${up.port}`);
  const conns: Deno.Conn[] = [];
  try {
    const rss0 = x.rss(), fds0 = x.fds();
    const s = sampler(x);
    // RFC 4571 frame of 20 bytes: a Binding request with no USERNAME, no integrity: not a valid check.
    const frame = new Uint8Array(22);
    frame.set([0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
    let failed = 0, closedByServer = 0;
    const t0 = performance.now();
    await pool(SCALES.iceTcpConns, 200, async () => {
      try {
        crypto.getRandomValues(frame.subarray(10));
        const conn = await withTimeout(Deno.connect({ hostname: HOST, port: ports.tcp }), 5000, undefined);
        if (!conn) return void failed++;
        conns.push(conn);
        await conn.write(frame);
        conn.read(new Uint8Array(64)).then((r) => r === null && closedByServer++, () => closedByServer++);
      } catch {
        failed++;
      }
    });
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(3000);
    const rssHeld = x.rss();
    const fdsHeld = x.fds();
    const closedHeld = closedByServer;
    const stillOpen = conns.length - closedHeld;
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    conns.length = 0;
    await sleep(5000);
    s.stop();
    const rssAfter = x.rss();
    row(
      "8",
      `${
        fmt(SCALES.iceTcpConns)
      } TCP conns to the ICE-TCP port, each one RFC 4571 frame that is not a valid check`,
      `RSS ${mb(rss0)} → ${mb(rssHeld)} while held (peak ${mb(s.peak())}, +${
        mb((rssHeld ?? 0) - (rss0 ?? 0))
      }), ` +
        `${mb(rssAfter)} 5 s after closing (+${mb((rssAfter ?? 0) - (rss0 ?? 0))}); opened in ${
          openSeconds.toFixed(1)
        } s, ${fmt(stillOpen)} still open 3 s later (${
          fmt(closedHeld)
        } closed by xRTC, ${failed} failed); xRTC descriptors ${fds0} → ${fdsHeld} while held; xRTC ${x.exitText()}`,
    );
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await x.stop();
    await up.close();
  }
}

// ---------------------------------------------------------------- main

const commit = await new Deno.Command("git", { args: ["-C", TARGET, "rev-parse", "--short", "HEAD"] })
  .output()
  .then((o) => new TextDecoder().decode(o.stdout).trim()).catch(() => "?");
console.error(`review probes against ${TARGET} (${commit}), scale ${SCALE}`);
const started = performance.now();
const steps: Array<[string[], () => Promise<void>]> = [
  [["6", "12", "16"], probeFrontDoor],
  [["3", "5"], probeSessions],
  [["2"], probeDescriptors],
  [["8"], probeIceTcp],
  [["1"], probeMemory],
];
for (const [ids, run] of steps) {
  if (!ids.some((id) => ONLY.has(id))) continue;
  const t = performance.now();
  try {
    await run();
  } catch (e) {
    for (const id of ids.filter((i) => ONLY.has(i) && !rows.some((r) => r.id === i))) {
      row(id, "(probe failed)", `probe error: ${e instanceof Error ? e.message : e}`);
    }
  }
  console.error(`[${LABEL}] probes ${ids.join("/")} took ${((performance.now() - t) / 1000).toFixed(0)} s`);
}
rows.sort((a, b) => Number(a.id) - Number(b.id));
console.log(
  `\n### ${LABEL}: ${TARGET} (${commit}), scale ${SCALE}, ${
    ((performance.now() - started) / 1000).toFixed(0)
  } s\n`,
);
console.log("| # | probe | measured |");
console.log("| - | ----- | -------- |");
for (const r of rows) console.log(`| ${r.id} | ${r.probe} | ${r.figure.replaceAll("|", "/")} |`);
Deno.removeSync(WORK, { recursive: true });
Deno.exit(0);
