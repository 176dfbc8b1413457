// xrtc: many WebRTC clients on one ICE port in front of Janus.
//   xrtc [--config routes.yml] [--check-config] [--io deno|ffi]
import { ConfigError, loadConfigFile } from "./src/config/load.ts";
import { formatDuration } from "./src/config/duration.ts";
import type { Config, IoBackend } from "./src/config/types.ts";
import { start } from "./src/app.ts";
import { log } from "./src/log.ts";

const USAGE = `usage: xrtc [--config FILE] [--check-config] [--io deno|ffi]
  --config FILE    routes file (default: $XRTC_CONFIG or ./routes.yml)
  --check-config   validate, print the effective configuration, exit
  --io BACKEND     UDP I/O backend: deno (portable) or ffi (batched libc, Linux); also $XRTC_IO`;

function parseArgs(args: string[]): { config: string; check: boolean; io?: IoBackend } {
  let config = Deno.env.get("XRTC_CONFIG") ?? "routes.yml";
  let check = false;
  let io = Deno.env.get("XRTC_IO") as IoBackend | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--config" || a === "-c") config = args[++i] ?? "";
    else if (a.startsWith("--config=")) config = a.slice(9);
    else if (a === "--check-config") check = true;
    else if (a === "--io") io = args[++i] as IoBackend;
    else if (a.startsWith("--io=")) io = a.slice(5) as IoBackend;
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
  if (io !== undefined && io !== "deno" && io !== "ffi") {
    console.error(`xrtc: --io must be "deno" or "ffi", not "${io}"`);
    Deno.exit(2);
  }
  return { config, check, io };
}

/** The effective configuration with defaults filled in, as YAML-compatible JSON. */
function effective(c: Config): unknown {
  return {
    options: {
      io_backend: c.options.ioBackend,
      consent_timeout: formatDuration(c.options.consentTimeoutMs),
      max_sessions: c.options.maxSessions,
      workers: c.options.workers,
    },
    services: Object.fromEntries([
      ...[...c.upstreams.values()].map((
        u,
      ) => [u.name, { proto: "upstream", mode: u.mode, servers: [...u.httpServers, ...u.wsServers] }]),
      ...c.listeners.map((l) => [l.name, {
        proto: l.proto,
        net: {
          addr: `${l.net.addr.host}:${l.net.addr.port}`,
          tls_crt_file: l.net.tlsCrtFile ?? null,
          tls_key_file: l.net.tlsKeyFile ?? null,
          enable_ice: l.proto === "http" ? false : l.net.enableIce,
          candidate_ips: l.net.candidateIps,
        },
        enable_http: l.enableHttp,
        http: {
          servername: l.http.servernames.length ? l.http.servernames : "_",
          root: l.http.root ?? null,
          dial_timeout: formatDuration(l.http.dialTimeoutMs),
          response_header_timeout: formatDuration(l.http.responseHeaderTimeoutMs),
          idle_conn_timeout: formatDuration(l.http.idleConnTimeoutMs),
          keepalive_timeout: formatDuration(l.http.keepaliveTimeoutMs),
          max_body_bytes: l.http.maxBodyBytes,
          routes: Object.fromEntries(l.http.routes.map((r) => [r.tag, {
            upstream: r.upstreamService !== undefined ? `http://${r.upstreamService}` : r.upstreamUrl,
            icedirect: r.icedirect,
            icetcp: r.icetcp,
            hosts: r.hosts,
            protos: r.protos,
            paths: r.paths,
          }])),
        },
      }]),
    ]),
  };
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  let config: Config;
  try {
    const loaded = await loadConfigFile(args.config);
    for (const w of loaded.warnings) console.error(`xrtc: warning: ${w}`);
    config = loaded.config;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`xrtc: ${e.problems.length} configuration error(s):`);
      for (const p of e.problems) console.error(`  ${p}`);
      Deno.exit(1);
    }
    throw e;
  }
  // A relative http.root is relative to the config file.
  const dir = args.config.includes("/") ? args.config.slice(0, args.config.lastIndexOf("/")) : ".";
  for (const l of config.listeners) {
    if (l.http.root && !l.http.root.startsWith("/")) l.http.root = `${dir}/${l.http.root}`;
  }
  if (args.check) {
    console.log(JSON.stringify(effective(config), null, 2));
    console.log(`xrtc: ${args.config}: configuration OK`);
    Deno.exit(0);
  }
  let xrtc;
  try {
    xrtc = await start(config, {
      ioBackend: args.io,
      announce: (line) => console.log(line),
      onFatal: (reason) => {
        console.error(`xrtc: ${reason}; exiting so that a supervisor restarts xRTC`);
        Deno.exit(70);
      },
    });
  } catch (e) {
    console.error(`xrtc: cannot start: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
  console.log("xrtc: ready");
  Deno.addSignalListener("SIGHUP", () => {
    log("info", "sighup_reload_tls");
    xrtc.reloadTls();
  });
  const shutdown = async (signal: string) => {
    log("info", "shutdown", { signal });
    await xrtc.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
}
