// Live memory per idle session: xRTC in this process (ffi backend) against the running bench peer;
// N sessions signalled through its HTTP API and connected by one nominating check each (so each is
// live, with its Janus leg); JS heap and RSS compared after forced GCs.
// RSS also holds V8's high-water mark from the set-up churn, which the heap figure does not.
//   deno run -A --v8-flags=--expose-gc bench/session_heap.ts <peer http port> <sessions>   prints "HEAP <json>"
import { loadConfigText } from "../src/config/load.ts";
import { start } from "../src/app.ts";
import { connectOnce, signalOffer } from "./client.ts";
import { benchConfigYaml } from "./xrtc.ts";
import { freePort } from "./procs.ts";

const [peerHttp, n] = Deno.args.map(Number);
const ports = { udpPort: freePort(), httpPort: freePort() };
const { config } = loadConfigText(
  // The sessions in this isolate, where the heap is measured: media on the main thread.
  benchConfigYaml({ backend: "ffi", mediaThread: "main", peerHttp, maxSessions: n + 10, ...ports }),
  "session_heap.yml",
);
const x = await start(config);
const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const measure = () => {
  gc();
  gc();
  const m = Deno.memoryUsage();
  return {
    heap: m.heapUsed / 1024,
    heapTotal: m.heapTotal / 1024,
    external: m.external / 1024,
    rss: m.rss / 1024,
  };
};
await new Promise((r) => setTimeout(r, 500));
const before = measure();
let next = 0;
let connected = 0;
await Promise.all(Array.from({ length: 32 }, async () => {
  while (next < n) {
    const i = next++;
    const s = await signalOffer(`http://127.0.0.1:${ports.httpPort}`, `h${i}x`);
    if (await connectOnce(x.backend, s, i)) connected++;
  }
}));
await new Promise((r) => setTimeout(r, 3000)); // Janus legs connect
const after = measure();
// What xRTC's periodic release (every 10 s on the FFI backend, off the event loop) gives back, and how long
// one call runs.
const t0 = performance.now();
await x.backend.releaseFreeMemory?.();
const releaseMs = performance.now() - t0;
const released = Deno.memoryUsage().rss / 1024;
console.log(
  "HEAP " +
    JSON.stringify({
      sessions: x.plane!.table.size,
      connected,
      heapKbPerSession: (after.heap - before.heap) / n,
      rssKbPerSession: (after.rss - before.rss) / n,
      rssKbPerSessionAfterRelease: (released - before.rss) / n,
      releaseMs,
      // Heap the V8 keeps but does not use, and memory outside the JS heap (array buffers), per session.
      heapReservedKbPerSession: (after.heapTotal - before.heapTotal) / n,
      externalKbPerSession: (after.external - before.external) / n,
    }),
);
await x.stop();
Deno.exit(0);
