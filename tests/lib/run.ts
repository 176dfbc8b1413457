// Running commands from tests: fail loudly with the command's own output.
import { linesOf } from "../../bench/procs.ts";
export async function run(cmd: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success && !opts.allowFail) {
    throw new Error(`${cmd.join(" ")} failed (${out.code}): ${text.trim()}`);
  }
  return text;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** Waits for a count that one event raises to reach `expected`, then checks that it still reads
 * `expected` a moment later: however late the event is handled, it is counted once, not twice or never. */
export async function countSettlesAt(
  what: string,
  read: () => Promise<number> | number,
  expected: number,
  timeoutMs = 5_000,
): Promise<void> {
  // Not reaching it is reported below, with the value read.
  await waitFor(what, async () => await read() >= expected || undefined, timeoutMs, 25).catch(() => {});
  await sleep(200);
  const value = await read();
  if (value !== expected) throw new Error(`${what}: ${value}, not ${expected}`);
}

/** Keeps a child's output as lines (each whole, however the pipe cut it), without empty ones. */
export function collectLines(stream: ReadableStream<Uint8Array>, lines: string[]): void {
  (async () => {
    for await (const line of linesOf(stream)) if (line) lines.push(line);
  })();
}

/** A loopback TCP port free at the time of the call (the kernel's choice). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Where tests keep what a person may want to look at afterwards: screenshots, media-gap timelines.
 * tests/run.sh points XRTC_ARTIFACTS at tests/artifacts. */
export async function artifactPath(name: string): Promise<string> {
  const dir = Deno.env.get("XRTC_ARTIFACTS") ?? `${Deno.env.get("TMPDIR") ?? "/tmp"}/xrtc-artifacts`;
  await Deno.mkdir(dir, { recursive: true });
  return `${dir}/${name}`;
}

/** A figure a test measured (RSS growth, packets kept, a media gap), appended to
 * `<artifacts>/figures.jsonl` so that a run's figures can be quoted; the test still asserts its bound. */
export async function recordFigure(test: string, figures: Record<string, number | string>): Promise<void> {
  const line = JSON.stringify({ at: new Date().toISOString(), test, ...figures }) + "\n";
  await Deno.writeTextFile(await artifactPath("figures.jsonl"), line, { append: true });
}

/** Stops a child process: `signal`, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
  graceMs = 3_000,
): Promise<void> {
  try {
    child.kill(signal);
  } catch { /* gone */ }
  const done = await Promise.race([child.status.then(() => true), sleep(graceMs).then(() => false)]);
  if (done) return;
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  await child.status;
}
