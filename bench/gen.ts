// The bench's load generator: N clients on the wire. Through xRTC each completes ICE with a signed
// STUN check on the shared port (after signalling an offer through xRTC's Janus API); then all send
// SRTP-sized packets at a set rate, stepping the rate up until loss exceeds the limit. Every packet
// carries its client index, sequence number and send time; the echo comes back to the same socket,
// so loss, reordering, cross-talk and round-trip time are measured here. Runs on the FFI backend.
// Mode "gap" keeps a steady rate for durationMs and reports the longest silence of each client's echoes
// (the bench restarts xRTC meanwhile); it prints "CONNECTED" once every client's ICE is up.
//   deno run -A bench/gen.ts '<json options>'     prints one line "RESULT <json>"
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramSocket } from "../src/io/types.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import { cpuMs } from "./procs.ts";
import { clientStun, connectOnce, nominatingCheck, signalOffer } from "./client.ts";

export interface GenOptions {
  mode: "xrtc" | "raw" | "sessions" | "gap";
  /** UDP port to send to (xRTC's shared port, a relay, or the peer itself). */
  port: number;
  /** xRTC's HTTP base for signalling. */
  http?: string;
  clients: number;
  rates: number[];
  stepMs: number;
  /** The step at this rate lasts `ms` instead. */
  longStep?: { rate: number; ms: number };
  size: number;
  maxLoss: number;
  /** Processes whose CPU time is summed per step. */
  pids?: number[];
  sessions?: number;
  /** Client ufrags are made from this tag and the client's index, so runs against one xRTC differ. */
  tag?: string;
  /** Mode "gap": how long to send at rates[0]. */
  durationMs?: number;
}

const o: GenOptions = JSON.parse(Deno.args[0]);
// The generator is the same tool in every run: plain batched sends, no GSO.
const backend = FfiUdpBackend.open({ gso: false });

const signal = (i: number) => signalOffer(o.http!, `${o.tag ?? "c"}${i}x`);

interface Client {
  index: number;
  socket: DatagramSocket;
  target: PeerAddress;
  lastSeq: number;
}

const MAX_SAMPLES = 4_000_000;
const rtts = new Float64Array(MAX_SAMPLES);
let received = 0, reordered = 0, foreign = 0;
const result: Record<string, unknown> = { mode: o.mode, steps: [] };

async function main() {
  if (o.mode === "sessions") return await sessions();
  const clients: Client[] = [];
  const connected: boolean[] = [];
  const validated: boolean[] = [];
  const gaps = o.mode === "gap" ? o.clients : 0;
  const lastEcho = new Float64Array(gaps), longestGap = new Float64Array(gaps);
  for (let i = 0; i < o.clients; i++) {
    const index = i;
    const socket = backend.bind({ host: "127.0.0.1", port: 0 }, (data, from, sock) => {
      if (data[0] <= 3) {
        const what = clientStun(data, from, sock);
        if (what === "success") connected[index] = true;
        else if (what === "request") validated[index] = true;
        return;
      }
      if (data.length < 16) return;
      if (gaps && data[1] < gaps) {
        const now = performance.now();
        if (lastEcho[data[1]]) longestGap[data[1]] = Math.max(longestGap[data[1]], now - lastEcho[data[1]]);
        lastEcho[data[1]] = now;
      }
      const dv = new DataView(data.buffer, data.byteOffset, 16);
      if (data[1] !== index) {
        foreign++;
        return;
      }
      const seq = dv.getUint32(2);
      const c = clients[index];
      if (seq < c.lastSeq) reordered++;
      else c.lastSeq = seq;
      if (received < MAX_SAMPLES) rtts[received] = performance.now() - dv.getFloat64(8);
      received++;
    });
    clients.push({ index, socket, target: mustPeer("127.0.0.1", o.port), lastSeq: 0 });
  }
  if (o.mode === "xrtc" || o.mode === "gap") {
    for (const c of clients) {
      const s = await signal(c.index);
      c.target = mustPeer("127.0.0.1", s.port);
      for (let attempt = 0; attempt < 50 && !(connected[c.index] && validated[c.index]); attempt++) {
        if (!connected[c.index]) c.socket.send(nominatingCheck(s, c.index), c.target);
        await new Promise((r) => setTimeout(r, 100));
      }
      if (!connected[c.index]) throw new Error(`client ${c.index}: no ICE response from xRTC`);
      if (!validated[c.index]) throw new Error(`client ${c.index}: xRTC never checked the client's address`);
    }
    // The Janus leg (or relay target) needs a moment after the client's check.
    await new Promise((r) => setTimeout(r, 500));
  }
  if (o.mode === "gap") return await gap(clients, lastEcho, longestGap);
  const packet = new Uint8Array(o.size);
  const view = new DataView(packet.buffer);
  packet[0] = 0x80;
  let seq = 0;
  for (const rate of o.rates) {
    received = 0;
    reordered = 0;
    foreign = 0;
    for (const c of clients) c.lastSeq = 0;
    let sent = 0;
    const cpu0 = cpuMs(o.pids ?? []);
    const stepMs = rate === o.longStep?.rate ? o.longStep.ms : o.stepMs;
    const t0 = performance.now();
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - t0;
        const due = Math.min(Math.floor((elapsed * rate) / 1000), Math.floor((stepMs * rate) / 1000));
        while (sent < due) {
          const c = clients[sent % clients.length];
          packet[1] = c.index;
          view.setUint32(2, ++seq);
          view.setFloat64(8, performance.now());
          c.socket.send(packet, c.target);
          sent++;
        }
        if (elapsed >= stepMs) {
          clearInterval(timer);
          done();
        }
      }, 1);
    });
    await new Promise((r) => setTimeout(r, 400)); // drain
    const cpu = cpuMs(o.pids ?? []) - cpu0;
    const n = Math.min(received, MAX_SAMPLES);
    const sorted = rtts.subarray(0, n).slice().sort();
    const pct = (p: number) => n ? sorted[Math.min(n - 1, Math.floor(n * p))] : NaN;
    const loss = sent ? Math.max(0, 1 - received / sent) : 1;
    const step = {
      rate,
      sent,
      received,
      loss,
      reordered,
      foreign,
      cpuMs: cpu,
      rttP50: pct(0.5),
      rttP99: pct(0.99),
      rttP999: pct(0.999),
    };
    (result.steps as unknown[]).push(step);
    if (loss > o.maxLoss) break;
  }
}

/** A steady rate for durationMs while the bench restarts xRTC: per client, the longest silence between two
 * echoes, and what was lost. */
async function gap(clients: Client[], lastEcho: Float64Array, longestGap: Float64Array) {
  console.log("CONNECTED");
  const rate = o.rates[0];
  const packet = new Uint8Array(o.size);
  const view = new DataView(packet.buffer);
  packet[0] = 0x80;
  let sent = 0;
  const t0 = performance.now();
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - t0;
      const due = Math.floor((Math.min(elapsed, o.durationMs!) * rate) / 1000);
      while (sent < due) {
        const c = clients[sent % clients.length];
        packet[1] = c.index;
        view.setUint32(2, sent + 1);
        view.setFloat64(8, performance.now());
        c.socket.send(packet, c.target);
        sent++;
      }
      if (elapsed >= o.durationMs!) {
        clearInterval(timer);
        done();
      }
    }, 1);
  });
  await new Promise((r) => setTimeout(r, 400)); // drain
  const end = performance.now();
  // A client whose echoes never came back after the restart has been silent until the end.
  for (let i = 0; i < clients.length; i++) longestGap[i] = Math.max(longestGap[i], end - 400 - lastEcho[i]);
  const gapsMs = [...longestGap].sort((a, b) => a - b);
  Object.assign(result, {
    rate,
    sent,
    received,
    lost: sent - received,
    longestGapMs: gapsMs.at(-1),
    medianGapMs: gapsMs[Math.floor(gapsMs.length / 2)],
    resumed: clients.filter((c) => end - 400 - lastEcho[c.index] < 1000).length,
    clients: clients.length,
  });
}

/** Creates idle sessions as fast as xRTC takes them: each is signalled (create, attach, offer), then
 * connected by one nominating check from a tuple of its own (so its Janus leg runs), and answers xRTC's
 * check of its address; then it is left silent. The socket is closed once both are done; xRTC keeps the
 * tuple bound until consent expires. */
async function sessions() {
  const n = o.sessions ?? 100;
  const t0 = performance.now();
  let next = 0;
  let connectedCount = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const s = await signal(i);
      if (await connectOnce(backend, s, i)) connectedCount++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  result.sessions = n;
  result.connected = connectedCount;
  result.seconds = (performance.now() - t0) / 1000;
}

try {
  await main();
} catch (e) {
  result.error = String(e);
}
console.log("RESULT " + JSON.stringify(result));
backend.close();
setTimeout(() => Deno.exit(0), 500);
