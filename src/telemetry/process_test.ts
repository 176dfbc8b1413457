import assert from "node:assert/strict";
import { installProcessCollectors, installThreadCollectors } from "./process.ts";
import { registry } from "./catalog.ts";
import { seriesTotal } from "./exposition.ts";

const total = (name: string) => seriesTotal(registry.snapshot(), name);

Deno.test("a shard's CPU time is its own thread's: another thread's work leaves it, and shows in the process's", async () => {
  installProcessCollectors();
  installThreadCollectors();
  const thread0 = total("xrtc_shard_cpu_seconds_total"), process0 = total("xrtc_process_cpu_seconds_total");
  // Another thread spins for 400 ms while this one waits.
  const spin = `const end = performance.now() + 400; while (performance.now() < end); postMessage("done");`;
  const url = URL.createObjectURL(new Blob([spin], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  await new Promise((resolve) => worker.onmessage = resolve);
  worker.terminate();
  URL.revokeObjectURL(url);
  const thread = total("xrtc_shard_cpu_seconds_total") - thread0;
  const process = total("xrtc_process_cpu_seconds_total") - process0;
  assert.ok(process >= 0.3, `the process counted the other thread's spin: ${process} s`);
  assert.ok(thread < 0.1, `this thread mostly waited: ${thread} s`);
  assert.ok(total("xrtc_shard_cpu_seconds_total") > 0, "this thread's own time is counted");
});
