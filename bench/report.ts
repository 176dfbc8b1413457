// The bench's results and their report: the tables `deno task bench` prints and bench/latest.json keeps.
// Rows are found by scenario id, never by their printed label.
import type { Settings } from "./scenarios.ts";
import type { ThreadUse } from "./procs.ts";

/** What came back to one set of clients in a step (bench/gen.ts): echoes, reordering, cross-talk, and
 * percentiles of the round trips and of the one-way legs. */
export interface Echoes {
  received: number;
  reordered: number;
  foreign: number;
  rttP50: number;
  rttP99: number;
  rttP999: number;
  /** One-way trips, both legs (client to peer, peer back), each from its sender's stamp to the kernel's
   * receive at the other end (bench/stamps.ts); an ICE-TCP client's leg back is not among them. */
  oneWayP50: number;
  oneWayP99: number;
  oneWayP999: number;
}

export interface Step extends Echoes {
  rate: number;
  sent: number;
  loss: number;
  cpuMs: number;
  /** The direct path measured in windows alternating with this step's (the held-sessions step): the
   * step's added latency is read against it instead of the direct scenario's. */
  baseline?: Baseline;
  /** The C relay measured in a third window of the same rotation (the held-sessions step): split off into
   * its own row by the scenario. */
  relay?: Step;
  /** The processes' threads in the step (asked for with the generator's `threads`). */
  threads?: ThreadUse[];
}

export const BASELINE_FIELDS = [
  "sent",
  "received",
  "rttP50",
  "rttP99",
  "rttP999",
  "oneWayP50",
  "oneWayP99",
  "oneWayP999",
] as const;
export type Baseline = Pick<Step, typeof BASELINE_FIELDS[number]>;

export interface GenResult {
  steps: Step[];
  /** The warm-up before the steps (the generator's `warm`). */
  warm?: Step;
  sessions?: number;
  connected?: number;
  seconds?: number;
  error?: string;
}

export interface ThroughputRow {
  id: string;
  label: string;
  backend: string;
  steps: Step[];
  /** The warm-up before the steps, at the latency rate. */
  warm?: Step;
  /** The round it was measured in (a repeated scenario), or the number of rounds merged into it. */
  round?: number;
  rounds?: number;
}

export interface MemoryRow {
  backend: string;
  journal: boolean;
  sessions: number;
  connected: number;
  rssMb: number;
  kbPerSession: number;
  setupPerSecond: number;
}

interface Cost {
  ms: number;
  bytes: number;
  cpuMs: number;
}

export interface AdminRow {
  backend: string;
  sessions: number;
  metrics: Cost;
  status: Cost;
}

export interface HeapResult {
  sessions: number;
  connected: number;
  heapKbPerSession: number;
  heapReservedKbPerSession: number;
  rssKbPerSession: number;
  rssKbPerSessionAfterRelease: number;
  releaseMs: number;
}

/** bench/maintenance_cost.ts: keeping idle sessions alive, on a simulated clock. */
export interface MaintenanceResult {
  sessions: number;
  live: number;
  seconds: number;
  tickMs: number;
  maintainMsPerSecond: number;
  tickUsP50: number;
  tickUsP99: number;
  tickUsMax: number;
  stunToJanusPerSecond: number;
  deliverMsPerSecond: number;
}

export interface RestoreResult {
  sessions: number;
  connected: number;
  restoredLive: number;
  restoreMs: number;
  startToReadyMs: number;
}

export interface GapRow {
  id: string;
  how: "crash" | "upgrade";
  rate: number;
  clients: number;
  switchMs: number;
  sent: number;
  lost: number;
  longestGapMs: number;
  medianGapMs: number;
  resumed: number;
}

export interface Results {
  throughput: ThroughputRow[];
  memory: MemoryRow[];
  admin: AdminRow[];
  gaps: GapRow[];
  /** xRTC's threads with workers: 1 and 2 over the workers scenario's run (its last round). */
  threads: Record<number, ThreadUse[]>;
  heap?: HeapResult;
  maintenance?: MaintenanceResult;
  restore?: RestoreResult;
}

export function emptyResults(): Results {
  return { throughput: [], memory: [], admin: [], gaps: [], threads: {} };
}

/** The highest rate step with loss within the limit. */
export function maxPps(row: ThroughputRow, maxLoss: number): number {
  const ok = row.steps.filter((s) => s.loss <= maxLoss);
  return ok.length ? Math.max(...ok.map((s) => s.rate)) : 0;
}

const f = (n: number | undefined, d = 2) => n === undefined || Number.isNaN(n) ? "-" : n.toFixed(d);

/** CPU of the processes under test per 1,000 forwarded packets (both directions) at the latency rate. */
export function cpuPerThousand(row: ThroughputRow | undefined, s: Settings): number {
  const at = row?.steps.find((x) => x.rate === s.latencyRate);
  return at && at.cpuMs && at.received ? (at.cpuMs / (at.received * 2)) * 1000 : NaN;
}

const median = (xs: number[]) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** One row per scenario id, in first-run order: a repeated scenario's rounds merged, each field of each
 * rate step the median over the rounds. */
export function mergeRounds(rows: ThroughputRow[]): ThroughputRow[] {
  const byId = new Map<string, ThroughputRow[]>();
  for (const row of rows) byId.set(row.id, [...byId.get(row.id) ?? [], row]);
  return [...byId.values()].map((same) => {
    if (same.length === 1) return { ...same[0], round: undefined, rounds: 1 };
    const rates = [...new Set(same.flatMap((x) => x.steps.map((t) => t.rate)))];
    const steps = rates.map((rate) => {
      const at = same.map((x) => x.steps.find((t) => t.rate === rate)).filter((t) => t !== undefined);
      const m = (k: Exclude<keyof Step, "baseline" | "relay" | "threads">) => median(at.map((t) => t[k]));
      return {
        rate,
        sent: m("sent"),
        received: m("received"),
        loss: m("loss"),
        reordered: Math.max(...at.map((t) => t.reordered)),
        foreign: Math.max(...at.map((t) => t.foreign)),
        cpuMs: median(at.map((t) => (t.cpuMs / t.received))) * m("received"),
        rttP50: m("rttP50"),
        rttP99: m("rttP99"),
        rttP999: m("rttP999"),
        oneWayP50: m("oneWayP50"),
        oneWayP99: m("oneWayP99"),
        oneWayP999: m("oneWayP999"),
        ...(at.every((t) => t.baseline) ? { baseline: mergeBaselines(at.map((t) => t.baseline!)) } : {}),
      };
    });
    return { id: same[0].id, label: same[0].label, backend: same[0].backend, steps, rounds: same.length };
  });
}

/** Each field the median over the rounds, as for the step itself. */
function mergeBaselines(all: Baseline[]): Baseline {
  return Object.fromEntries(BASELINE_FIELDS.map((k) => [k, median(all.map((b) => b[k]))])) as Baseline;
}

export interface RatioSpread {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

const spread = (v: number[]): RatioSpread => ({
  median: median(v),
  min: Math.min(...v),
  max: Math.max(...v),
  rounds: v.length,
});

/** The id of the C relay row measured beside row `id` in the same seconds, when a scenario has one (the
 * held step: `idle-held:ffi` beside `idle-held-c:ffi`). */
export const besideCRelayId = (id: string) => id.replace(/^([^:]+):/, "$1-c:");

/** Every xRTC row's CPU per forwarded packet as a ratio to the C relay's, by row id: to the C relay
 * measured beside it in the same seconds where its scenario has one, else within each round (a row
 * measured once is read against the C relay's median), then the median and range over rounds. */
export function cpuRatios(r: Results, s: Settings): Record<string, RatioSpread> {
  const cRows = r.throughput.filter((t) => t.id === "relay-c");
  const cMedian = median(cRows.map((t) => cpuPerThousand(t, s)));
  const cFor = (row: ThroughputRow) => {
    const beside = r.throughput.find((t) =>
      t.backend === "C" && t.id === besideCRelayId(row.id) && t.round === row.round
    );
    if (beside) return cpuPerThousand(beside, s);
    const same = cRows.find((t) => t.round === row.round);
    return same ? cpuPerThousand(same, s) : cMedian;
  };
  const perId = new Map<string, number[]>();
  for (const row of r.throughput) {
    if (row.id === "direct" || row.backend === "C") continue;
    const v = cpuPerThousand(row, s) / cFor(row);
    if (Number.isFinite(v)) perId.set(row.id, [...perId.get(row.id) ?? [], v]);
  }
  const out: Record<string, RatioSpread> = {};
  for (const [id, v] of perId) out[id] = spread(v);
  return out;
}

const pct = (x: number) => `${x >= 1 ? "+" : ""}${f((x - 1) * 100, 0)} %`;

/** Row `a`'s CPU per forwarded packet over row `b`'s, within each round where both ran. */
export function cpuGrowth(r: Results, s: Settings, a: string, b: string): RatioSpread | undefined {
  const v: number[] = [];
  for (const x of r.throughput.filter((t) => t.id === a)) {
    const y = r.throughput.find((t) => t.id === b && t.round === x.round);
    const g = cpuPerThousand(x, s) / cpuPerThousand(y, s);
    if (Number.isFinite(g)) v.push(g);
  }
  return v.length ? spread(v) : undefined;
}

/** Per row with a warm-up: its CPU per forwarded packet in the warm-up (right after the process started, at
 * the latency rate) over the steady latency step's, within each round; the C relay's is the control. */
export function warmUpCost(r: Results, s: Settings): Record<string, RatioSpread> {
  const perId = new Map<string, number[]>();
  for (const row of r.throughput) {
    const w = row.warm;
    if (!w?.received) continue;
    const v = (w.cpuMs / (w.received * 2)) * 1000 / cpuPerThousand(row, s);
    if (Number.isFinite(v)) perId.set(row.id, [...perId.get(row.id) ?? [], v]);
  }
  return Object.fromEntries([...perId].map(([id, v]) => [id, spread(v)]));
}

/** The ratios the bench exists to show, by name: compared with the previous run's. */
export function ratios(r: Results, s: Settings): Record<string, number> {
  const rows = mergeRounds(r.throughput);
  const pps = (id: string) => {
    const row = rows.find((t) => t.id === id);
    return row ? maxPps(row, s.maxLoss) : NaN;
  };
  const out: Record<string, number> = {};
  for (const b of s.backends) {
    out[`${b}: half proxy / bare relay`] = pps(`half:${b}`) / pps(`relay:${b}`);
    out[`${b}: full proxy / bare relay`] = pps(`full:${b}`) / pps(`relay:${b}`);
  }
  out["ffi: half proxy with the journal / without"] = pps("half-journal:ffi") / pps("half:ffi");
  out["every core on one port, bare relay in C: 2 processes / 1"] = pps("relay-reuseport-x2") /
    pps("relay-reuseport-x1");
  out["every core on one port, xRTC: workers 2 / workers 1"] = pps("workers-2:ffi") / pps("workers-1:ffi");
  out["ffi / deno, half proxy"] = pps("half:ffi") / pps("half:deno");
  out["ffi / deno, bare relay"] = pps("relay:ffi") / pps("relay:deno");
  for (const k of Object.keys(out)) if (!Number.isFinite(out[k])) delete out[k];
  return out;
}

/** A titled list of one spread per row, in the table's order (nothing when no row has one). */
function perRow(
  lines: string[],
  rows: ThroughputRow[],
  by: Record<string, RatioSpread>,
  title: string,
): void {
  if (!Object.keys(by).length) return;
  lines.push("", title);
  for (const row of rows) {
    const x = by[row.id];
    if (x === undefined) continue;
    const range = x.rounds > 1 ? ` (rounds: ${f(x.min)} to ${f(x.max)})` : "";
    lines.push(`  ${row.label}, ${row.backend}: ${f(x.median)}${range}`);
  }
}

export function render(
  r: Results,
  s: Settings,
  previous?: { date: string; ratios: Record<string, number> },
): string {
  const lines: string[] = [];
  const at = (row: ThroughputRow) => row.steps.find((x) => x.rate === s.latencyRate);
  const rows = mergeRounds(r.throughput);
  const direct = rows.find((t) => t.id === "direct");
  const d = direct && at(direct);
  if (r.throughput.length) {
    lines.push(
      `xRTC data plane: ${s.clients} clients, ${s.size}-byte packets, generator on ffi; peer: project-owned echo, not Janus`,
      `rate steps: ${
        s.rates.join(", ")
      } packets/s, ${s.stepMs} ms each (${s.latencyRate}: ${s.latencyStepMs} ms); max pps = highest step with < ${
        s.maxLoss * 100
      } % loss (the proxy forwards twice that: both directions)${
        s.rounds > 1 ? `; ${s.rounds} interleaved rounds, each figure the median over them` : ""
      }`,
      `${
        s.pacedUpTo > 0
          ? `UDP clients pace their packets up to ${s.pacedUpTo} packets/s (each alone, 1/rate apart), above that each millisecond's leave together`
          : "each millisecond's packets leave together"
      }; ICE-TCP clients write each millisecond's frames at once`,
      "added one-way: each leg (client to peer, peer back) from its sender's stamp to the kernel's receive at the other end, its percentile less the direct path's; ICE-TCP clients: the leg to the peer only",
      "",
      `| target | backend | max pps | CPU ms/1000 pkts @${s.latencyRate} | loss @${s.latencyRate} | added one-way p50/p99/p99.9 ms | reordered | cross-talk |`,
      "|---|---|---|---|---|---|---|---|",
    );
    for (const row of rows) {
      const a = at(row);
      // Against the direct path of the same seconds where the step has one, else the direct scenario's.
      const base = a?.baseline ?? d;
      const oneWay = (x: Pick<Step, "oneWayP50" | "oneWayP99" | "oneWayP999">) =>
        `${f(x.oneWayP50)}/${f(x.oneWayP99)}/${f(x.oneWayP999)}`;
      const added = row.id === "direct"
        ? `0 (one-way ${a ? oneWay(a) : "-"}; RTT ${f(a?.rttP50)}/${f(a?.rttP99)}/${f(a?.rttP999)})`
        : a && base
        ? `${f(a.oneWayP50 - base.oneWayP50)}/${f(a.oneWayP99 - base.oneWayP99)}/${
          f(a.oneWayP999 - base.oneWayP999)
        }${a.baseline ? ` (direct one-way ${oneWay(base)})` : ""}`
        : "-";
      const cpu = f(cpuPerThousand(row, s), 3);
      const steps = row.steps.length > 1;
      lines.push(
        `| ${row.label} | ${row.backend} | ${steps ? maxPps(row, s.maxLoss) : "-"} | ${cpu} | ${
          a ? f(a.loss * 100, 3) + " %" : "-"
        } | ${added} | ${row.steps.reduce((n, x) => n + x.reordered, 0)} | ${
          row.steps.reduce((n, x) => n + x.foreign, 0)
        } |`,
      );
    }
    perRow(
      lines,
      rows,
      cpuRatios(r, s),
      `CPU per forwarded packet at ${s.latencyRate} pps, as a ratio to the C relay (1.00 = the ceiling; rows with sessions held: to the C relay of the same seconds):`,
    );
    const growth: Array<[string, string, string]> = [
      ["xRTC, workers: 2 over workers: 1", "workers-2:ffi", "workers-1:ffi"],
      ["bare relay in C, 2 processes over 1", "relay-reuseport-x2", "relay-reuseport-x1"],
    ];
    const grown = growth.map(([k, a, b]) => [k, cpuGrowth(r, s, a, b)] as const).filter(([, g]) => g);
    if (grown.length) {
      lines.push(
        "",
        `CPU per forwarded packet at ${s.latencyRate} pps, 2 shards over 1 (16 clients, within each round):`,
      );
      for (const [k, g] of grown) {
        const range = g!.rounds > 1 ? ` (rounds: ${pct(g!.min)} to ${pct(g!.max)})` : "";
        lines.push(`  ${k}: ${pct(g!.median)}${range}`);
      }
    }
    perRow(
      lines,
      rows,
      warmUpCost(r, s),
      `The warm-up, not in the figures above: CPU per forwarded packet in the first ${
        f(s.warmMs / 1000, 0)
      } s of traffic at ${s.latencyRate} pps over the steady step's (xRTC's JIT at work; the relays in C are the control):`,
    );
    const now = ratios(r, s);
    lines.push("", `ratios of max pps (same run)${previous ? `; previous run (${previous.date})` : ""}:`);
    for (const [k, v] of Object.entries(now)) {
      const before = previous?.ratios[k];
      lines.push(`  ${k} = ${f(v)}${before !== undefined ? ` (previous ${f(before)})` : ""}`);
    }
    for (const w of [1, 2]) {
      if (!r.threads[w]) continue;
      const use = r.threads[w].filter((u) => u.cpuMs >= 1).map((u) =>
        `${u.name}${u.threads > 1 ? ` x${u.threads}` : ""} ${f(u.cpuMs, 0)} ms, ${u.switches} switches`
      ).join("; ");
      lines.push(`  workers: ${w}, xRTC's threads over the run (set-up included): ${use}`);
    }
  }
  if (r.memory.length) {
    lines.push(
      "",
      "RSS of the xRTC process after each batch of idle sessions was set up (11 s later; ffi: after its periodic memory release)",
      "| backend | journal | idle sessions (connected) | RSS MB | KB per session | sessions set up/s |",
      "|---|---|---|---|---|---|",
    );
    for (const m of r.memory) {
      lines.push(
        `| ${m.backend} | ${m.journal ? "on" : "off"} | ${m.sessions} (${m.connected}) | ${f(m.rssMb, 1)} | ${
          f(m.kbPerSession, 1)
        } | ${f(m.setupPerSecond, 0)} |`,
      );
    }
  }
  if (r.admin.length) {
    lines.push(
      "",
      "admin endpoints with idle sessions held (mean of 20 calls; xRTC's CPU per call)",
      "| backend | sessions | /metrics ms | /metrics KB | /metrics CPU ms | /status ms | /status KB | /status CPU ms |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const a of r.admin) {
      lines.push(
        `| ${a.backend} | ${a.sessions} | ${f(a.metrics.ms, 1)} | ${f(a.metrics.bytes / 1024, 1)} | ${
          f(a.metrics.cpuMs, 1)
        } | ${f(a.status.ms, 1)} | ${f(a.status.bytes / 1024, 1)} | ${f(a.status.cpuMs, 1)} |`,
      );
    }
  }
  if (r.restore) {
    const x = r.restore;
    lines.push(
      "",
      `restore after kill -9 (ffi, journal on): ${x.sessions} sessions set up (${x.connected} connected); ` +
        `${x.restoredLive} live sessions restored in ${x.restoreMs} ms; start to ready ${
          f(x.startToReadyMs, 0)
        } ms`,
    );
  }
  if (r.gaps.length) {
    lines.push(
      "",
      "media gap across a restart (half proxy, ffi, journal on; clients echo at a steady rate)",
      "| how | clients | packets/s | switch ms | longest gap ms | median gap ms | lost packets | clients resumed |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const g of r.gaps) {
      lines.push(
        `| ${
          g.how === "crash" ? "kill -9, start again" : "upgrade (--takeover)"
        } | ${g.clients} | ${g.rate} | ${f(g.switchMs, 0)} | ${f(g.longestGapMs, 0)} | ${
          f(g.medianGapMs, 0)
        } | ${g.lost} of ${g.sent} | ${g.resumed}/${g.clients} |`,
      );
    }
  }
  if (r.heap) {
    const h = r.heap;
    lines.push(
      "",
      `per idle session (ffi, ${h.sessions} sessions, ${h.connected} connected, in-process, after GC): ` +
        `live JS heap ${f(h.heapKbPerSession, 1)} KB, V8 heap reserved ${
          f(h.heapReservedKbPerSession, 1)
        } KB, ` +
        `RSS ${f(h.rssKbPerSession, 1)} KB before and ${f(h.rssKbPerSessionAfterRelease, 1)} KB after ` +
        `returning free allocator memory (malloc_trim, ${f(h.releaseMs, 0)} ms off the event loop)`,
    );
  }
  if (r.maintenance) {
    const m = r.maintenance;
    lines.push(
      "",
      `keeping ${m.live} of ${m.sessions} idle half-proxy sessions alive (in-process, socket-free, ` +
        `${m.seconds} simulated s): maintenance ${f(m.maintainMsPerSecond, 2)} ms of CPU per second ` +
        `(${m.tickMs} ms ticks: p50 ${f(m.tickUsP50, 1)} us, p99 ${f(m.tickUsP99, 1)} us, max ${
          f(m.tickUsMax, 0)
        } us), ` +
        `${f(m.stunToJanusPerSecond, 0)} STUN datagrams a second to the Janus legs, ` +
        `${f(m.deliverMsPerSecond, 2)} ms per second delivering them and any answers (test Janus included)`,
    );
  }
  return lines.join("\n");
}
