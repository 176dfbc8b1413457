// Figures of the process and the host, read when metrics are collected: resident memory, CPU time and
// descriptors (/proc/self), the kernel's UDP error counters (/proc/net/snmp), and each shard's thread CPU
// time (/proc/thread-self) and event-loop lag. Linux only; elsewhere these series stay at zero.
import {
  cpuSeconds,
  eventLoopLag,
  kernelUdpErrors,
  maxFds,
  openFds,
  residentMemory,
  shardCpuSeconds,
  startTime,
} from "./catalog.ts";

/** The kernel's clock ticks per second (USER_HZ): 100 on every Linux that xRTC runs on. */
const CLOCK_TICKS = 100;

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** The soft limit of open descriptors, from /proc/self/limits. */
export function descriptorLimit(): number | undefined {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readText("/proc/self/limits") ?? "");
  if (!m) return undefined;
  return m[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(m[1]);
}

export function openDescriptors(): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

/** UDP counters of /proc/net/snmp ("Udp:" header line, then values). */
export function kernelUdpCounters(): Record<string, number> | undefined {
  const lines = (readText("/proc/net/snmp") ?? "").split("\n").filter((l) => l.startsWith("Udp:"));
  if (lines.length < 2) return undefined;
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

/** Registers the collectors of process-wide figures: main thread only, so shards do not add them up. */
export function installProcessCollectors(): void {
  const started = Date.now() / 1000 - performance.now() / 1000;
  startTime.set({}, Math.round(started));
  residentMemory.collectWith((set) => set({}, Deno.memoryUsage().rss));
  openFds.collectWith((set) => set({}, openDescriptors() ?? 0));
  maxFds.collectWith((set) => set({}, descriptorLimit() ?? 0));
  cpuSeconds.collectWith((set) => {
    const stat = readText("/proc/self/stat");
    if (!stat) return;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    set({}, (Number(f[11]) + Number(f[12])) / CLOCK_TICKS); // utime + stime
  });
  kernelUdpErrors.collectWith((set) => {
    const udp = kernelUdpCounters();
    if (!udp) return;
    set({ kind: "in_errors" }, udp.InErrors ?? 0);
    set({ kind: "receive_buffer" }, udp.RcvbufErrors ?? 0);
    set({ kind: "send_buffer" }, udp.SndbufErrors ?? 0);
    set({ kind: "no_port" }, udp.NoPorts ?? 0);
  });
}

/** Registers the collector of this shard's thread CPU time: on each shard's own thread (metrics are
 * collected there, and /proc/thread-self is the thread that reads it). */
export function installThreadCollectors(): void {
  shardCpuSeconds.collectWith((set) => {
    const ns = Number(readText("/proc/thread-self/schedstat")?.split(" ")[0]);
    if (Number.isFinite(ns)) set({}, ns / 1e9);
  });
}

const LAG_PROBE_MS = 250;
const LAG_WINDOW_MS = 10_000;

/** Measures this isolate's event-loop lag: how late a timer fires, the worst over the last window. */
export function startLagMonitor(): () => void {
  let expected = performance.now() + LAG_PROBE_MS;
  let windowStart = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - expected);
    expected = now + LAG_PROBE_MS;
    if (now - windowStart >= LAG_WINDOW_MS) {
      eventLoopLag.set({}, worst / 1000);
      worst = 0;
      windowStart = now;
    }
  }, LAG_PROBE_MS);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
