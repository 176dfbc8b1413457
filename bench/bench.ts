// deno task bench: xRTC's data plane against a direct path and a bare relay in the same run, its memory
// per session, the admin endpoints' cost, the state journal's cost, the restore time and the media gap
// of a restart. Processes: an echo peer with a Janus-like API (project-owned, not Janus), the proxy under
// test and the load generator, all on 127.0.0.1, on ports the kernel picks.
//   deno task bench [--list]
// Environment: BENCH_SCENARIOS (comma list of scenario ids or prefixes, e.g. "direct,half,gap"; default
// all), BENCH_BACKENDS (deno,ffi), BENCH_RATES (comma list of packets/s), BENCH_STEP_MS,
// BENCH_LATENCY_STEP_MS (the 20k step, where CPU per packet and latency are read; default 6000),
// BENCH_WARM_MS (each throughput run's warm-up at 20k before its steps, reported apart; default 10000), BENCH_CLIENTS,
// BENCH_SESSIONS (comma list of idle-session counts, "" to skip), BENCH_ROUNDS (rounds of the throughput
// scenarios, default 3), BENCH_PACED_UP_TO (the clients pace their packets at rates up to this, default
// 20000; 0: every millisecond's packets together at every rate), BENCH_OUT (JSON path).
import { ROOT } from "./procs.ts";
import {
  type Context,
  PACED_UP_TO,
  type Scenario,
  scenarios,
  type Settings,
  startPeer,
} from "./scenarios.ts";
import { cpuRatios, emptyResults, ratios, render } from "./report.ts";

const env = (k: string, d: string) => Deno.env.get(k) ?? d;
const list = (k: string, d: string) => env(k, d).split(",").filter(Boolean);

const settings: Settings = {
  backends: list("BENCH_BACKENDS", "deno,ffi") as Array<"deno" | "ffi">,
  rates: list("BENCH_RATES", "5000,10000,20000,30000,40000,60000,80000,100000,140000").map(Number),
  stepMs: Number(env("BENCH_STEP_MS", "2000")),
  clients: Number(env("BENCH_CLIENTS", "4")),
  size: 1200,
  maxLoss: 0.001,
  sessions: list("BENCH_SESSIONS", "100,1000,10000").map(Number),
  latencyRate: 20_000,
  latencyStepMs: Number(env("BENCH_LATENCY_STEP_MS", "6000")),
  warmMs: Number(env("BENCH_WARM_MS", "10000")),
  heldStepMs: 20_000,
  heldWindowMs: 1_000,
  rounds: Math.max(1, Number(env("BENCH_ROUNDS", "3"))),
  pacedUpTo: Number(env("BENCH_PACED_UP_TO", String(PACED_UP_TO))),
};
const OUT = env("BENCH_OUT", `${ROOT}bench/latest.json`);

const all = scenarios(settings);
if (Deno.args.includes("--list")) {
  for (const s of all) console.log(`${s.id.padEnd(22)} ${s.title}`);
  Deno.exit(0);
}
const wanted = list("BENCH_SCENARIOS", "");
const chosen = wanted.length ? all.filter((s) => wanted.some((w) => s.id === w || s.id.startsWith(w))) : all;
if (!chosen.length) {
  console.error(`bench: no scenario matches ${wanted.join(",")}; deno task bench --list shows them`);
  Deno.exit(2);
}

let previous: { date: string; ratios: Record<string, number> } | undefined;
try {
  const old = JSON.parse(await Deno.readTextFile(OUT));
  if (old.ratios) previous = { date: old.date, ratios: old.ratios };
} catch { /* no previous run */ }

const results = emptyResults();
const failures: string[] = [];
const peer = await startPeer();
const ctx: Context = { settings, peer, results };
try {
  const runOne = async (s: Scenario, round?: number) => {
    console.error(`bench: ${s.id}${round === undefined ? "" : ` (round ${round + 1})`}: ${s.title}`);
    ctx.round = round;
    try {
      await s.run(ctx);
    } catch (e) {
      // One scenario's failure is reported and the others still run.
      failures.push(`${s.id}: ${e instanceof Error ? e.message : e}`);
      console.error(`bench: ${s.id} failed: ${e instanceof Error ? e.message : e}`);
    }
  };
  // The throughput scenarios in interleaved rounds (C relay, then each proxy, then again), so that each
  // ratio compares runs minutes apart at most; the rest once.
  for (let round = 0; round < settings.rounds; round++) {
    for (const s of chosen.filter((x) => x.repeat)) await runOne(s, round);
  }
  for (const s of chosen.filter((x) => !x.repeat)) await runOne(s);
} finally {
  await peer.stop();
}

const table = render(results, settings, previous);
console.log(table);
for (const f of failures) console.log(`FAILED ${f}`);
await Deno.writeTextFile(
  OUT,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      settings,
      scenarios: chosen.map((s) => s.id),
      results,
      ratios: ratios(results, settings),
      cpuToCRelay: cpuRatios(results, settings),
      failures,
      table,
    },
    null,
    1,
  ) + "\n",
);
console.error(`bench: results written to ${OUT}`);
if (failures.length) Deno.exit(1);
