// The bench's arithmetic: rounds merged by median, ratios to the C relay within each round, growth of one
// row over another within each round.
import assert from "node:assert/strict";
import { cpuGrowth, cpuPerThousand, cpuRatios, emptyResults, mergeRounds, type Step } from "./report.ts";
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

Deno.test("rounds merge into one row per id, each field the median", () => {
  const merged = mergeRounds([
    row("half:ffi", "ffi", 0, 4, { rttP99: 0.9 }),
    row("relay-c", "C", 0, 3),
    row("half:ffi", "ffi", 1, 6, { rttP99: 0.1 }),
    row("half:ffi", "ffi", 2, 5, { rttP99: 0.2, foreign: 3 }),
  ]);
  assert.deepEqual(merged.map((r) => [r.id, r.rounds]), [["half:ffi", 3], ["relay-c", 1]]);
  assert.ok(Math.abs(cpuPerThousand(merged[0], settings) - 5) < 1e-9);
  assert.deepEqual(merged[0].steps[0].rttP99, 0.2);
  assert.deepEqual(merged[0].steps[0].foreign, 3, "cross-talk in any round shows");
});

Deno.test("ratios to the C relay are taken within each round; a row run once reads the C median", () => {
  const r = emptyResults();
  r.throughput.push(
    row("relay-c", "C", 0, 2),
    row("half:ffi", "ffi", 0, 2.2),
    row("relay-c", "C", 1, 4),
    row("half:ffi", "ffi", 1, 4.4),
    row("relay-c", "C", 2, 3),
    row("half:ffi", "ffi", 2, 3.6),
    row("held:ffi", "ffi", undefined, 6),
  );
  const x = cpuRatios(r, settings);
  assert.ok(Math.abs(x["half:ffi"].median - 1.1) < 1e-9, `${x["half:ffi"].median}`);
  assert.ok(Math.abs(x["half:ffi"].min - 1.1) < 1e-9, `${x["half:ffi"].min}`);
  assert.ok(Math.abs(x["half:ffi"].max - 1.2) < 1e-9, `${x["half:ffi"].max}`);
  assert.deepEqual(x["half:ffi"].rounds, 3);
  assert.ok(Math.abs(x["held:ffi"].median - 2) < 1e-9, `${x["held:ffi"].median}`);
  assert.deepEqual(Object.keys(x).sort(), ["half:ffi", "held:ffi"], "C rows are the yardstick, not rows");
});

Deno.test("growth of one row over another pairs rows of the same round", () => {
  const r = emptyResults();
  r.throughput.push(
    row("workers-1:ffi", "ffi", 0, 4),
    row("workers-2:ffi", "ffi", 0, 6),
    row("workers-1:ffi", "ffi", 1, 5),
    row("workers-2:ffi", "ffi", 1, 6),
  );
  const g = cpuGrowth(r, settings, "workers-2:ffi", "workers-1:ffi")!;
  assert.ok(Math.abs(g.min - 1.2) < 1e-9, `${g.min}`);
  assert.ok(Math.abs(g.max - 1.5) < 1e-9, `${g.max}`);
  assert.ok(Math.abs(g.median - 1.35) < 1e-9, `${g.median}`);
  assert.deepEqual(cpuGrowth(r, settings, "workers-2:ffi", "absent"), undefined);
});
