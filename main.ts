// xrtc: many WebRTC clients on one ICE port in front of Janus.
//   xrtc [--config routes.yml] [--check-config] [--io auto|deno|ffi] [--takeover]
// Signals: SIGHUP reloads routes.yml; the first SIGTERM (or SIGINT) drains, a second stops at once;
// SIGUSR2 hands the live sessions over to a process started with --takeover, and exits.
import { ConfigError, loadConfigFile } from "./src/config/load.ts";
import { effectiveConfig } from "./src/config/effective.ts";
import type { Config } from "./src/config/types.ts";
import { describeBackend, type IoBackendChoice } from "./src/io/backend.ts";
import { start, type Xrtc } from "./src/app.ts";
import { log } from "./src/telemetry/log.ts";

const USAGE = `usage: xrtc [--config FILE] [--check-config] [--io auto|deno|ffi] [--takeover]
  --config FILE    routes file (default: $XRTC_CONFIG or ./routes.yml)
  --check-config   validate, print the effective configuration, exit
  --io BACKEND     UDP I/O backend: auto, deno (portable) or ffi (batched libc, Linux); also $XRTC_IO
  --takeover       an upgrade: start beside the running xRTC (same options.state_dir), take over its
                   live sessions and ports, and make it exit`;

const BACKENDS = ["auto", "deno", "ffi"];
/** The running process's id, in the state directory (a --takeover finds it there). */
const PID_FILE = "xrtc.pid";
/** How often a running xRTC touches its pid file (a start tells a running xRTC from a crashed one by it). */
const PID_HEARTBEAT_MS = 1_000;
/** How long a takeover waits for the old process to exit. */
const TAKEOVER_TIMEOUT_MS = 30_000;

function parseArgs(
  args: string[],
): { config: string; check: boolean; io?: IoBackendChoice; takeover: boolean } {
  let config = Deno.env.get("XRTC_CONFIG") ?? "routes.yml";
  let check = false, takeover = false;
  let io = Deno.env.get("XRTC_IO");
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--config" || a === "-c") config = args[++i] ?? "";
    else if (a.startsWith("--config=")) config = a.slice(9);
    else if (a === "--check-config") check = true;
    else if (a === "--takeover") takeover = true;
    else if (a === "--io") io = args[++i];
    else if (a.startsWith("--io=")) io = a.slice(5);
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else {
      console.error(`xrtc: unknown argument ${a}\n${USAGE}`);
      Deno.exit(2);
    }
  }
  if (!config) {
    console.error(`xrtc: --config needs a file\n${USAGE}`);
    Deno.exit(2);
  }
  if (io !== undefined && !BACKENDS.includes(io)) {
    console.error(`xrtc: --io must be "auto", "deno" or "ffi", not "${io}"`);
    Deno.exit(2);
  }
  return { config, check, io: io as IoBackendChoice | undefined, takeover };
}

/** Reads and validates routes.yml; every error is printed with file and line. */
async function readConfig(file: string): Promise<{ config?: Config; errors: string[] }> {
  try {
    const loaded = await loadConfigFile(file);
    for (const w of loaded.warnings) console.error(`xrtc: warning: ${w}`);
    return { config: loaded.config, errors: [] };
  } catch (e) {
    if (e instanceof ConfigError) return { errors: e.problems };
    throw e;
  }
}

/** The xRTC process named by the state directory's pid file, if it still runs: the file is fresh (a
 * running xRTC touches it every PID_HEARTBEAT_MS) and the process exists. A pid left by a crash is stale
 * within seconds, so a pid reused by another program later does not count. */
function runningXrtc(stateDir: string): number | undefined {
  try {
    const file = `${stateDir}/${PID_FILE}`;
    const pid = Number(Deno.readTextFileSync(file).trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === Deno.pid) return undefined;
    const age = Date.now() - (Deno.statSync(file).mtime?.getTime() ?? 0);
    if (age > 3 * PID_HEARTBEAT_MS) return undefined;
    Deno.kill(pid, "SIGCONT"); // throws when no such process; harmless to a running one
    return pid;
  } catch {
    return undefined;
  }
}

/** Removes the pid file if it is still this process's. */
function removePidFile(stateDir: string): void {
  try {
    if (Number(Deno.readTextFileSync(`${stateDir}/${PID_FILE}`).trim()) === Deno.pid) {
      Deno.removeSync(`${stateDir}/${PID_FILE}`);
    }
  } catch { /* gone */ }
}

/** An upgrade: the old process (its pid in the state directory) is asked to hand over, and this one
 * catches up with what it recorded until it exited, then records on its own. */
async function takeOver(x: Xrtc, stateDir: string): Promise<void> {
  const old = runningXrtc(stateDir);
  if (old) {
    log("info", "takeover", { old_pid: old });
    Deno.kill(old, "SIGUSR2");
    const until = Date.now() + TAKEOVER_TIMEOUT_MS;
    while (runningXrtc(stateDir) === old && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (runningXrtc(stateDir) === old) log("warn", "takeover_old_still_running", { old_pid: old });
  } else log("info", "takeover_nothing_running", { state_dir: stateDir });
  const live = x.restoreFromState();
  log("info", "takeover_done", { old_pid: old, live });
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  const first = await readConfig(args.config);
  if (!first.config) {
    console.error(`xrtc: ${first.errors.length} configuration error(s):`);
    for (const p of first.errors) console.error(`  ${p}`);
    Deno.exit(1);
  }
  const config = first.config;
  if (args.check) {
    const inEffect = await describeBackend(args.io ?? config.options.ioBackend);
    console.log(JSON.stringify(effectiveConfig(config, { ioBackend: inEffect }), null, 2));
    console.log(`xrtc: ${args.config}: configuration OK`);
    Deno.exit(0);
  }
  const stateDir = config.options.stateDir;
  const other = stateDir ? runningXrtc(stateDir) : undefined;
  if (other && !args.takeover) {
    console.error(
      `xrtc: cannot start: xRTC (pid ${other}) runs on the state directory ${stateDir}; stop it first, or start with --takeover to replace it without dropping its calls`,
    );
    Deno.exit(1);
  }
  let xrtc: Xrtc;
  try {
    xrtc = await start(config, {
      takeover: args.takeover && stateDir !== "",
      ioBackend: args.io,
      announce: (line) => console.log(line),
      onFatal: (reason) => {
        console.error(`xrtc: ${reason}; exiting so that a supervisor restarts xRTC`);
        if (stateDir) removePidFile(stateDir);
        Deno.exit(70);
      },
    });
  } catch (e) {
    console.error(`xrtc: cannot start: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
  if (stateDir && args.takeover) await takeOver(xrtc, stateDir);
  if (stateDir) {
    const pidFile = `${stateDir}/${PID_FILE}`;
    Deno.writeTextFileSync(pidFile, `${Deno.pid}\n`, { mode: 0o600 });
    setInterval(() => {
      try {
        const now = new Date();
        Deno.utimeSync(pidFile, now, now);
      } catch { /* removed by a process taking over: it writes its own */ }
    }, PID_HEARTBEAT_MS);
  }
  console.log("xrtc: ready");

  Deno.addSignalListener("SIGHUP", async () => {
    try {
      const next = await readConfig(args.config);
      if (!next.config) {
        log("error", "reload_refused", { file: args.config, errors: next.errors.length });
        for (const p of next.errors) log("error", "reload_error", { problem: p });
        xrtc.refusedReload(next.errors);
        return;
      }
      const r = await xrtc.reload(next.config);
      log("info", "reloaded", { generation: r.generation, applied: r.applied.join(", ") });
      for (const n of r.notApplied) log("warn", "reload_not_applied", { what: n });
    } catch (e) {
      // Never fatal: the process goes on with what it has.
      log("error", "reload_failed", { file: args.config, error: e });
      xrtc.refusedReload([e instanceof Error ? e.message : String(e)]);
    }
  });
  let stopping = false;
  let stopped: Promise<void> | undefined;
  const stopNow = async (signal: string) => {
    if (stopped) return await stopped; // `deno task` and a supervisor may both pass a signal on
    log("info", "shutdown", { signal });
    stopped = xrtc.stop();
    await stopped;
    if (stateDir) removePidFile(stateDir);
    Deno.exit(0);
  };
  const onTerm = async (signal: string) => {
    if (stopping) return void stopNow(signal); // a second signal: at once
    stopping = true;
    log("info", "drain_started", { signal, timeout_ms: xrtc.config.options.drainTimeoutMs });
    await xrtc.drain();
    await stopNow("drained");
  };
  Deno.addSignalListener("SIGTERM", () => void onTerm("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void onTerm("SIGINT"));
  Deno.addSignalListener("SIGUSR2", async () => {
    await xrtc.handover();
    Deno.exit(0); // the pid file is the new process's now
  });
}
