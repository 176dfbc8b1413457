// Live memory per idle session: xRTC in this process (ffi backend) against the running bench peer;
// N sessions signalled through its HTTP API and connected by one nominating check each (so each is
// live, with its Janus leg); JS heap and RSS compared after forced GCs.
// RSS also holds V8's high-water mark from the set-up churn, which the heap figure does not.
//   deno run -A --v8-flags=--expose-gc bench/session_heap.ts <peer http port> <sessions>   prints "HEAP <json>"
import { loadConfigText } from "../src/config/load.ts";
import { start } from "../src/app.ts";
import { mustPeer } from "../src/io/address.ts";
import { nominatingCheck, signalOffer } from "./client.ts";

const [peerHttp, n] = Deno.args.map(Number);
const { config } = loadConfigText(
  `
options: { io_backend: ffi, max_sessions: ${n + 10}, consent_timeout: 10m }
services:
  peer: { proto: upstream, servers: [http://127.0.0.1:${peerHttp}] }
  ice: { proto: udp, net: { addr: 127.0.0.1:17201, candidate_ips: [127.0.0.1] } }
  web: { proto: http, net: { addr: 127.0.0.1:17280 }, http: { routes: { janus: { upstream: http://peer, paths: [/janus] } } } }
`,
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
    const s = await signalOffer("http://127.0.0.1:17280", 5_000_000 + 2 * i, `h${i}x`);
    let answered = false;
    const socket = x.backend.bind({ host: "127.0.0.1", port: 0 }, () => answered = true);
    const target = mustPeer("127.0.0.1", s.port);
    for (let attempt = 0; attempt < 20 && !answered; attempt++) {
      socket.send(nominatingCheck(s, i), target);
      for (let w = 0; w < 10 && !answered; w++) await new Promise((r) => setTimeout(r, 5));
    }
    socket.close();
    if (answered) connected++;
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
