// Live memory per idle session: xRTC in this process (ffi backend) against the running bench peer;
// N sessions signalled through its HTTP API; JS heap and RSS compared after forced GCs.
// RSS also holds V8's high-water mark from the set-up churn, which the heap figure does not.
//   deno run -A --v8-flags=--expose-gc bench/session_heap.ts <peer http port> <sessions>   prints "HEAP <json>"
import { loadConfigText } from "../src/config/load.ts";
import { start } from "../src/app.ts";
import { benchSdp } from "./sdp.ts";

const [peerHttp, n] = Deno.args.map(Number);
const { config } = loadConfigText(
  `
options: { io_backend: ffi, max_sessions: ${n + 10} }
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
  return { heap: m.heapUsed / 1024, rss: m.rss / 1024 };
};
const offer = benchSdp({ ufrag: "abcd", pwd: "clientpasswordclientpassword", setup: "actpass" });
await new Promise((r) => setTimeout(r, 500));
const before = measure();
let next = 0;
await Promise.all(Array.from({ length: 32 }, async () => {
  while (next < n) {
    const i = next++;
    const r = await fetch(`http://127.0.0.1:17280/janus/${5_000_000 + i}/${6_000_000 + i}`, {
      method: "POST",
      body: JSON.stringify({
        janus: "message",
        transaction: "t",
        body: {},
        jsep: { type: "offer", sdp: offer },
      }),
    });
    await r.body?.cancel();
  }
}));
await new Promise((r) => setTimeout(r, 3000)); // Janus legs connect
const after = measure();
console.log(
  "HEAP " +
    JSON.stringify({
      sessions: x.plane!.table.size,
      heapKbPerSession: (after.heap - before.heap) / n,
      rssKbPerSession: (after.rss - before.rss) / n,
    }),
);
await x.stop();
Deno.exit(0);
