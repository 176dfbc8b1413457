// xRTC as its own process (main.ts, as operators run it) for the tests that signal it, kill it and start
// it again: its lines as they come, readiness, signals, exit.
import { ROOT, testConfigYaml, type XrtcTestOptions } from "./xrtc.ts";
import type { Topology } from "./topology.ts";
import { collectLines, sleep, waitFor } from "./run.ts";

export interface XrtcProcess {
  child: Deno.ChildProcess;
  pid: number;
  lines: string[];
  ready(timeoutMs?: number): Promise<void>;
  /** The first line matching `pattern`, once it has come: logs are on stderr, "xrtc: ready" on stdout, and
   * the two pipes are read apart, so a line written before ready may be read after it. */
  logged(pattern: RegExp, timeoutMs?: number): Promise<string>;
  signal(sig: Deno.Signal): void;
  /** Resolves with the exit code, or undefined if it has not exited within `ms`. */
  exited(ms: number): Promise<number | undefined>;
  kill9(): Promise<void>;
}

/** Writes the test configuration (plus `extra` YAML under options) and starts xRTC on it. */
export async function writeConfig(
  t: Topology,
  dir: string,
  o: XrtcTestOptions & { stateDir?: string },
): Promise<string> {
  const options = `${o.options ?? "  consent_timeout: 30s"}${
    o.stateDir ? `\n  state_dir: ${o.stateDir}` : ""
  }`;
  const file = `${dir}/routes.yml`;
  await Deno.writeTextFile(file, testConfigYaml(t, { ...o, options }));
  return file;
}

export function spawnXrtc(
  configFile: string,
  o: { io?: string; takeover?: boolean; netns?: string } = {},
): XrtcProcess {
  const args = ["run", "-A", `${ROOT}main.ts`, "--config", configFile];
  if (o.io) args.push("--io", o.io);
  if (o.takeover) args.push("--takeover");
  // In a namespace of its own (a cluster node): `ip netns exec` becomes the process itself.
  const deno = `${ROOT}node_modules/.bin/deno`;
  const child = new Deno.Command(o.netns ? "ip" : deno, {
    args: o.netns ? ["netns", "exec", o.netns, deno, ...args] : args,
    stdout: "piped",
    stderr: "piped",
    // The tests follow the process through its info events (session_open, client_path_selected, …),
    // whatever level the test run itself logs at; the lines are kept, not printed.
    env: { XRTC_LOG: "info" },
  }).spawn();
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) collectLines(stream, lines);
  let code: number | undefined;
  child.status.then((s) => code = s.code);
  return {
    child,
    pid: child.pid,
    lines,
    ready: (timeoutMs = 20_000) =>
      waitFor("xrtc: ready", () => {
        if (code !== undefined) throw new Error(`xRTC exited (${code}):\n${lines.slice(-20).join("\n")}`);
        return lines.includes("xrtc: ready") || undefined;
      }, timeoutMs).then(() => {}),
    logged: async (pattern, timeoutMs = 5_000) => {
      try {
        return await waitFor(
          `a line matching ${pattern}`,
          () => lines.find((l) => pattern.test(l)),
          timeoutMs,
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}; the last lines:\n${lines.slice(-20).join("\n")}`);
      }
    },
    signal: (sig) => child.kill(sig),
    exited: async (ms) =>
      await Promise.race([child.status.then((s) => s.code), sleep(ms).then(() => undefined)]),
    kill9: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    },
  };
}
