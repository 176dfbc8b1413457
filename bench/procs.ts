// The bench's processes and what it reads of them: spawning with readiness lines, free ports, CPU ticks
// per process and per thread, and resident memory (/proc, Linux).
export const ROOT = new URL("../", import.meta.url).pathname;
export const DENO = `${ROOT}node_modules/.bin/deno`;
const READY_TIMEOUT_MS = 30_000;
/** /proc's clock ticks per second (USER_HZ). */
export const CLK_TCK = 100;

export interface Proc {
  child: Deno.ChildProcess;
  pid: number;
  /** Every stdout line so far (and stderr's, when asked for). */
  lines: string[];
  /** Resolves with the first line matching `re`, or rejects at the deadline or when the process exits. */
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: Deno.Signal): Promise<void>;
}

export interface SpawnOptions {
  /** The program to run (default: the project's deno, with `args` as its arguments). */
  command?: string;
  env?: Record<string, string>;
  /** Collect stderr lines too (xRTC's log), not only stdout. */
  stderr?: boolean;
}

/** `deno <args>` (or another command) from the project root; resolves once a stdout line matches `ready`. */
export async function spawn(args: string[], ready: RegExp, o: SpawnOptions = {}): Promise<Proc> {
  const child = new Deno.Command(o.command ?? DENO, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: o.stderr ? "piped" : "null",
    env: { XRTC_LOG: "error", ...o.env },
  }).spawn();
  const lines: string[] = [];
  let exited: number | undefined;
  child.status.then((s) => exited = s.code);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
    }
  };
  read(child.stdout);
  if (o.stderr) read(child.stderr);
  const proc: Proc = {
    child,
    pid: child.pid,
    lines,
    async waitLine(re, timeoutMs = READY_TIMEOUT_MS) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (exited !== undefined) {
          throw new Error(
            `${args.join(" ")} exited (${exited}) before ${re}:\n${lines.slice(-10).join("\n")}`,
          );
        }
        if (Date.now() > until) throw new Error(`${args.join(" ")}: no line ${re} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      const done = await Promise.race([child.status, new Promise((r) => setTimeout(r, 5_000))]);
      if (!done) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
    },
  };
  try {
    await proc.waitLine(ready);
  } catch (e) {
    await proc.stop("SIGKILL");
    throw e;
  }
  return proc;
}

/** A loopback port free for both TCP and UDP at the time of the call (the kernel's choice). */
export function freePort(): number {
  for (;;) {
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (udp.addr as Deno.NetAddr).port;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      /* taken for TCP: another */
    } finally {
      udp.close();
    }
  }
}

/** utime + stime of the processes, in clock ticks. */
export function cpuTicks(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks;
}

/** CPU ticks of each thread of a process, by "tid name". */
export function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(`${e.name} ${name}`, Number(f[11]) + Number(f[12]));
    } catch { /* the thread ended */ }
  }
  return out;
}

/** Each thread's share of the process's CPU between two samples, busiest first. */
export function threadShares(
  before: Map<string, number>,
  after: Map<string, number>,
): Array<[string, number]> {
  const deltas = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number]);
  const total = deltas.reduce((a, [, d]) => a + d, 0) || 1;
  return deltas.filter(([, d]) => d > 0).map(([k, d]) => [k, d / total] as [string, number])
    .sort((a, b) => b[1] - a[1]);
}

export function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
