// The bench's scenarios, in the order they run. Each has an id (BENCH_SCENARIOS picks them by id or id
// prefix) and adds typed results; report.ts turns them into the printed tables by id, never by label.
import {
  buildC,
  cpuMs,
  DENO,
  freePort,
  type Proc,
  ROOT,
  rssKb,
  sleep,
  spawn,
  threadSamples,
  threadUse,
} from "./procs.ts";
import { type BenchXrtc, startXrtc } from "./xrtc.ts";
import type { GenResult, Results } from "./report.ts";

export interface Settings {
  backends: Array<"deno" | "ffi">;
  rates: number[];
  stepMs: number;
  clients: number;
  size: number;
  maxLoss: number;
  /** Idle-session counts, cumulative ("" to skip the idle scenarios). */
  sessions: number[];
  /** The rate the latency and CPU columns are read at. */
  latencyRate: number;
  /** How long the step at latencyRate lasts: longer than the others, since CPU per packet is read there
   * and a 2 s step moves by 10-20 % from run to run on this machine. */
  latencyStepMs: number;
  /** The held-sessions step: this long through xRTC, as long through the C relay and as long on the direct
   * path, in windows of heldWindowMs rotating among the three (one build's added p99 spread by ±0.1 ms when
   * read against a direct path measured minutes before, and the C relay's moved as much). */
  heldStepMs: number;
  heldWindowMs: number;
  /** Before its steps, each throughput run (relays and xRTC alike) sends this long at latencyRate, measured
   * apart: a fresh xRTC's JIT compiles its media path in its first seconds of traffic (measured at 2k
   * packets/s, 8 s steps: V8's compiler threads ran 50 ms in the first step after 3 s of traffic and 5 ms
   * after 40 s, and the media thread used 7 % less), a cost a server that runs for days pays once. The
   * report gives that first stretch's CPU per packet against the steady step's (0: no warm-up). */
  warmMs: number;
  /** Rounds of the throughput scenarios, interleaved: each figure is the median over them, and each
   * ratio to the C relay is taken within a round (the machine's drift between rounds cancels). */
  rounds: number;
  /** The clients pace their packets at rates up to this (GenOptions.pacedUpTo): what a relay sees of
   * independent senders, one datagram at a time, rather than a millisecond's packets in one burst. */
  pacedUpTo: number;
}

/** Up to this rate the clients pace their packets unless BENCH_PACED_UP_TO says otherwise (Settings.pacedUpTo). */
export const PACED_UP_TO = 20_000;

export interface Context {
  settings: Settings;
  /** The shared echo peer for the throughput scenarios. */
  peer: { udp: number; http: number };
  results: Results;
  /** The round a repeated scenario runs in (undefined for scenarios that run once). */
  round?: number;
}

export interface Scenario {
  id: string;
  title: string;
  /** A throughput scenario: it runs once per round. */
  repeat?: boolean;
  run(ctx: Context): Promise<void>;
}

/** The echo peer (bench/peer.ts): a fresh one per idle-session scenario, since it keeps a socket per
 * session as Janus keeps a port per handle, and never learns of hangups. */
export async function startPeer(): Promise<Proc & { udp: number; http: number }> {
  const p = await spawn(["run", "-A", "bench/peer.ts", await buildC("c_load")], /^PEER \d+ \d+/);
  const [, udp, http] = p.lines.find((l) => l.startsWith("PEER "))!.split(" ").map(Number);
  return Object.assign(p, { udp, http });
}

/** Runs the generator to its end. */
export async function gen(opts: Record<string, unknown>): Promise<GenResult> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "bench/gen.ts", JSON.stringify({ cLoad: await buildC("c_load"), ...opts })],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error("generator printed no result");
  const r = JSON.parse(line.slice(7)) as GenResult;
  if (r.error) throw new Error(`generator: ${r.error}`);
  return r;
}

let tagCounter = 0;
/** Client ufrags differ from run to run against one xRTC. */
const nextTag = () => `r${++tagCounter}c`;

function common(s: Settings) {
  return {
    clients: s.clients,
    size: s.size,
    maxLoss: s.maxLoss,
    stepMs: s.stepMs,
    longStep: { rate: s.latencyRate, ms: s.latencyStepMs },
    pacedUpTo: s.pacedUpTo,
    ...(s.warmMs > 0 ? { warm: { rate: s.latencyRate, ms: s.warmMs } } : {}),
  };
}

function xrtcPorts(peerHttp: number) {
  return { peerHttp, udpPort: freePort(), httpPort: freePort() };
}

function throughXrtc(ctx: Context, x: BenchXrtc, proc: Proc, o: Record<string, unknown> = {}) {
  return gen({
    ...common(ctx.settings),
    mode: "xrtc",
    port: x.udpPort,
    http: `http://127.0.0.1:${x.httpPort}`,
    rates: ctx.settings.rates,
    pids: [proc.pid],
    tag: nextTag(),
    ...o,
  });
}

/** A throughput row from what the generator measured: its steps, and its warm-up if it had one. */
function addRow(
  ctx: Context,
  id: string,
  label: string,
  backend: string,
  run: Pick<GenResult, "steps" | "warm">,
) {
  const { steps, warm } = run;
  ctx.results.throughput.push({ id, label, backend, steps, round: ctx.round, ...(warm ? { warm } : {}) });
}

/** Time and size of `n` GETs of an admin path, and xRTC's CPU per call. */
async function adminCost(
  pid: number,
  url: string,
  n = 20,
): Promise<{ ms: number; bytes: number; cpuMs: number }> {
  const cpu0 = cpuMs([pid]);
  const t0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < n; i++) bytes = (await (await fetch(url)).arrayBuffer()).byteLength;
  const ms = (performance.now() - t0) / n;
  return { ms, bytes, cpuMs: (cpuMs([pid]) - cpu0) / n };
}

/** `processes` relays on one fresh port (spawned by `start`), measured at every rate, one row. */
async function measureRelays(
  ctx: Context,
  row: { id: string; label: string; backend: string },
  start: (port: number) => Promise<Proc>,
  o: { processes?: number; clients?: number; gen?: Record<string, unknown> } = {},
): Promise<void> {
  const port = freePort();
  const relays: Proc[] = [];
  try {
    for (let i = 0; i < (o.processes ?? 1); i++) relays.push(await start(port));
    const r = await gen({
      ...common(ctx.settings),
      ...(o.clients ? { clients: o.clients } : {}),
      mode: "raw",
      port,
      rates: ctx.settings.rates,
      pids: relays.map((p) => p.pid),
      ...o.gen,
    });
    addRow(ctx, row.id, row.label, row.backend, r);
  } finally {
    for (const p of relays) await p.stop();
  }
}

/** `n` idle sessions through xRTC as fast as it takes them (the generator's "sessions" mode). */
function idleSessions(ctx: Context, x: BenchXrtc, n: number): Promise<GenResult> {
  return gen({
    ...common(ctx.settings),
    mode: "sessions",
    port: x.udpPort,
    http: `http://127.0.0.1:${x.httpPort}`,
    rates: [],
    sessions: n,
    tag: nextTag(),
  });
}

/** A starter for the C relay (built once) on a given port, forwarding to `peerUdp`; with `reusePort`, one
 * of several processes on that port. */
async function cRelayTo(peerUdp: number, reusePort = false): Promise<(port: number) => Promise<Proc>> {
  const command = await buildC("c_relay");
  return (port) =>
    spawn([String(port), String(peerUdp), ...(reusePort ? ["reuseport"] : [])], /^RELAY/, { command });
}

/** The ceiling every xRTC figure is read against: a bare recvmmsg/sendmmsg relay in C. */
const cRelayScenario: Scenario = {
  id: "relay-c",
  title: "bare relay in C (recvmmsg/sendmmsg, epoll), the ceiling",
  async run(ctx) {
    await measureRelays(
      ctx,
      { id: "relay-c", label: "bare relay in C", backend: "C" },
      await cRelayTo(ctx.peer.udp),
    );
  },
};

/** xRTC with these options (its ports added) through the stepped rates, as one row of the table. */
function proxyScenario(
  id: string,
  title: string,
  label: string,
  options: Omit<BenchXrtc, keyof ReturnType<typeof xrtcPorts>>,
): Scenario {
  return {
    id,
    title,
    async run(ctx) {
      const x: BenchXrtc = { ...options, ...xrtcPorts(ctx.peer.http) };
      const proc = await startXrtc(x);
      try {
        const r = await throughXrtc(ctx, x, proc);
        addRow(ctx, id, label, options.backend, r);
      } finally {
        await proc.stop();
      }
    },
  };
}

const throughputScenarios = (backend: "deno" | "ffi"): Scenario[] => [
  {
    id: `relay:${backend}`,
    title: `bare relay, ${backend}`,
    run: (ctx) =>
      measureRelays(
        ctx,
        { id: `relay:${backend}`, label: "bare relay", backend },
        (port) =>
          spawn(["run", "-A", "bench/relay.ts", String(port), String(ctx.peer.udp), backend], /^RELAY/),
      ),
  },
  ...(backend === "ffi"
    ? [{
      id: "relay-reuseport",
      title: "bare relay in C x1 and x2 on one SO_REUSEPORT port, 16 clients (the workers' ceiling)",
      async run(ctx: Context) {
        // Every core on one port, the ceiling: 1 and 2 C relay processes on one SO_REUSEPORT port, with
        // the client count of the workers scenario.
        const start = await cRelayTo(ctx.peer.udp, true);
        for (const processes of [1, 2]) {
          await measureRelays(
            ctx,
            {
              id: `relay-reuseport-x${processes}`,
              label: `bare relay in C x${processes} (SO_REUSEPORT, 16 clients)`,
              backend: "C",
            },
            start,
            { processes, clients: 16 },
          );
        }
      },
    }]
    : []),
  ...[false, true].map((icedirect) => {
    const mode = icedirect ? "full" : "half";
    return proxyScenario(`${mode}:${backend}`, `xRTC ${mode} proxy, ${backend}`, `xRTC ${mode} proxy`, {
      backend,
      icedirect,
    });
  }),
  ...(backend === "ffi"
    ? [
      proxyScenario(
        "half-nogso:ffi",
        "xRTC half proxy without UDP GSO (udp_gso: false), ffi",
        "xRTC half proxy, GSO off",
        { backend: "ffi", gso: false },
      ),
      proxyScenario(
        "half-main:ffi",
        "xRTC half proxy with the shard's media on the main thread (media_thread: main), ffi",
        "xRTC half proxy, media_thread: main",
        { backend: "ffi", mediaThread: "main" },
      ),
      {
        id: "half-gro:ffi",
        title:
          "xRTC half proxy, clients sending bursts of 8 with UDP GSO, udp_gro on and off (20k step), ffi",
        async run(ctx: Context) {
          // Where GRO pays: a sender on the host that uses GSO (on the wire, a NIC's GRO does the same
          // for bursts that arrive together; loopback and veth coalesce only what left as one GSO send).
          for (const gro of [true, false]) {
            const x: BenchXrtc = { backend: "ffi", gro, ...xrtcPorts(ctx.peer.http) };
            const proc = await startXrtc(x);
            try {
              const r = await throughXrtc(ctx, x, proc, {
                rates: [ctx.settings.latencyRate],
                burst: 8,
                gso: true,
              });
              const id = gro ? "half-gso-bursts:ffi" : "half-gso-bursts-nogro:ffi";
              addRow(
                ctx,
                id,
                `xRTC half proxy, clients send GSO bursts of 8, GRO ${gro ? "on" : "off"}`,
                "ffi",
                r,
              );
            } finally {
              await proc.stop();
            }
          }
        },
      },
      {
        id: "half-journal:ffi",
        title: "xRTC half proxy with the state journal on, ffi",
        async run(ctx: Context) {
          const stateDir = await Deno.makeTempDir({ prefix: "xrtc-bench-state-" });
          const x: BenchXrtc = { backend: "ffi", stateDir, ...xrtcPorts(ctx.peer.http) };
          const proc = await startXrtc(x);
          try {
            const r = await throughXrtc(ctx, x, proc);
            addRow(ctx, "half-journal:ffi", "xRTC half proxy, state journal on", "ffi", r);
          } finally {
            await proc.stop();
            await Deno.remove(stateDir, { recursive: true });
          }
        },
      },
      {
        id: "half-tcp:ffi",
        title: "xRTC half proxy, clients on ICE-TCP (RFC 6544, RFC 4571 frames) to its TCP port, ffi",
        async run(ctx: Context) {
          // The TCP port is the main thread's; the sessions' media is on a worker (media_thread: auto),
          // so each frame crosses between the threads both ways.
          const x: BenchXrtc = { backend: "ffi", tcpPort: freePort(), ...xrtcPorts(ctx.peer.http) };
          const proc = await startXrtc(x);
          try {
            const r = await throughXrtc(ctx, x, proc, { tcp: x.tcpPort });
            addRow(ctx, "half-tcp:ffi", "xRTC half proxy, ICE-TCP clients", "ffi", r);
          } finally {
            await proc.stop();
          }
        },
      },
      {
        id: "workers:ffi",
        title: "xRTC half proxy with workers: 1 and 2, 16 clients, ffi",
        async run(ctx: Context) {
          for (const workers of [1, 2]) {
            const x: BenchXrtc = { backend: "ffi", workers, ...xrtcPorts(ctx.peer.http) };
            const proc = await startXrtc(x);
            try {
              const threads0 = threadSamples(proc.pid);
              const r = await throughXrtc(ctx, x, proc, { clients: 16 });
              addRow(
                ctx,
                `workers-${workers}:ffi`,
                `xRTC half proxy, workers: ${workers} (16 clients)`,
                "ffi",
                r,
              );
              ctx.results.threads[workers] = threadUse(threads0, threadSamples(proc.pid));
            } finally {
              await proc.stop();
            }
          }
        },
      },
    ]
    : []),
];

/** Idle sessions in batches: RSS, set-up rate, the admin endpoints' cost at each size, then latency with
 * them all held, read against the direct path in alternate windows; and the C relay measured the same way
 * just before, while xRTC holds them (the ceiling under the same method and the same machine state).
 * With `onMain`, the held step only, the one shard's media on the main thread (media_thread: main;
 * memory and admin rows are the default's: a worker thread with ffi). */
const idleScenario = (backend: "deno" | "ffi", onMain = false): Scenario => ({
  id: onMain ? `idle-main:${backend}` : `idle:${backend}`,
  title: `idle sessions, ${backend}${onMain ? ", media_thread: main" : ""}`,
  async run(ctx) {
    const { sessions } = ctx.settings;
    if (!sessions.length) return;
    const peer = await startPeer();
    const x: BenchXrtc = {
      backend,
      mediaThread: onMain ? "main" : "auto",
      adminPort: freePort(),
      ...xrtcPorts(peer.http),
    };
    const proc = await startXrtc(x);
    try {
      await sleep(1000);
      const base = rssKb(proc.pid);
      let made = 0, connected = 0;
      for (const n of onMain ? sessions.slice(-1) : sessions) {
        const g = await idleSessions(ctx, x, n - made);
        made = n;
        connected += g.connected ?? 0;
        // Janus legs connect, memory settles, and xRTC's periodic release of free memory (10 s) has run.
        await sleep(11_000);
        if (onMain) continue; // the held step only
        const rss = rssKb(proc.pid);
        ctx.results.memory.push({
          backend,
          journal: false,
          sessions: n,
          connected,
          rssMb: rss / 1024,
          kbPerSession: (rss - base) / n,
          setupPerSecond: g.sessions! / g.seconds!,
        });
        const metrics = await adminCost(proc.pid, `http://127.0.0.1:${x.adminPort}/metrics`);
        const status = await adminCost(proc.pid, `http://127.0.0.1:${x.adminPort}/status`);
        ctx.results.admin.push({ backend, sessions: n, metrics, status });
      }
      // The direct path, the C relay and xRTC in rotating windows of the same step: the held sessions'
      // latency is read against the direct path of the same seconds, beside the ceiling of the same seconds.
      const relayPort = freePort();
      const relay = await (await cRelayTo(peer.udp))(relayPort);
      const r = await throughXrtc(ctx, x, proc, {
        rates: [ctx.settings.latencyRate],
        stepMs: ctx.settings.heldStepMs,
        longStep: undefined,
        pairedDirectPort: peer.udp,
        pairedWindowMs: ctx.settings.heldWindowMs,
        pairedRelay: { port: relayPort, pids: [relay.pid] },
      }).finally(() => relay.stop());
      const rotation = `${ctx.settings.heldStepMs / 1000} s each, in ${
        ctx.settings.heldWindowMs / 1000
      } s windows rotating with the direct path and the other`;
      const shards = onMain ? ", media_thread: main" : "";
      const suffix = onMain ? "-main" : "";
      addRow(
        ctx,
        `idle-held-c:${backend}${suffix}`,
        `bare relay in C, while xRTC (${backend}${shards}) holds ${made} idle sessions (${rotation})`,
        "C",
        { steps: r.steps.flatMap((s) => s.relay ? [s.relay] : []) },
      );
      addRow(
        ctx,
        `idle-held:${backend}${suffix}`,
        `xRTC half proxy${shards}, ${made} idle sessions held (${rotation})`,
        backend,
        { steps: r.steps.map(({ relay: _, ...s }) => s) },
      );
    } finally {
      await proc.stop();
      await peer.stop();
    }
  },
});

/** The journal's cost on session set-up, and the time a start takes to restore every session. */
const restoreScenario: Scenario = {
  id: "restore:ffi",
  title: "set-up rate with the state journal on, and restoring every session after kill -9, ffi",
  async run(ctx) {
    const n = ctx.settings.sessions.at(-1);
    if (!n) return;
    const peer = await startPeer();
    const stateDir = await Deno.makeTempDir({ prefix: "xrtc-bench-state-" });
    const x: BenchXrtc = { backend: "ffi", stateDir, ...xrtcPorts(peer.http) };
    let proc: Awaited<ReturnType<typeof startXrtc>> | undefined;
    try {
      proc = await startXrtc(x);
      const g = await idleSessions(ctx, x, n);
      await sleep(3_000); // Janus legs connect; their live state is recorded
      ctx.results.memory.push({
        backend: "ffi",
        journal: true,
        sessions: n,
        connected: g.connected ?? 0,
        rssMb: rssKb(proc.pid) / 1024,
        kbPerSession: NaN,
        setupPerSecond: g.sessions! / g.seconds!,
      });
      await proc.stop("SIGKILL");
      const t0 = performance.now();
      proc = await startXrtc(x, { log: true, configFile: proc.configFile });
      const readyMs = performance.now() - t0;
      const line = await proc.waitLine(/event=state_restored/);
      const field = (k: string) => Number(new RegExp(`${k}=(\\d+)`).exec(line)?.[1]);
      ctx.results.restore = {
        sessions: n,
        connected: g.connected ?? 0,
        restoredLive: field("live"),
        restoreMs: field("took_ms"),
        startToReadyMs: readyMs,
      };
    } finally {
      await proc?.stop("SIGKILL");
      await peer.stop();
      await Deno.remove(stateDir, { recursive: true });
    }
  },
};

/** The media gap of a crash-restart and of an upgrade: clients echo at a steady rate through the half
 * proxy while xRTC is killed and started again, or replaced by a process started with --takeover. */
const gapScenarios: Scenario[] = (["crash", "upgrade"] as const).map((how) => ({
  id: `gap-${how}:ffi`,
  title: `media gap of ${how === "crash" ? "kill -9 and a restart" : "an upgrade (--takeover)"}, ffi`,
  async run(ctx: Context) {
    const stateDir = await Deno.makeTempDir({ prefix: "xrtc-bench-state-" });
    const x: BenchXrtc = { backend: "ffi", stateDir, ...xrtcPorts(ctx.peer.http) };
    const rate = 2_000, clients = 8, durationMs = 8_000;
    let old: Awaited<ReturnType<typeof startXrtc>> | undefined, next: Proc | undefined;
    try {
      old = await startXrtc(x);
      const g = await spawn(
        [
          "run",
          "-A",
          "bench/gen.ts",
          JSON.stringify({
            ...common(ctx.settings),
            clients,
            mode: "gap",
            port: x.udpPort,
            http: `http://127.0.0.1:${x.httpPort}`,
            rates: [rate],
            durationMs,
            tag: nextTag(),
          }),
        ],
        /^CONNECTED/,
      );
      await sleep(2_000);
      const t0 = performance.now();
      if (how === "crash") {
        await old.stop("SIGKILL");
        next = await startXrtc(x, { configFile: old.configFile });
      } else {
        next = await startXrtc(x, { takeover: true, configFile: old.configFile });
      }
      const switchMs = performance.now() - t0;
      const result = JSON.parse((await g.waitLine(/^RESULT /, durationMs + 10_000)).slice(7));
      await g.stop();
      ctx.results.gaps.push({ id: `gap-${how}:ffi`, how, rate, clients, switchMs, ...result });
    } finally {
      await next?.stop();
      await old?.stop("SIGKILL");
      await Deno.remove(stateDir, { recursive: true });
    }
  },
}));

const heapScenario: Scenario = {
  id: "heap:ffi",
  title: "live heap per idle session (in-process, after GC), ffi",
  async run(ctx) {
    const n = ctx.settings.sessions.at(-1);
    if (!n) return;
    const peer = await startPeer();
    try {
      ctx.results.heap = await printedResult(
        ["--v8-flags=--expose-gc", "bench/session_heap.ts", String(peer.http), String(n)],
        "HEAP",
      );
    } finally {
      await peer.stop();
    }
  },
};

/** Runs `deno run -A <args>` to its end and parses the JSON of its stdout line "<tag> {…}". */
async function printedResult<T>(args: string[], tag: string): Promise<T> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
    env: { XRTC_LOG: "error" },
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith(`${tag} `));
  if (!line) throw new Error(`${args.find((a) => a.endsWith(".ts"))} printed no result`);
  return JSON.parse(line.slice(tag.length + 1)) as T;
}

const maintenanceScenario: Scenario = {
  id: "maintenance",
  title: "keeping idle sessions alive (socket-free, simulated clock)",
  async run(ctx) {
    const n = ctx.settings.sessions.at(-1);
    if (!n) return;
    ctx.results.maintenance = await printedResult(["bench/maintenance_cost.ts", String(n), "30"], "MAINT");
  },
};

export function scenarios(s: Settings): Scenario[] {
  const repeated = (x: Scenario): Scenario => ({ ...x, repeat: true });
  return [
    repeated({
      id: "direct",
      title: "direct path",
      async run(ctx) {
        const r = await gen({ ...common(s), mode: "raw", port: ctx.peer.udp, rates: [s.latencyRate] });
        addRow(ctx, "direct", "direct path", "-", r);
      },
    }),
    repeated(cRelayScenario),
    ...s.backends.flatMap((b) => [...throughputScenarios(b).map(repeated), idleScenario(b)]),
    // The held step again with the shard's media on the main thread (media_thread: main), which waits for
    // datagrams through Deno's reactor (two thread switches per wakeup) beside signalling and HTTP.
    ...(s.backends.includes("ffi") ? [idleScenario("ffi", true)] : []),
    ...(s.backends.includes("ffi") ? [restoreScenario, ...gapScenarios, heapScenario] : []),
    maintenanceScenario,
  ];
}
