// xrtc: many WebRTC clients on one ICE port in front of Janus.
//   xrtc [--config routes.yml] [--check-config] [--io auto|deno|ffi]
import { ConfigError, loadConfigFile } from "./src/config/load.ts";
import { effectiveConfig } from "./src/config/effective.ts";
import type { Config } from "./src/config/types.ts";
import { describeBackend, type IoBackendChoice } from "./src/io/backend.ts";
import { start } from "./src/app.ts";
import { log } from "./src/telemetry/log.ts";

const USAGE = `usage: xrtc [--config FILE] [--check-config] [--io auto|deno|ffi]
  --config FILE    routes file (default: $XRTC_CONFIG or ./routes.yml)
  --check-config   validate, print the effective configuration, exit
  --io BACKEND     UDP I/O backend: auto, deno (portable) or ffi (batched libc, Linux); also $XRTC_IO`;

const BACKENDS = ["auto", "deno", "ffi"];

function parseArgs(args: string[]): { config: string; check: boolean; io?: IoBackendChoice } {
  let config = Deno.env.get("XRTC_CONFIG") ?? "routes.yml";
  let check = false;
  let io = Deno.env.get("XRTC_IO");
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--config" || a === "-c") config = args[++i] ?? "";
    else if (a.startsWith("--config=")) config = a.slice(9);
    else if (a === "--check-config") check = true;
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
  return { config, check, io: io as IoBackendChoice | undefined };
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
  if (args.check) {
    const inEffect = await describeBackend(args.io ?? config.options.ioBackend);
    console.log(JSON.stringify(effectiveConfig(config, { ioBackend: inEffect }), null, 2));
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
