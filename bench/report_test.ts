// The bench's arithmetic: rounds merged by median, ratios to the C relay within each round, growth of one
// row over another within each round, added latency against the direct path of the same seconds.
import assert from "node:assert/strict";
import {
  cpuGrowth,
  cpuPerThousand,
  cpuRatios,
  emptyResults,
  mergeRounds,
  render,
  type Step,
  warmUpCost,
} from "./report.ts";
import type { Settings } from "./scenarios.ts";

const settings = { latencyRate: 20_000 } as Settings;

/** A step at the latency rate whose CPU per 1,000 forwarded packets is `perThousand`. */
function step(perThousand: number, extra: Partial<Step> = {}): Step {
  const received = 40_000;
  return {
    rate: 20_000,
    sent: received,
    received,
    loss: 0,
    reordered: 0,
    foreign: 0,
    cpuMs: perThousand * received * 2 / 1000,
    rttP50: 0.1,
    rttP99: 0.2,
    rttP999: 0.3,
    oneWayP50: 0.05,
    oneWayP99: 0.1,
    oneWayP999: 0.15,
    ...extra,
  };
}

const row = (id: string, backend: string, round: number | undefined, perThousand: number, extra = {}) => ({
  id,
  label: id,
  backend,
  round,
  steps: [step(perThousand, extra)],
});

const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} is not ${b}`);

Deno.test("rounds merge into one row per id, each field the median", () => {
  const merged = mergeRounds([
    row("half:ffi", "ffi", 0, 4, { rttP99: 0.9 }),
    row("relay-c", "C", 0, 3),
    row("half:ffi", "ffi", 1, 6, { rttP99: 0.1 }),
    row("half:ffi", "ffi", 2, 5, { rttP99: 0.2, foreign: 3 }),
  ]);
  assert.deepEqual(merged.map((r) => [r.id, r.rounds]), [["half:ffi", 3], ["relay-c", 1]]);
  near(cpuPerThousand(merged[0], settings), 5);
  assert.deepEqual(merged[0].steps[0].rttP99, 0.2);
  assert.deepEqual(merged[0].steps[0].foreign, 3, "cross-talk in any round shows");
});

/** Results with one row per round of each id, round r measuring perThousand[r]. */
function inRounds(rows: Record<string, { backend: string; perThousand: number[] }>) {
  const r = emptyResults();
  for (const [id, { backend, perThousand }] of Object.entries(rows)) {
    perThousand.forEach((v, round) => r.throughput.push(row(id, backend, round, v)));
  }
  return r;
}

Deno.test("ratios to the C relay are taken within each round, or beside the C relay of the same seconds; a row run once reads the C median", () => {
  const r = inRounds({
    "relay-c": { backend: "C", perThousand: [2, 4, 3] },
    "half:ffi": { backend: "ffi", perThousand: [2.2, 4.4, 3.6] },
  });
  r.throughput.push(row("held:ffi", "ffi", undefined, 6));
  // A row measured beside a C relay of its own (the held step) is read against that one.
  r.throughput.push(row("idle-held-c:ffi", "C", undefined, 5));
  r.throughput.push(row("idle-held:ffi", "ffi", undefined, 4));
  const x = cpuRatios(r, settings);
  near(x["half:ffi"].median, 1.1);
  near(x["half:ffi"].min, 1.1);
  near(x["half:ffi"].max, 1.2);
  assert.deepEqual(x["half:ffi"].rounds, 3);
  near(x["held:ffi"].median, 2);
  near(x["idle-held:ffi"].median, 0.8);
  assert.deepEqual(
    Object.keys(x).sort(),
    ["half:ffi", "held:ffi", "idle-held:ffi"],
    "C rows are the yardstick, not rows",
  );
});

Deno.test("growth of one row over another pairs rows of the same round", () => {
  const r = inRounds({
    "workers-1:ffi": { backend: "ffi", perThousand: [4, 5] },
    "workers-2:ffi": { backend: "ffi", perThousand: [6, 6] },
  });
  const g = cpuGrowth(r, settings, "workers-2:ffi", "workers-1:ffi")!;
  near(g.min, 1.2);
  near(g.max, 1.5);
  near(g.median, 1.35);
  assert.deepEqual(cpuGrowth(r, settings, "workers-2:ffi", "absent"), undefined);
});

Deno.test("a step measured against the direct path in alternate windows reads its added latency against it", () => {
  const r = emptyResults();
  r.throughput.push(
    row("direct", "-", undefined, NaN, { oneWayP50: 0.05, oneWayP99: 0.25, oneWayP999: 0.45 }),
  );
  r.throughput.push(
    row("half:ffi", "ffi", undefined, 4, { oneWayP50: 0.05, oneWayP99: 0.45, oneWayP999: 0.65 }),
  );
  const baseline = {
    sent: 1,
    received: 1,
    rttP50: 0.2,
    rttP99: 0.8,
    rttP999: 1.6,
    oneWayP50: 0.1,
    oneWayP99: 0.4,
    oneWayP999: 0.8,
  };
  r.throughput.push(
    row("idle-held:ffi", "ffi", undefined, 4, { oneWayP50: 0.15, oneWayP99: 0.5, oneWayP999: 1.0, baseline }),
  );
  const text = render(
    r,
    { ...settings, rates: [20_000], maxLoss: 0.001, rounds: 1, backends: ["ffi"] } as Settings,
  );
  const line = (id: string) => text.split("\n").find((l) => l.startsWith(`| ${id} |`)) ?? "";
  assert.ok(line("direct").includes("| 0 (one-way 0.05/0.25/0.45; RTT 0.10/0.20/0.30) |"), line("direct"));
  assert.ok(line("half:ffi").includes("| 0.00/0.20/0.20 |"), line("half:ffi"));
  assert.ok(
    line("idle-held:ffi").includes("| 0.05/0.10/0.20 (direct one-way 0.10/0.40/0.80) |"),
    line("idle-held:ffi"),
  );
});

Deno.test("the warm-up's CPU per packet is read against the steady step of its own run, and printed apart", () => {
  const r = emptyResults();
  for (const [round, warm, steady] of [[0, 6, 4], [1, 5, 5], [2, 9, 6]]) {
    r.throughput.push({ ...row("half:ffi", "ffi", round, steady), warm: step(warm) });
  }
  r.throughput.push({ ...row("relay-c", "C", 0, 3), warm: step(3) });
  r.throughput.push(row("full:ffi", "ffi", 0, 4)); // no warm-up: no figure
  const w = warmUpCost(r, settings);
  near(w["half:ffi"].median, 1.5);
  near(w["half:ffi"].min, 1);
  near(w["half:ffi"].max, 1.5);
  near(w["relay-c"].median, 1);
  assert.equal(w["full:ffi"], undefined);
  const text = render(
    r,
    {
      ...settings,
      rates: [20_000],
      maxLoss: 0.001,
      rounds: 3,
      backends: ["ffi"],
      warmMs: 10_000,
    } as Settings,
  );
  assert.match(text, /first 10 s of traffic at 20000 pps/);
  assert.ok(text.includes("\n  half:ffi, ffi: 1.50 (rounds: 1.00 to 1.50)"), text);
  // The steady figure in the table is the step's, not the warm-up's.
  assert.match(text, /\| half:ffi \| ffi \| [^|]+ \| 5\.000 \|/);
});
