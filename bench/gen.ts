// The bench's load generator: N clients on the wire. Through xRTC each completes ICE with a signed
// STUN check on the shared port (after signalling an offer through xRTC's Janus API); then all send
// SRTP-sized packets at a set rate, stepping the rate up until loss exceeds the limit. Every packet
// carries its client index, sequence number and send time; the echo comes back to the same socket,
// so loss, reordering, cross-talk and round-trip time are measured here. Runs on the FFI backend.
//   deno run -A bench/gen.ts '<json options>'     prints one line "RESULT <json>"
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramSocket } from "../src/io/types.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import { BINDING_SUCCESS, parseStun } from "../src/stun/message.ts";
import { nominatingCheck, signalOffer } from "./client.ts";

export interface GenOptions {
  mode: "xrtc" | "raw" | "sessions";
  /** UDP port to send to (xRTC's shared port, a relay, or the peer itself). */
  port: number;
  /** xRTC's HTTP base for signalling. */
  http?: string;
  clients: number;
  rates: number[];
  stepMs: number;
  size: number;
  maxLoss: number;
  /** Processes whose CPU time is summed per step (/proc/<pid>/stat). */
  pids?: number[];
  sessions?: number;
  /** Session ids start here, so runs against one xRTC do not collide. */
  idBase?: number;
}

const o: GenOptions = JSON.parse(Deno.args[0]);
const backend = FfiUdpBackend.open();
const CLK_TCK = 100;

const signal = (i: number) => signalOffer(o.http!, (o.idBase ?? 1_000_000) + i, `c${i}x`);

function cpuTicks(pids: number[] = []): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    ticks += Number(f[11]) + Number(f[12]); // utime + stime
  }
  return ticks;
}

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
  for (let i = 0; i < o.clients; i++) {
    const index = i;
    const socket = backend.bind({ host: "127.0.0.1", port: 0 }, (data) => {
      if (data[0] <= 3) {
        try {
          if (parseStun(data).type === BINDING_SUCCESS) connected[index] = true;
        } catch { /* ignore */ }
        return;
      }
      if (data.length < 16) return;
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
  if (o.mode === "xrtc") {
    for (const c of clients) {
      const s = await signal(c.index);
      c.target = mustPeer("127.0.0.1", s.port);
      for (let attempt = 0; attempt < 50 && !connected[c.index]; attempt++) {
        c.socket.send(nominatingCheck(s, c.index), c.target);
        await new Promise((r) => setTimeout(r, 100));
      }
      if (!connected[c.index]) throw new Error(`client ${c.index}: no ICE response from xRTC`);
    }
    // The Janus leg (or relay target) needs a moment after the client's check.
    await new Promise((r) => setTimeout(r, 500));
  }
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
    const cpu0 = cpuTicks(o.pids);
    const t0 = performance.now();
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - t0;
        const due = Math.min(Math.floor((elapsed * rate) / 1000), Math.floor((o.stepMs * rate) / 1000));
        while (sent < due) {
          const c = clients[sent % clients.length];
          packet[1] = c.index;
          view.setUint32(2, ++seq);
          view.setFloat64(8, performance.now());
          c.socket.send(packet, c.target);
          sent++;
        }
        if (elapsed >= o.stepMs) {
          clearInterval(timer);
          done();
        }
      }, 1);
    });
    await new Promise((r) => setTimeout(r, 400)); // drain
    const cpuMs = ((cpuTicks(o.pids) - cpu0) / CLK_TCK) * 1000;
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
      cpuMs,
      rttP50: pct(0.5),
      rttP99: pct(0.99),
      rttP999: pct(0.999),
    };
    (result.steps as unknown[]).push(step);
    if (loss > o.maxLoss) break;
  }
}

/** Creates idle sessions as fast as xRTC takes them: each is signalled, then connected by one
 * nominating check from a tuple of its own (so its Janus leg runs), then left silent. The socket is
 * closed once answered; xRTC keeps the tuple bound until consent expires. */
async function sessions() {
  const n = o.sessions ?? 100;
  const t0 = performance.now();
  let next = 0;
  let connectedCount = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const s = await signal(i);
      let answered = false;
      const socket = backend.bind({ host: "127.0.0.1", port: 0 }, (data) => {
        if (data[0] <= 3) answered = true;
      });
      const target = mustPeer("127.0.0.1", s.port);
      for (let attempt = 0; attempt < 20 && !answered; attempt++) {
        socket.send(nominatingCheck(s, i), target);
        for (let w = 0; w < 10 && !answered; w++) await new Promise((r) => setTimeout(r, 5));
      }
      socket.close();
      if (answered) connectedCount++;
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
