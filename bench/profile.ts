// Where xRTC's CPU per packet goes, against the C relay, thread by thread. Both forward the same echo stream
// (4 clients, 1,200-byte packets, ffi backend, xRTC as `deno task start` runs it, clients paced as in the
// bench) at a low and a high rate.
// For each: CPU per 1,000 forwarded packets, and for each busy thread its CPU a second, its wakeups
// (context switches) a second, and what one wakeup costs and carries. Then, where `perf` can record, a
// second run of each step is sampled (the first is not, so the figures above carry no sampling cost): each
// thread's samples by what was running (the kernel, libc's syscall wrappers, the runtime's native code
// (V8's builtins, Deno's FFI and ops), JS compiled by V8, the C relay's own code), and xRTC's JS functions
// with the time spent in and below them.
//   deno run -A bench/profile.ts                 rates 2000 and 20000 packets/s, UDP clients
//   PROFILE_RATES=500,20000 PROFILE_TCP=1 ...    other rates; also xRTC with ICE-TCP clients
//   PROFILE_V8_FLAGS=--flag1,--flag2 ...         xRTC with these V8 flags too
//   PROFILE_SAMPLE=0 ...                         the figures only, no sampled runs
//   PROFILE_WARM_MS=20000 ...                    xRTC's warm-up once started (default 20 s)
import { gen, PACED_UP_TO, startPeer } from "./scenarios.ts";
import { startXrtc } from "./xrtc.ts";
import { buildC, freePort, type Proc, spawn } from "./procs.ts";
import type { Step } from "./report.ts";
import { type FunctionSamples, KINDS, parsePerfScript, type Profile } from "./perf_samples.ts";

const RATES = (Deno.env.get("PROFILE_RATES") ?? "2000,20000").split(",").map(Number);
const TCP = Deno.env.get("PROFILE_TCP") === "1";
/** V8 flags to try, besides those of `deno task start`. */
const V8_FLAGS = (Deno.env.get("PROFILE_V8_FLAGS") ?? "").split(",").filter((f) => f);
/** A step; the unmeasured stretch before it, with the step's own new sessions; clients per run. */
const STEP_MS = 8_000, SESSIONS_WARM_MS = 3_000, CLIENTS = 4;
/** What every generator run here has in common. */
const RUN = { clients: CLIENTS, size: 1200, maxLoss: 1, pacedUpTo: PACED_UP_TO };
/** xRTC's warm-up once started, before any step: its JIT compiles the media path in the first seconds. */
const WARM_UP_MS = Number(Deno.env.get("PROFILE_WARM_MS") ?? "20000");

/** `perf script` of a recording, parsed. */
async function readProfile(file: string): Promise<Profile> {
  const out = await new Deno.Command("perf", {
    args: ["script", "-i", file, "-F", "comm,tid,ip,sym,dso"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return parsePerfScript(new TextDecoder().decode(out.stdout));
}

async function perfWorks(): Promise<boolean> {
  try {
    const r = await new Deno.Command("perf", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

const pct = (n: number, of: number) => of ? `${(n / of * 100).toFixed(1)} %` : "-";
const perThousand = (s: Step) => s.cpuMs / (s.received * 2) * 1000;

function printThreads(s: Step, stepMs: number): void {
  const forwardedPerS = s.received * 2 / (stepMs / 1000);
  const total = s.cpuMs;
  for (const t of s.threads ?? []) {
    if (t.cpuMs < total * 0.05) continue;
    const perS = (x: number) => x / (stepMs / 1000);
    console.log(
      `    ${t.name.padEnd(16)} ${perS(t.cpuMs).toFixed(1).padStart(6)} ms/s, ${
        perS(t.switches).toFixed(0).padStart(6)
      } wakeups/s: ${(t.cpuMs * 1000 / t.switches).toFixed(1)} µs and ${
        (forwardedPerS / perS(t.switches)).toFixed(1)
      } packets forwarded per wakeup`,
    );
  }
}

/** Each busy thread's samples by what was running; with the unsampled step's figures for the thread, the
 * same split of what one wakeup costs. */
function printProfile(p: Profile, measured: Step): void {
  if (!p.total) {
    console.log("    perf recorded no samples (is perf_event_paranoid above 1 for this user?)");
    return;
  }
  for (const [name, t] of [...p.threads].sort((a, b) => b[1].samples - a[1].samples)) {
    if (t.samples < p.total * 0.05) continue;
    const kinds = KINDS.filter((k) => t.byKind[k] > 0);
    const parts = kinds.map((k) => `${k} ${pct(t.byKind[k], t.samples)}`);
    console.log(
      `    ${name.padEnd(16)} ${pct(t.samples, p.total).padStart(7)} of samples: ${parts.join(", ")}`,
    );
    const use = measured.threads?.find((u) => u.name === name);
    if (!use?.switches) continue;
    const perWakeup = use.cpuMs * 1000 / use.switches;
    const split = kinds.map((k) => `${k} ${(perWakeup * t.byKind[k] / t.samples).toFixed(1)}`);
    console.log(
      `    ${"".padEnd(16)} per wakeup (${perWakeup.toFixed(1)} µs, unsampled step): ${split.join(", ")} µs`,
    );
  }
  const all = (f: FunctionSamples) => f.self + f.runtime + f.system;
  const top = [...p.functions].sort((a, b) => all(b[1]) - all(a[1])).slice(0, 10);
  if (!top.length) return;
  console.log(
    "    JS functions (innermost on the stack), share of all samples: own code + the runtime below them + libc and the kernel below them",
  );
  for (const [name, f] of top) {
    console.log(
      `      ${pct(all(f), p.total).padStart(7)} = ${pct(f.self, p.total)} + ${pct(f.runtime, p.total)} + ${
        pct(f.system, p.total)
      }  ${name}`,
    );
  }
}

interface Target {
  label: string;
  proc: Proc;
  /** The generator's options for this target, besides rate and step. */
  opts: Record<string, unknown>;
  warm: boolean;
}

/** Each generator run's clients get ufrags of their own against the one xRTC. */
let runs = 0;

async function measure(t: Target, rate: number, record?: string): Promise<Step> {
  const base = { ...RUN, rates: [rate], pids: [t.proc.pid], ...t.opts };
  if (t.warm) await gen({ ...base, stepMs: SESSIONS_WARM_MS, tag: `p${++runs}c` });
  const r = await gen({ ...base, stepMs: STEP_MS, threads: true, record, tag: `p${++runs}c` });
  return r.steps[0];
}

const peer = await startPeer();
const stops: Array<() => Promise<void>> = [() => peer.stop()];
const recordDir = await Deno.makeTempDir({ prefix: "xrtc-profile-" });
try {
  const canRecord = Deno.env.get("PROFILE_SAMPLE") !== "0" && await perfWorks();
  const cPort = freePort();
  const c = await spawn([String(cPort), String(peer.udp)], /^RELAY/, { command: await buildC("c_relay") });
  stops.push(() => c.stop());
  const targets: Target[] = [{ label: "C relay", proc: c, opts: { mode: "raw", port: cPort }, warm: false }];
  const x = { backend: "ffi" as const, peerHttp: peer.http, udpPort: freePort(), httpPort: freePort() };
  const xTcp = TCP ? freePort() : undefined;
  const xrtc = await startXrtc({ ...x, tcpPort: xTcp }, {
    extraV8Flags: [...V8_FLAGS, ...canRecord ? ["--perf-basic-prof"] : []],
  });
  stops.push(async () => {
    await xrtc.stop();
    await Deno.remove(`/tmp/perf-${xrtc.pid}.map`).catch(() => {});
  });
  const http = `http://127.0.0.1:${x.httpPort}`;
  const udpClients = { mode: "xrtc", port: x.udpPort, http };
  targets.push({ label: "xRTC half proxy", proc: xrtc, opts: udpClients, warm: true });
  if (xTcp) {
    targets.push({
      label: "xRTC, ICE-TCP clients",
      proc: xrtc,
      opts: { ...udpClients, tcp: xTcp },
      warm: true,
    });
  }
  if (!canRecord) console.log("(no sampled runs: PROFILE_SAMPLE=0, or perf cannot run here)");
  // A server runs for days: its media path is compiled before anything is read (as in the bench:
  // scenarios.ts, Settings.warmMs).
  const warmRate = Math.max(...RATES);
  await gen({
    ...RUN,
    ...udpClients,
    rates: [],
    stepMs: 0,
    warm: { rate: warmRate, ms: WARM_UP_MS },
    tag: `p${++runs}c`,
  });
  console.log(`(xRTC warmed up for ${WARM_UP_MS / 1000} s at ${warmRate} packets/s first)`);
  for (const rate of RATES) {
    console.log(
      `at ${rate} packets/s (${CLIENTS} clients, 1,200 bytes, ${
        STEP_MS / 1000
      } s), CPU per 1,000 forwarded packets:`,
    );
    let cRelay = NaN;
    const steps = new Map<Target, Step>();
    for (const t of targets) {
      const s = await measure(t, rate);
      steps.set(t, s);
      const k = perThousand(s);
      if (t.proc === c) cRelay = k;
      const ratio = t.proc === c ? "" : ` = ${(k / cRelay).toFixed(2)} of the C relay`;
      console.log(`  ${t.label}: ${k.toFixed(2)} ms${ratio} (loss ${pct(1 - s.received / s.sent, 1)})`);
      printThreads(s, STEP_MS);
    }
    if (!canRecord) continue;
    console.log(`  sampled (perf record -g, 2 kHz), each thread's samples by what was running:`);
    for (const t of targets) {
      const file = `${recordDir}/${rate}-${targets.indexOf(t)}.data`;
      await measure(t, rate, file);
      console.log(`  ${t.label}:`);
      printProfile(await readProfile(file), steps.get(t)!);
    }
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await Deno.remove(recordDir, { recursive: true });
}
