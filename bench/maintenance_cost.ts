// What keeping N idle half-proxy sessions alive costs the thread that forwards their media: one media
// plane in this process on the socket-free network of the unit tests (src/ice/test_support.ts), N
// sessions claimed by a client's nominating check and connected to a Janus stand-in each, then the plane's
// maintenance driven every tick (TIMING.maintenanceTickMs) of a simulated clock. Simulated time makes the
// figure the same on a busy machine: CPU per simulated second, not latency.
//   deno run -A bench/maintenance_cost.ts <sessions> <simulated seconds>   prints "MAINT <json>"
import { mustPeer } from "../src/io/address.ts";
import { MemoryNetwork } from "../src/io/memory_udp.ts";
import { randomCredentials } from "../src/ice/credentials.ts";
import { ClaimBoard } from "../src/ice/shards/claims.ts";
import { TIMING } from "../src/ice/timing.ts";
import { facing, halfSpec, planeHarness, TestClient, TestJanus } from "../src/ice/test_support.ts";

const [sessions, seconds] = Deno.args.map(Number);
const net = new MemoryNetwork();
const claims = ClaimBoard.create(sessions + 16);
// The clients send no consent checks here: their consent outlasts the run, as in the held-sessions bench.
const h = planeHarness({ net, claims, consentTimeoutMs: 3_600_000 });
const backend = net.backend();
const janusLegs: TestJanus[] = [];
for (let i = 0; i < sessions; i++) {
  // Janus gives each handle a port of its own.
  const janus = new TestJanus(net, backend, mustPeer("198.18.0.2", 10_000 + i % 50_000), randomCredentials());
  janusLegs.push(janus);
  const client = randomCredentials();
  const spec = halfSpec(claims, janus, client, `${i}/1`);
  h.plane.open(spec);
  const address = mustPeer(`198.19.${1 + (i >> 8) % 250}.${i & 255}`, 50_000 + (i >> 16));
  new TestClient(net, backend, address, client, facing(spec)).sendCheck({ nominate: true });
  if (i % 100 === 99) h.settle();
}
h.advance(1_000); // Janus legs connect
const stunToJanus = () => janusLegs.reduce((n, j) => n + j.requests.length + j.responses.length, 0);
const quota = Math.ceil(sessions * TIMING.maintenanceTickMs / TIMING.maintenanceSpreadMs);
const warmTicks = 20_000 / TIMING.maintenanceTickMs; // past every leg's first keepalive
const ticks: number[] = [];
let maintainMs = 0, deliverMs = 0, sentBefore = 0, nextCheckPacing = 0;
for (let step = 0; step < warmTicks + seconds * 1000 / TIMING.maintenanceTickMs; step++) {
  const now = h.clock.advance(TIMING.maintenanceTickMs);
  // Check pacing on its own interval, which need not be a multiple of the tick.
  if (now >= nextCheckPacing) {
    h.plane.tick(now);
    nextCheckPacing = now + TIMING.checkIntervalMs;
  }
  if (step === warmTicks) sentBefore = stunToJanus();
  const t0 = performance.now();
  h.plane.maintain(now, quota);
  const t1 = performance.now();
  net.deliver();
  if (step >= warmTicks) {
    ticks.push(t1 - t0);
    maintainMs += t1 - t0;
    deliverMs += performance.now() - t1;
  }
}
ticks.sort((a, b) => a - b);
const us = (q: number) => ticks[Math.floor(q * (ticks.length - 1))] * 1000;
console.log(
  "MAINT " +
    JSON.stringify({
      sessions,
      live: h.plane.table.liveCount,
      seconds,
      tickMs: TIMING.maintenanceTickMs,
      maintainMsPerSecond: maintainMs / seconds,
      tickUsP50: us(0.5),
      tickUsP99: us(0.99),
      tickUsMax: us(1),
      stunToJanusPerSecond: (stunToJanus() - sentBefore) / seconds,
      // Delivering what the ticks sent, the test Janus's answers (if any) and xRTC's handling of them.
      deliverMsPerSecond: deliverMs / seconds,
    }),
);
