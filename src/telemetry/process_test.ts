import assert from "node:assert/strict";
import { installThreadCollectors } from "./process.ts";
import { registry } from "./catalog.ts";
import { seriesTotal } from "./exposition.ts";

Deno.test("a shard's thread CPU time: this thread's, within the process's", () => {
  installThreadCollectors();
  const end = performance.now() + 200;
  while (performance.now() < end) { /* spin: CPU time on this thread */ }
  const thread = seriesTotal(registry.snapshot(), "xrtc_shard_cpu_seconds_total");
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const processSeconds = (Number(f[11]) + Number(f[12])) / 100;
  assert.ok(thread >= 0.15, `the spin counted: ${thread} s`);
  // Ticks of 10 ms: the process's count can trail the thread's nanoseconds by a tick per thread.
  assert.ok(thread <= processSeconds + 0.05, `${thread} s within the process's ${processSeconds} s`);
});
