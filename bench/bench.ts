// deno task bench: xRTC's data plane, measured against a direct path and a bare relay in the same run.
// Processes: an echo peer with a Janus-like API (project-owned, not Janus), the proxy under test
// (bare relay, or xRTC half/full proxy) and the load generator, all on 127.0.0.1.
// Environment: BENCH_BACKENDS (deno,ffi), BENCH_RATES (comma list of packets/s), BENCH_STEP_MS,
// BENCH_CLIENTS, BENCH_SESSIONS (comma list of idle-session counts, "" to skip), BENCH_OUT (JSON path).
const ROOT = new URL("../", import.meta.url).pathname;
const DENO = `${ROOT}node_modules/.bin/deno`;
const env = (k: string, d: string) => Deno.env.get(k) ?? d;
const BACKENDS = env("BENCH_BACKENDS", "deno,ffi").split(",").filter(Boolean) as Array<"deno" | "ffi">;
const RATES = env("BENCH_RATES", "5000,10000,20000,30000,40000,60000,80000,100000,140000").split(",").map(
  Number,
);
const STEP_MS = Number(env("BENCH_STEP_MS", "2000"));
const CLIENTS = Number(env("BENCH_CLIENTS", "4"));
const SESSIONS = env("BENCH_SESSIONS", "100,1000,10000").split(",").filter(Boolean).map(Number);
const OUT = env("BENCH_OUT", `${ROOT}bench/latest.json`);
const SIZE = 1200;
const MAX_LOSS = 0.001;
const LATENCY_RATE = 20000;
const HELD_STEP_MS = 20_000;
// The idle-session runs get a fresh peer each (IDLE_PEER_HTTP): it keeps a socket per session, as Janus
// keeps a port per handle, and never learns of hangups.
const PEER_HTTP = 18088, IDLE_PEER_HTTP = 18089, RELAY_PORT = 17001, XRTC_UDP = 17101, XRTC_HTTP = 17180;

interface Step {
  rate: number;
  sent: number;
  received: number;
  loss: number;
  reordered: number;
  foreign: number;
  cpuMs: number;
  rttP50: number;
  rttP99: number;
  rttP999: number;
}

interface Proc {
  child: Deno.ChildProcess;
  lines: string[];
  stop(): Promise<void>;
}

function spawn(args: string[], ready: RegExp): Promise<Proc> {
  const child = new Deno.Command(DENO, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
    env: { XRTC_LOG: "error" },
  }).spawn();
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")}: not ready`)), 20_000);
    (async () => {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        for (const l of parts) {
          lines.push(l);
          if (ready.test(l)) {
            clearTimeout(timer);
            resolve({
              child,
              lines,
              stop: async () => {
                try {
                  child.kill("SIGTERM");
                } catch { /* gone */ }
                await child.status;
              },
            });
          }
        }
      }
    })();
  });
}

async function gen(
  opts: Record<string, unknown>,
): Promise<{ steps: Step[]; sessions?: number; connected?: number; seconds?: number; error?: string }> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "bench/gen.ts", JSON.stringify(opts)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error("generator printed no result");
  const r = JSON.parse(line.slice(7));
  if (r.error) throw new Error(`generator: ${r.error}`);
  return r;
}

/** CPU ticks (utime + stime) of each thread of a process, by "tid name". */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      out.set(`${t.name} ${name}`, Number(f[11]) + Number(f[12]));
    } catch { /* the thread ended */ }
  }
  return out;
}

/** Each thread's share of the CPU the process used between two threadTicks readings, busiest first. */
function threadShares(before: Map<string, number>, after: Map<string, number>): Array<[string, number]> {
  const used = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number]);
  const total = used.reduce((n, [, v]) => n + v, 0) || 1;
  return used.filter(([, v]) => v > 0).map(([k, v]) => [k, v / total] as [string, number]).sort((a, b) =>
    b[1] - a[1]
  );
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

async function startXrtc(
  backend: string,
  icedirect: boolean,
  workers = 1,
  peerHttp = PEER_HTTP,
): Promise<Proc> {
  const file = await Deno.makeTempFile({ suffix: ".yml" });
  await Deno.writeTextFile(
    file,
    `
options:
  io_backend: ${backend}
  max_sessions: 50000
  workers: ${workers}
  # Idle sessions are connected once, then silent for the rest of the run.
  consent_timeout: 10m
services:
  peer: { proto: upstream, servers: [http://127.0.0.1:${peerHttp}] }
  ice: { proto: udp, net: { addr: 127.0.0.1:${XRTC_UDP}, candidate_ips: [127.0.0.1] } }
  web:
    proto: http
    net: { addr: 127.0.0.1:${XRTC_HTTP} }
    http:
      routes:
        janus: { upstream: http://peer, icedirect: ${icedirect}, paths: [/janus] }
`,
  );
  return await spawn(["run", "-A", "main.ts", "--config", file], /^xrtc: ready/);
}

const row = (label: string, backend: string, steps: Step[]) => {
  const ok = steps.filter((s) => s.loss <= MAX_LOSS);
  const at = steps.find((s) => s.rate === LATENCY_RATE);
  return { label, backend, maxPps: ok.length ? Math.max(...ok.map((s) => s.rate)) : 0, at, steps };
};
type Row = ReturnType<typeof row>;

const rows: Row[] = [];
/** Per shard count: the busiest threads of xRTC over the run and their share of its CPU. */
const threadCpu: Record<number, Array<[string, number]>> = {};
const memory: Array<
  {
    backend: string;
    sessions: number;
    connected: number;
    rssMb: number;
    kbPerSession: number;
    setupPerSecond: number;
  }
> = [];
const peer = await spawn(["run", "-A", "bench/peer.ts", String(PEER_HTTP)], /^PEER \d+/);
const peerPort = Number(peer.lines.find((l) => l.startsWith("PEER "))!.split(" ")[1]);
let idBase = 1_000_000;
let heap: {
  sessions: number;
  connected: number;
  heapKbPerSession: number;
  heapReservedKbPerSession: number;
  rssKbPerSession: number;
  rssKbPerSessionAfterRelease: number;
  releaseMs: number;
} | undefined;
const common = { clients: CLIENTS, size: SIZE, maxLoss: MAX_LOSS, stepMs: STEP_MS };
/** The generator's clients through xRTC's port (signalled, then ICE), at the bench's rates unless overridden. */
const genThroughXrtc = (x: Proc, o: Record<string, unknown> = {}) =>
  gen({
    ...common,
    mode: "xrtc",
    port: XRTC_UDP,
    http: `http://127.0.0.1:${XRTC_HTTP}`,
    rates: RATES,
    pids: [x.child.pid],
    idBase: idBase += 100_000,
    ...o,
  });
try {
  console.error("bench: direct path");
  rows.push(
    row(
      "direct path",
      "-",
      (await gen({ ...common, mode: "raw", port: peerPort, rates: [LATENCY_RATE] })).steps,
    ),
  );
  for (const backend of BACKENDS) {
    console.error(`bench: bare relay, ${backend}`);
    const relay = await spawn(
      ["run", "-A", "bench/relay.ts", String(RELAY_PORT), String(peerPort), backend],
      /^RELAY/,
    );
    rows.push(
      row(
        "bare relay",
        backend,
        (await gen({ ...common, mode: "raw", port: RELAY_PORT, rates: RATES, pids: [relay.child.pid] }))
          .steps,
      ),
    );
    await relay.stop();
    if (backend === "ffi") {
      // Every core on one port, the ceiling: 1 and 2 relay processes on one SO_REUSEPORT port, 16 clients.
      for (const procs of [1, 2]) {
        console.error(`bench: bare relay x${procs} (SO_REUSEPORT), ffi`);
        const relays: Proc[] = [];
        for (let i = 0; i < procs; i++) {
          relays.push(
            await spawn([
              "run",
              "-A",
              "bench/relay.ts",
              String(RELAY_PORT),
              String(peerPort),
              backend,
              "reuseport",
            ], /^RELAY/),
          );
        }
        const r = await gen({
          ...common,
          clients: 16,
          mode: "raw",
          port: RELAY_PORT,
          rates: RATES,
          pids: relays.map((r) => r.child.pid),
        });
        rows.push(row(`bare relay x${procs} (SO_REUSEPORT, 16 clients)`, backend, r.steps));
        for (const x of relays) await x.stop();
      }
    }
    for (const icedirect of [false, true]) {
      console.error(`bench: xRTC ${icedirect ? "full" : "half"} proxy, ${backend}`);
      const x = await startXrtc(backend, icedirect);
      const r = await genThroughXrtc(x);
      rows.push(row(`xRTC ${icedirect ? "full" : "half"} proxy`, backend, r.steps));
      await x.stop();
    }
    if (backend === "ffi") {
      // Every core on one port, xRTC: the half proxy with 1 and 2 shards, 16 clients as for the bare relays.
      for (const workers of [1, 2]) {
        console.error(`bench: xRTC half proxy, workers: ${workers}, ffi`);
        const x = await startXrtc(backend, false, workers);
        const ticks0 = threadTicks(x.child.pid);
        const r = await genThroughXrtc(x, { clients: 16 });
        rows.push(row(`xRTC half proxy, workers: ${workers} (16 clients)`, backend, r.steps));
        threadCpu[workers] = threadShares(ticks0, threadTicks(x.child.pid)).slice(0, 4);
        await x.stop();
      }
    }
    if (SESSIONS.length) {
      console.error(`bench: idle sessions, ${backend}`);
      const idlePeer = await spawn(["run", "-A", "bench/peer.ts", String(IDLE_PEER_HTTP)], /^PEER \d+/);
      const x = await startXrtc(backend, false, 1, IDLE_PEER_HTTP);
      await new Promise((r) => setTimeout(r, 1000));
      const base = rssKb(x.child.pid);
      let made = 0;
      let connectedTotal = 0;
      for (const n of SESSIONS) {
        const g = await gen({
          ...common,
          mode: "sessions",
          port: XRTC_UDP,
          http: `http://127.0.0.1:${XRTC_HTTP}`,
          rates: [],
          sessions: n - made,
          idBase: idBase += 100_000,
        });
        made = n;
        connectedTotal += g.connected ?? 0;
        // Janus legs connect, memory settles, and xRTC's periodic release of free memory (10 s) has run.
        await new Promise((r) => setTimeout(r, 11_000));
        const rss = rssKb(x.child.pid);
        memory.push({
          backend,
          sessions: n,
          connected: connectedTotal,
          rssMb: rss / 1024,
          kbPerSession: (rss - base) / n,
          setupPerSecond: g.sessions! / g.seconds!,
        });
      }
      console.error(`bench: half proxy with ${made} idle sessions held, ${backend}`);
      // Long enough to take in every periodic job of a loaded xRTC: a full keepalive round (15 s
      // randomised), the 10 s memory release, major GCs.
      const r = await genThroughXrtc(x, { rates: [LATENCY_RATE], stepMs: HELD_STEP_MS });
      rows.push(
        row(`xRTC half proxy, ${made} idle sessions held (${HELD_STEP_MS / 1000} s)`, backend, r.steps),
      );
      await x.stop();
      await idlePeer.stop();
    }
  }
  if (SESSIONS.length) {
    const n = SESSIONS[SESSIONS.length - 1];
    console.error(`bench: live heap per idle session (${n} sessions, in-process, after GC)`);
    const idlePeer = await spawn(["run", "-A", "bench/peer.ts", String(IDLE_PEER_HTTP)], /^PEER \d+/);
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        "bench/session_heap.ts",
        String(IDLE_PEER_HTTP),
        String(n),
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
      env: { XRTC_LOG: "error" },
    }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("HEAP "));
    if (line) heap = JSON.parse(line.slice(5));
    await idlePeer.stop();
  }
} finally {
  await peer.stop();
}

// ---- report ----
const direct = rows[0].at!;
const f = (n: number | undefined, d = 2) => n === undefined || Number.isNaN(n) ? "-" : n.toFixed(d);
const lines: string[] = [];
lines.push(
  `xRTC data plane: ${CLIENTS} clients, ${SIZE}-byte packets, generator on ffi; peer: project-owned echo, not Janus`,
);
lines.push(
  `rate steps: ${
    RATES.join(", ")
  } packets/s, ${STEP_MS} ms each; max pps = highest step with < 0.1 % loss (the proxy forwards twice that: both directions)`,
);
lines.push("");
lines.push(
  "| target | backend | max pps (<0.1% loss) | CPU ms/1000 pkts @20000 | loss @20000 | added one-way p50/p99/p99.9 ms | reordered | cross-talk |",
);
lines.push("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const a = r.at;
  const added = r.label === "direct path"
    ? `0 (RTT ${f(direct.rttP50)}/${f(direct.rttP99)}/${f(direct.rttP999)})`
    : a
    ? `${f((a.rttP50 - direct.rttP50) / 2)}/${f((a.rttP99 - direct.rttP99) / 2)}/${
      f((a.rttP999 - direct.rttP999) / 2)
    }`
    : "-";
  const cpu = a && a.cpuMs ? f((a.cpuMs / (a.received * 2)) * 1000, 3) : "-";
  lines.push(
    `| ${r.label} | ${r.backend} | ${
      r.label === "direct path" || r.label.includes("idle") ? "-" : r.maxPps
    } | ${cpu} | ${a ? f(a.loss * 100, 3) + " %" : "-"} | ${added} | ${
      r.steps.reduce((n, s) => n + s.reordered, 0)
    } | ${r.steps.reduce((n, s) => n + s.foreign, 0)} |`,
  );
}
lines.push("");
lines.push("ratios (same run):");
const get = (label: string, backend: string): Row | undefined =>
  rows.find((r) => r.label === label && r.backend === backend);
for (const b of BACKENDS) {
  const bare = get("bare relay", b)?.maxPps;
  const half = get("xRTC half proxy", b)?.maxPps, full = get("xRTC full proxy", b)?.maxPps;
  if (bare) {
    lines.push(
      `  ${b}: half proxy / bare relay = ${f(half! / bare)}; full proxy / bare relay = ${f(full! / bare)}`,
    );
  }
}
const reuse1 = get("bare relay x1 (SO_REUSEPORT, 16 clients)", "ffi");
const reuse2 = get("bare relay x2 (SO_REUSEPORT, 16 clients)", "ffi");
if (reuse1 && reuse2) {
  lines.push(
    `  every core on one port, bare relay: 2 processes / 1 process = ${
      f(reuse2.maxPps / Math.max(1, reuse1.maxPps))
    }`,
  );
}
const shards1 = get("xRTC half proxy, workers: 1 (16 clients)", "ffi");
const shards2 = get("xRTC half proxy, workers: 2 (16 clients)", "ffi");
if (shards1 && shards2) {
  const cpuPerK = (r: Row) => r.at && r.at.cpuMs ? (r.at.cpuMs / (r.at.received * 2)) * 1000 : NaN;
  lines.push(
    `  every core on one port, xRTC half proxy: workers 2 / workers 1 = ${
      f(shards2.maxPps / Math.max(1, shards1.maxPps))
    } (CPU ms per 1000 packets at ${LATENCY_RATE}: ${f(cpuPerK(shards1), 3)} vs ${f(cpuPerK(shards2), 3)})`,
  );
  for (const w of [1, 2]) {
    const shares = (threadCpu[w] ?? []).map(([t, v]) => `${t} ${f(v * 100, 0)} %`).join(", ");
    lines.push(`    workers: ${w}, xRTC's CPU by thread over the run: ${shares}`);
  }
}
if (BACKENDS.includes("ffi") && BACKENDS.includes("deno")) {
  const ratio = (label: string) => f(get(label, "ffi")!.maxPps / Math.max(1, get(label, "deno")!.maxPps));
  lines.push(
    `  ffi / deno: half proxy = ${ratio("xRTC half proxy")}; full proxy = ${
      ratio("xRTC full proxy")
    }; bare relay = ${ratio("bare relay")}`,
  );
}
if (memory.length) {
  lines.push("");
  lines.push(
    "RSS of the xRTC process 11 s after each batch of idle sessions was set up (ffi: after its periodic memory release)",
  );
  lines.push("| backend | idle sessions (connected) | RSS MB | KB per session | sessions set up/s |");
  lines.push("|---|---|---|---|---|");
  for (const m of memory) {
    lines.push(
      `| ${m.backend} | ${m.sessions} (${m.connected}) | ${f(m.rssMb, 1)} | ${f(m.kbPerSession, 1)} | ${
        f(m.setupPerSecond, 0)
      } |`,
    );
  }
}
if (heap) {
  lines.push("");
  lines.push(
    `per idle session (ffi, ${heap.sessions} sessions, ${heap.connected} connected, in-process, after GC): ` +
      `live JS heap ${f(heap.heapKbPerSession, 1)} KB, V8 heap reserved ${
        f(heap.heapReservedKbPerSession, 1)
      } KB, ` +
      `RSS ${f(heap.rssKbPerSession, 1)} KB before and ${f(heap.rssKbPerSessionAfterRelease, 1)} KB after ` +
      `returning free allocator memory (malloc_trim, ${f(heap.releaseMs, 0)} ms off the event loop)`,
  );
}
const table = lines.join("\n");
console.log(table);
await Deno.writeTextFile(
  OUT,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      clients: CLIENTS,
      size: SIZE,
      rates: RATES,
      stepMs: STEP_MS,
      rows,
      memory,
      heap,
      threadCpu,
      table,
    },
    null,
    1,
  ) + "\n",
);
console.error(`bench: results written to ${OUT}`);
