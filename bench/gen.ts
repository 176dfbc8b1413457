// The bench's load generator: N clients on the wire. Through xRTC each completes ICE with a signed
// STUN check on the shared port (after signalling an offer through xRTC's Janus API); then all send
// SRTP-sized packets at a set rate, stepping the rate up until loss exceeds the limit. Every packet
// carries its client index, sequence number and send time, and the echo peer adds when its socket received
// it and when it sent it back (stamps.ts); the echo comes back to the same socket, so loss, reordering,
// cross-talk, round-trip time and each leg's one-way time (to the kernel's receive time at the other end)
// are measured here. Runs on the FFI backend; once ICE is done, the UDP clients' packets are bench/c_load.c's
// (`cLoad`), so that what is read of a proxy is not the generator's own scheduling.
// Mode "gap" keeps a steady rate for durationMs and reports the longest silence of each client's echoes
// (the bench restarts xRTC meanwhile); it prints "CONNECTED" once every client's ICE is up.
//   deno run -A bench/gen.ts '<json options>'     prints one line "RESULT <json>"
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramHandler, DatagramSocket } from "../src/io/types.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import { cpuMs, LineChannel, threadSamples, threadUse } from "./procs.ts";
import { clientStun, connectOnce, nominatingCheck, signalOffer } from "./client.ts";
import { TcpDatagrams } from "./tcp_client.ts";
import { sleepMs, Stamp, STAMPED_BYTES, wallMs } from "./stamps.ts";
import { type Baseline, BASELINE_FIELDS, type Echoes } from "./report.ts";

export interface GenOptions {
  mode: "xrtc" | "raw" | "sessions" | "gap";
  /** Modes "xrtc" and "raw": bench/c_load.c's binary, which sends and receives for the UDP clients once
   * their ICE is done (without it, or for ICE-TCP clients, this process does). */
  cLoad?: string;
  /** UDP port to send to (xRTC's shared port, a relay, or the peer itself). */
  port: number;
  /** xRTC's HTTP base for signalling. */
  http?: string;
  /** Mode "xrtc": the clients through xRTC use ICE-TCP to this port (RFC 4571 frames, one connection
   * each) instead of UDP; the direct and relay clients stay on UDP. */
  tcp?: number;
  clients: number;
  rates: number[];
  stepMs: number;
  /** The step at this rate lasts `ms` instead. */
  longStep?: { rate: number; ms: number };
  /** Modes "xrtc" and "raw": before the steps, the clients send at `rate` for `ms`, measured apart (the
   * result's `warm`): a fresh xRTC's JIT compiles its media path in its first seconds of traffic. */
  warm?: { rate: number; ms: number };
  size: number;
  maxLoss: number;
  /** Processes whose CPU time is summed per step. */
  pids?: number[];
  /** Each step also reports the CPU and context switches of each of the processes' threads (by name). */
  threads?: boolean;
  /** Each step is recorded by `perf record -g` on `pids`, into this file (a run with one rate: one step). */
  record?: string;
  sessions?: number;
  /** Client ufrags are made from this tag and the client's index, so runs against one xRTC differ. */
  tag?: string;
  /** Mode "gap": how long to send at rates[0]. */
  durationMs?: number;
  /** Consecutive packets to one client before the next (1 by default: round robin), as a video frame's
   * packets leave a sender back to back. */
  burst?: number;
  /** Each client's burst leaves as one UDP GSO send (a sender on the host that uses GSO). */
  gso?: boolean;
  /** At rates up to this, UDP clients send each packet (or burst) at its own time, 1/rate apart, in a
   * send of its own, as independent clients do; at higher rates (a sleep between packets would cost more
   * than the gap), and ICE-TCP clients always, every millisecond's packets leave together in one batched
   * send (a burst of rate/1000 each millisecond). */
  pacedUpTo?: number;
  /** Modes "xrtc" and "raw": as many clients again send straight to this port (the echo peer), in windows of
   * `pairedWindowMs` alternating with the clients through xRTC, so that each step's added latency is read
   * against a direct path measured in the same seconds rather than minutes before. */
  pairedDirectPort?: number;
  pairedWindowMs?: number;
  /** Mode "xrtc" with `pairedDirectPort`: as many clients again send through this relay (the C relay, to
   * the same echo peer) in a third window of each rotation, so xRTC and the ceiling are measured in the same
   * seconds; the relay's CPU is that of `pids`, in its own windows. Reported as the step's `relay`. */
  pairedRelay?: { port: number; pids: number[] };
}

const o: GenOptions = JSON.parse(Deno.args[0]);
// The generator is the same tool in every run: plain batched sends, no GSO (unless a scenario asks for
// it), and no GRO, as a browser has none.
const backend = FfiUdpBackend.open({ gso: o.gso ?? false, gro: false, receiveTimes: true });
const burst = Math.max(1, o.burst ?? 1);

const signal = (i: number) => signalOffer(o.http!, `${o.tag ?? "c"}${i}x`);

interface Client {
  index: number;
  socket: DatagramSocket;
  onPacket: DatagramHandler;
  target: PeerAddress;
  lastSeq: number;
  samples: Samples;
}

/** One set of clients (through xRTC, through a relay, or straight to the peer) as a step drives it. */
interface ClientSet {
  /** Sends at `rate` packets a second for `ms`; the count sent. */
  send(rate: number, ms: number): Promise<number>;
  /** A new step: what came back so far is forgotten. */
  reset(): Promise<void>;
  /** What came back since the last reset. */
  echoes(): Promise<Echoes>;
}

/** Echoes received by one set of clients in a step: round trips and one-way legs (the first MAX of each),
 * reordering and cross-talk. */
class Samples {
  static readonly MAX = 4_000_000;
  readonly rtts = new Float64Array(Samples.MAX);
  readonly oneWays = new Float64Array(Samples.MAX);
  received = 0;
  legs = 0;
  reordered = 0;
  foreign = 0;

  reset(): void {
    this.received = this.legs = 0;
    this.reordered = this.foreign = 0;
  }

  add(rtt: number): void {
    if (this.received < Samples.MAX) this.rtts[this.received] = rtt;
    this.received++;
  }

  /** A one-way trip, either way: from one end's send to the kernel's receive at the other. */
  addLeg(ms: number): void {
    if (Number.isNaN(ms)) return;
    if (this.legs < Samples.MAX) this.oneWays[this.legs] = ms;
    this.legs++;
  }

  echoes(): Echoes {
    const rtt = percentiles(this.rtts, this.received), oneWay = percentiles(this.oneWays, this.legs);
    return {
      received: this.received,
      reordered: this.reordered,
      foreign: this.foreign,
      rttP50: rtt(0.5),
      rttP99: rtt(0.99),
      rttP999: rtt(0.999),
      oneWayP50: oneWay(0.5),
      oneWayP99: oneWay(0.99),
      oneWayP999: oneWay(0.999),
    };
  }
}

function percentiles(values: Float64Array, count: number): (p: number) => number {
  const n = Math.min(count, values.length);
  const sorted = values.subarray(0, n).slice().sort();
  return (p) => n ? sorted[Math.min(n - 1, Math.floor(n * p))] : NaN;
}

/** Clients this process sends for and reads (sendAt, each client's onPacket). */
class OwnClients implements ClientSet {
  constructor(readonly clients: Client[], readonly samples: Samples) {}
  send(rate: number, ms: number): Promise<number> {
    return sendAt(this.clients, rate, ms);
  }
  reset(): Promise<void> {
    this.samples.reset();
    for (const c of this.clients) c.lastSeq = 0;
    return Promise.resolve();
  }
  echoes(): Promise<Echoes> {
    return Promise.resolve(this.samples.echoes());
  }
}

/** Clients handed to bench/c_load.c, set `set` of its. */
class CLoadClients implements ClientSet {
  constructor(readonly load: LineChannel, readonly set: number) {}
  async send(rate: number, ms: number): Promise<number> {
    return Number((await this.load.request(`send ${this.set} ${rate} ${ms}`)).split(" ")[1]);
  }
  reset(): Promise<void> {
    return this.load.send(`reset ${this.set}`);
  }
  async echoes(): Promise<Echoes> {
    const line = await this.load.request(`stats ${this.set}`);
    if (!line.startsWith("STATS ")) throw new Error(`c_load: ${line}`);
    // A percentile of no samples is null there, NaN here.
    return JSON.parse(line.slice(6), (_, v) => v ?? NaN) as Echoes;
  }
}

/** Hands the UDP client sets (ICE done) to bench/c_load.c, which inherits their sockets; their ClientSets. */
async function handToC(binary: string, sets: Client[][]): Promise<{ load: LineChannel; sets: ClientSet[] }> {
  const specs = sets.flatMap((set, i) =>
    set.map((c) => `${backend.handOver(c.socket)}:${i}:${c.index}:${c.target.port}`)
  );
  const load = LineChannel.start(binary, [
    "gen",
    String(o.size),
    String(burst),
    o.gso ? "1" : "0",
    String(o.pacedUpTo ?? 0),
    ...specs,
  ]);
  const ready = await load.next();
  if (ready !== `GEN ${specs.length}`) throw new Error(`c_load: ${ready}`);
  return { load, sets: sets.map((_, i) => new CLoadClients(load, i)) };
}

const result: Record<string, unknown> = { mode: o.mode, steps: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let seq = 0;
const packet = new Uint8Array(o.size);
const packetView = new DataView(packet.buffer);
packet[0] = 0x80;

/** Sends to `set` at `rate` for `ms` (bursts of `burst` packets per client, round robin): paced
 * (`o.pacedUpTo`), or each millisecond's packets together; the count sent. */
function sendAt(set: Client[], rate: number, ms: number): Promise<number> {
  let sent = 0;
  const t0 = performance.now();
  const total = Math.floor((ms * rate) / 1000);
  // An ICE-TCP client's frames queued in one task leave in one write (tcp_client.ts): never paced.
  const paced = rate <= (o.pacedUpTo ?? 0) && !(set[0]?.socket instanceof TcpDatagrams);
  return new Promise((done) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - t0;
      // Paced: this tick sends the packets due until the next one, each waiting for its time (the
      // thread sleeps meanwhile; the echoes' receive times are the kernel's, so none is read late).
      const due = Math.min(total, Math.floor(((elapsed + (paced ? 1 : 0)) * rate) / 1000));
      while (sent < due) {
        if (paced) {
          const wait = t0 + ((sent - (sent % burst)) * 1000) / rate - performance.now();
          if (wait > 0) sleepMs(wait);
        }
        const c = set[Math.floor(sent / burst) % set.length];
        packet[1] = c.index;
        packetView.setUint32(2, ++seq);
        packetView.setFloat64(Stamp.clientSent, wallMs());
        c.socket.send(packet, c.target);
        sent++;
        if (paced && sent % burst === 0) backend.flush();
      }
      if (elapsed >= ms) {
        clearInterval(timer);
        done(sent);
      }
    }, 1);
  });
}

async function main() {
  if (o.mode === "sessions") return await sessions();
  const clients: Client[] = [];
  const connected: boolean[] = [];
  const validated: boolean[] = [];
  const gaps = o.mode === "gap" ? o.clients : 0;
  const lastEcho = new Float64Array(gaps), longestGap = new Float64Array(gaps);
  const through = new Samples();
  const client = (index: number, samples: Samples, port: number): Client => {
    const c: Client = {
      index,
      socket: undefined!,
      onPacket: undefined!,
      target: mustPeer("127.0.0.1", port),
      lastSeq: 0,
      samples,
    };
    c.onPacket = (data, from, sock) => {
      if (data[0] <= 3) {
        const what = clientStun(data, from, sock);
        if (what === "success") connected[index] = true;
        else if (what === "request") validated[index] = true;
        return;
      }
      if (data.length < STAMPED_BYTES) return;
      if (gaps && data[1] < gaps) {
        const now = performance.now();
        if (lastEcho[data[1]]) longestGap[data[1]] = Math.max(longestGap[data[1]], now - lastEcho[data[1]]);
        lastEcho[data[1]] = now;
      }
      // The kernel's receive time here (an ICE-TCP client has none: its leg back is not counted).
      const received = sock instanceof TcpDatagrams ? NaN : backend.receivedAt;
      const dv = new DataView(data.buffer, data.byteOffset, STAMPED_BYTES);
      if (data[1] !== index) {
        samples.foreign++;
        return;
      }
      const echoed = dv.getUint32(2);
      if (echoed < c.lastSeq) samples.reordered++;
      else c.lastSeq = echoed;
      const sent = dv.getFloat64(Stamp.clientSent);
      samples.add(wallMs() - sent);
      samples.addLeg(dv.getFloat64(Stamp.peerReceived) - sent);
      samples.addLeg(received - dv.getFloat64(Stamp.peerSent));
    };
    c.socket = backend.bind({ host: "127.0.0.1", port: 0 }, c.onPacket);
    return c;
  };
  for (let i = 0; i < o.clients; i++) clients.push(client(i, through, o.port));
  const direct = new Samples();
  const directClients = (o.mode === "xrtc" || o.mode === "raw") && o.pairedDirectPort !== undefined
    ? Array.from({ length: o.clients }, (_, i) => client(i, direct, o.pairedDirectPort!))
    : [];
  const relayed = new Samples();
  const relayClients = directClients.length && o.pairedRelay
    ? Array.from({ length: o.clients }, (_, i) => client(i, relayed, o.pairedRelay!.port))
    : [];
  if (o.mode === "xrtc" || o.mode === "gap") {
    for (const c of clients) {
      const s = await signal(c.index);
      c.target = mustPeer("127.0.0.1", o.tcp ?? s.port);
      if (o.tcp) {
        c.socket.close();
        c.socket = await TcpDatagrams.connect(o.tcp, c.onPacket);
      }
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
  if (o.mode === "gap") return await gap(clients, through, lastEcho, longestGap);
  const pids = o.pids ?? [];
  // ICE is done: the UDP sets' packets are c_load's from here on (ICE-TCP clients stay here).
  const sets: Array<[Client[], Samples]> = [
    [clients, through],
    [directClients, direct],
    [relayClients, relayed],
  ];
  const udpSets = sets.map(([set]) => set).filter((set) => set.length && !(set === clients && o.tcp));
  const c = o.cLoad ? await handToC(o.cLoad, udpSets) : undefined;
  // A set with no clients is no set (a run without paired windows).
  const [throughSet, directSet, relaySet] = sets.map(([set, samples]): ClientSet | undefined => {
    const i = udpSets.indexOf(set);
    return !set.length ? undefined : c && i >= 0 ? c.sets[i] : new OwnClients(set, samples);
  });
  try {
    await steps(pids, throughSet!, directSet, relaySet);
  } finally {
    await c?.load.close();
  }
}

/** The warm-up and the rate steps, through `through`, with direct and relayed windows if paired. */
async function steps(pids: number[], through: ClientSet, direct?: ClientSet, relayed?: ClientSet) {
  if (o.warm) {
    await through.reset();
    const cpu0 = cpuMs(pids);
    const sent = await through.send(o.warm.rate, o.warm.ms);
    await sleep(400); // drain
    result.warm = { rate: o.warm.rate, ...measured(await through.echoes(), sent, cpuMs(pids) - cpu0) };
  }
  for (const rate of o.rates) {
    for (const set of [through, direct, relayed]) await set?.reset();
    const stepMs = rate === o.longStep?.rate ? o.longStep.ms : o.stepMs;
    let sent = 0, directSent = 0, relaySent = 0, cpu = 0, relayCpu = 0;
    let threads: ReturnType<typeof threadUse> | undefined;
    if (!direct) {
      const perf = o.record ? await recordStart(o.record, pids) : undefined;
      const threads0 = o.threads ? pids.map(threadSamples) : [];
      const cpu0 = cpuMs(pids);
      sent = await through.send(rate, stepMs);
      await sleep(400); // drain
      cpu = cpuMs(pids) - cpu0;
      if (o.threads) threads = pids.flatMap((pid, i) => threadUse(threads0[i], threadSamples(pid)));
      await perf?.stop();
    } else {
      // Direct, through the relay (if any) and through xRTC in rotating windows, stepMs each in all; each
      // proxy's CPU is counted in its own windows only (and the echoes' return after each).
      const windows = Math.max(1, Math.round(stepMs / o.pairedWindowMs!));
      const windowMs = stepMs / windows;
      for (let w = 0; w < windows; w++) {
        directSent += await direct.send(rate, windowMs);
        await sleep(20);
        if (relayed) {
          const relayCpu0 = cpuMs(o.pairedRelay!.pids);
          relaySent += await relayed.send(rate, windowMs);
          await sleep(20);
          relayCpu += cpuMs(o.pairedRelay!.pids) - relayCpu0;
        }
        const cpu0 = cpuMs(pids);
        sent += await through.send(rate, windowMs);
        await sleep(20);
        cpu += cpuMs(pids) - cpu0;
      }
      await sleep(400); // drain
    }
    const baseline = direct ? { baseline: paired(await direct.echoes(), directSent) } : {};
    const step = {
      rate,
      ...measured(await through.echoes(), sent, cpu),
      ...baseline,
      ...(threads ? { threads } : {}),
    };
    if (relayed) {
      Object.assign(step, {
        relay: { rate, ...measured(await relayed.echoes(), relaySent, relayCpu), ...baseline },
      });
    }
    (result.steps as unknown[]).push(step);
    if (step.loss > o.maxLoss) break;
  }
}

/** `perf record -g` on the processes until stopped (SIGINT makes it write its file). */
async function recordStart(file: string, pids: number[]): Promise<{ stop(): Promise<void> }> {
  const perf = new Deno.Command("perf", {
    args: ["record", "-q", "-F", "2000", "-g", "-o", file, "-p", pids.join(",")],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await sleep(300); // perf attaches to every thread before the step starts
  return {
    async stop() {
      perf.kill("SIGINT");
      await perf.status;
    },
  };
}

/** One step's figures for one set of clients: what came back of what was sent, and the proxy's CPU. */
function measured(echoes: Echoes, sent: number, cpuMs: number) {
  return { sent, loss: sent ? Math.max(0, 1 - echoes.received / sent) : 1, cpuMs, ...echoes };
}

/** The direct path's figures in the same step (the paired windows), that latency is read against. */
function paired(e: Echoes, sent: number): Baseline {
  const all = { ...e, sent };
  return Object.fromEntries(BASELINE_FIELDS.map((k) => [k, all[k]])) as Baseline;
}

/** A steady rate for durationMs while the bench restarts xRTC: per client, the longest silence between two
 * echoes, and what was lost. */
async function gap(clients: Client[], through: Samples, lastEcho: Float64Array, longestGap: Float64Array) {
  console.log("CONNECTED");
  const rate = o.rates[0];
  const sent = await sendAt(clients, rate, o.durationMs!);
  await sleep(400); // drain
  const end = performance.now();
  // A client whose echoes never came back after the restart has been silent until the end.
  for (let i = 0; i < clients.length; i++) longestGap[i] = Math.max(longestGap[i], end - 400 - lastEcho[i]);
  const gapsMs = [...longestGap].sort((a, b) => a - b);
  Object.assign(result, {
    rate,
    sent,
    received: through.received,
    lost: sent - through.received,
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
