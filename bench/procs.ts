// The bench's processes and what it reads of them: spawning with readiness lines, free ports, CPU time
// per process and per thread, and resident memory (/proc, Linux).
export const ROOT = new URL("../", import.meta.url).pathname;
export const DENO = `${ROOT}node_modules/.bin/deno`;
const READY_TIMEOUT_MS = 30_000;

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
    for await (const line of linesOf(stream)) lines.push(line);
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

/** One thread's CPU time in nanoseconds (the scheduler's own count, /proc/<pid>/task/<tid>/schedstat:
 * utime + stime are in 10 ms ticks, which over a 2 s step at 20k packets/s is a 3 % step in CPU per
 * packet, as large as the differences measured) and its context switches (voluntary: it slept, waiting;
 * involuntary: it was preempted). */
export interface ThreadSample {
  cpuNs: number;
  switches: number;
}

/** Each live thread of a process, by "tid name". A thread that ends between two samples takes its time
 * with it (Deno's threads live as long as the process while it works). */
export function threadSamples(pid: number): Map<string, ThreadSample> {
  const out = new Map<string, ThreadSample>();
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${e.name}`;
    try {
      const comm = Deno.readTextFileSync(`${dir}/comm`).trim();
      const cpuNs = Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]);
      const status = Deno.readTextFileSync(`${dir}/status`);
      const count = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
      out.set(`${e.name} ${comm}`, {
        cpuNs,
        switches: count("voluntary_ctxt_switches") + count("nonvoluntary_ctxt_switches"),
      });
    } catch { /* the thread ended */ }
  }
  return out;
}

/** CPU time of the processes (every live thread), in milliseconds. */
export function cpuMs(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) for (const t of threadSamples(pid).values()) ns += t.cpuNs;
  return ns / 1e6;
}

/** What the threads of one name (Deno's pool threads share one) used between two samples. */
export interface ThreadUse {
  name: string;
  threads: number;
  cpuMs: number;
  switches: number;
}

/** Per thread name, CPU and context switches between two samples, busiest first. */
export function threadUse(before: Map<string, ThreadSample>, after: Map<string, ThreadSample>): ThreadUse[] {
  const byName = new Map<string, ThreadUse>();
  for (const [key, t] of after) {
    const b = before.get(key) ?? { cpuNs: 0, switches: 0 };
    const name = key.slice(key.indexOf(" ") + 1);
    const u = byName.get(name) ?? { name, threads: 0, cpuMs: 0, switches: 0 };
    u.threads++;
    u.cpuMs += (t.cpuNs - b.cpuNs) / 1e6;
    u.switches += t.switches - b.switches;
    byName.set(name, u);
  }
  return [...byName.values()].filter((u) => u.cpuMs > 0).sort((a, b) => b.cpuMs - a.cpuMs);
}

export function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A child process spoken to in lines: commands on its stdin, replies on its stdout, answered in order.
 * Its stderr is the bench's; it ends when its stdin closes (the bench's process ending closes it too). */
export class LineChannel {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly command: string, readonly child: Deno.ChildProcess) {
    this.#writer = child.stdin.getWriter();
    this.#lines = linesOf(child.stdout);
  }

  static start(command: string, args: string[]): LineChannel {
    const child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped", stderr: "inherit" })
      .spawn();
    return new LineChannel(command, child);
  }

  /** The next line it prints. */
  async next(): Promise<string> {
    const r = await this.#lines.next();
    if (r.done) throw new Error(`${this.command} ended (${(await this.child.status).code})`);
    return r.value;
  }

  /** Writes a command that has no reply. */
  send(line: string): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Writes a command and resolves with its reply line; concurrent requests are answered in turn. */
  request(line: string): Promise<string> {
    const reply = this.#queue.then(async () => {
      await this.send(line);
      return await this.next();
    });
    this.#queue = reply.catch(() => {});
    return reply;
  }

  /** Closes its stdin (it ends) and waits for it. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.child.status;
  }
}

/** A stream's text, line by line (each whole, however the stream cut it; the last even without a newline). */
export async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    yield* parts;
  }
  if (buf) yield buf;
}

const built = new Map<string, Promise<string>>();
/** bench/<name>.c built once per run with the machine's C compiler; the binary's path. */
export function buildC(name: "c_relay" | "c_load"): Promise<string> {
  let binary = built.get(name);
  if (!binary) built.set(name, binary = compile(name));
  return binary;
}

async function compile(name: string): Promise<string> {
  const out = `${await Deno.makeTempDir({ prefix: "xrtc-bench-c-" })}/${name}`;
  const r = await new Deno.Command("gcc", { args: ["-O2", "-o", out, `${ROOT}bench/${name}.c`, "-lm"] })
    .output()
    .catch((e) => {
      throw new Error(
        `the bench's C tools need gcc (apt-get install gcc): ${e instanceof Error ? e.message : e}`,
      );
    });
  if (!r.success) throw new Error(`gcc failed: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}
