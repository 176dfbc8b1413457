// xRTC as the bench runs it: its routes.yml (every per-client limit opened up, since all the bench's
// clients come from 127.0.0.1) and the process, on ports picked free for each run.
import { type Proc, ROOT, spawn } from "./procs.ts";

export interface BenchXrtc {
  backend: "deno" | "ffi";
  icedirect?: boolean;
  workers?: number;
  /** options.media_thread (auto, the default, unless told: a worker thread with ffi). */
  mediaThread?: "auto" | "main" | "worker";
  /** The echo peer's HTTP API (standing where Janus stands). */
  peerHttp: number;
  udpPort: number;
  httpPort: number;
  /** An ICE-TCP port (RFC 6544) beside the UDP one. */
  tcpPort?: number;
  /** An admin listener on this port (for /metrics and /status costs). */
  adminPort?: number;
  /** options.state_dir: the journal on. */
  stateDir?: string;
  maxSessions?: number;
  /** options.udp_gso (on unless false). */
  gso?: boolean;
  /** options.udp_gro (on unless false). */
  gro?: boolean;
}

export function benchConfigYaml(o: BenchXrtc): string {
  const unlimited = 10_000_000;
  return `
options:
  io_backend: ${o.backend}
  udp_gso: ${o.gso ?? true}
  udp_gro: ${o.gro ?? true}
  max_sessions: ${o.maxSessions ?? 50_000}
  workers: ${o.workers ?? 1}
  media_thread: ${o.mediaThread ?? "auto"}
  # Idle sessions are connected once, then silent for the rest of the run.
  consent_timeout: 10m
${
    o.stateDir
      ? `  state_dir: ${o.stateDir}\n`
      : ""
  }  janus: { session_timeout: 0 } # the bench's clients send no keepalives
  limits:
    max_janus_sessions: ${unlimited}
    janus_sessions_per_address: ${unlimited}
    janus_session_rate_per_address: 1000000
    ice_sessions_per_address: ${unlimited}
services:
  peer: { proto: upstream, servers: [http://127.0.0.1:${o.peerHttp}] }
  ice: { proto: udp, net: { addr: 127.0.0.1:${o.udpPort}, candidate_ips: [127.0.0.1] } }
${
    o.tcpPort
      ? `  ice_tcp: { proto: tcp, net: { addr: 127.0.0.1:${o.tcpPort}, enable_ice: true, candidate_ips: [127.0.0.1] } }\n`
      : ""
  }  web:
    proto: http
    net: { addr: 127.0.0.1:${o.httpPort} }
    http:
      routes:
        janus: { upstream: http://peer, icedirect: ${o.icedirect ?? false}, paths: [/janus] }
${o.adminPort ? `  admin: { proto: admin, net: { addr: 127.0.0.1:${o.adminPort} } }\n` : ""}`;
}

/** The V8 flags a task of deno.json runs Deno with (each, without "--v8-flags="). */
export function taskV8Flags(task: string): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;
  return tasks[task].split(/\s+/).filter((arg) => arg.startsWith("--v8-flags="))
    .flatMap((arg) => arg.slice("--v8-flags=".length).split(","));
}

/** The V8 flags `deno task start` runs xRTC with: the bench measures what operators run. */
const START_V8_FLAGS = taskV8Flags("start");

const v8FlagsArg = (flags: string[]) => flags.length ? [`--v8-flags=${flags.join(",")}`] : [];

/** Writes the configuration and starts main.ts on it, as operators do; ready at "xrtc: ready". With
 * `log`, xRTC's info events are kept in the process's lines (the restore scenarios read them). */
export async function startXrtc(
  o: BenchXrtc,
  run: { takeover?: boolean; log?: boolean; configFile?: string; extraV8Flags?: string[] } = {},
): Promise<Proc & { configFile: string }> {
  const configFile = run.configFile ?? await Deno.makeTempFile({ prefix: "xrtc-bench-", suffix: ".yml" });
  await Deno.writeTextFile(configFile, benchConfigYaml(o));
  const args = [
    "run",
    "-A",
    ...v8FlagsArg([...START_V8_FLAGS, ...run.extraV8Flags ?? []]),
    "main.ts",
    "--config",
    configFile,
    ...(run.takeover ? ["--takeover"] : []),
  ];
  const p = await spawn(args, /^xrtc: ready/, {
    stderr: run.log,
    env: { XRTC_LOG: run.log ? "info" : "error" },
  });
  return Object.assign(p, { configFile });
}
