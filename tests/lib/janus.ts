// Starts Debian's Janus with the project's own config (tests/janus/) inside the server namespace.
import { run, sleep, waitFor } from "./run.ts";
import type { Topology } from "./topology.ts";

export interface JanusOptions {
  iceTcp?: boolean;
  fullTrickle?: boolean;
  iceLite?: boolean;
  /** Janus's session_timeout, seconds (60 unless set). */
  sessionTimeout?: number;
  /** Janus's api_secret: every request must carry it. */
  apiSecret?: string;
  /** Janus's reclaim_session_timeout, seconds: how long a session outlives its WebSocket (0 unless set). */
  reclaimTimeout?: number;
  /** Media on IPv6 only: Janus gathers its one candidate on the server link's ULA (signalling stays on
   * IPv4). */
  ipv6Media?: boolean;
}

/** The admin API's secret in the tests' Janus (admin API on port 7088, server namespace only). */
export const ADMIN_SECRET = "xrtc-test-admin";

export interface Janus {
  httpUrl: string;
  wsUrl: string;
  logFile: string;
  /** A request to Janus's admin API (list_sessions, list_handles, handle_info...). */
  admin(body: Record<string, unknown>, path?: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

const LIB = "/usr/lib/x86_64-linux-gnu/janus";
const CONF_DIR = new URL("../janus/", import.meta.url).pathname;

export async function startJanus(t: Topology, opts: JanusOptions = {}): Promise<Janus> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-janus-" });
  for await (const e of Deno.readDir(CONF_DIR)) await Deno.copyFile(CONF_DIR + e.name, `${dir}/${e.name}`);
  const main = (await Deno.readTextFile(`${dir}/janus.jcfg`))
    .replaceAll("@CONF@", dir)
    .replaceAll("@LIB@", LIB)
    .replaceAll("@ADDR@", opts.ipv6Media ? t.janusAddr6 : t.janusAddr)
    .replaceAll("@IPV6@", String(opts.ipv6Media ?? false))
    .replaceAll("@ICE_TCP@", String(opts.iceTcp ?? false))
    .replaceAll("@ICE_LITE@", String(opts.iceLite ?? false))
    .replaceAll("@FULL_TRICKLE@", String(opts.fullTrickle ?? false))
    .replaceAll("@SESSION_TIMEOUT@", String(opts.sessionTimeout ?? 60))
    .replaceAll("@RECLAIM_TIMEOUT@", String(opts.reclaimTimeout ?? 0))
    .replaceAll("@ADMIN_SECRET@", ADMIN_SECRET)
    .replaceAll("@API_SECRET@", opts.apiSecret ? `api_secret = "${opts.apiSecret}"` : "");
  await Deno.writeTextFile(`${dir}/janus.jcfg`, main);
  const logFile = `${dir}/janus.log`;
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", t.serverNs, "janus", "-F", dir, "-L", logFile, "-N"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const httpUrl = `http://${t.janusAddr}:8088`;
  try {
    await waitFor(
      "Janus HTTP API",
      async () => (await fetch(`${httpUrl}/janus/info`)).ok || undefined,
      20_000,
      200,
    );
  } catch (e) {
    child.kill("SIGKILL");
    const log = await Deno.readTextFile(logFile).catch(() => "(no log)");
    throw new Error(`${e}\n--- janus log ---\n${log.slice(-3000)}`);
  }
  return {
    httpUrl,
    wsUrl: `ws://${t.janusAddr}:8188`,
    logFile,
    admin: async (body, path = "") =>
      await (await fetch(`http://${t.janusAddr}:7088/admin${path}`, {
        method: "POST",
        body: JSON.stringify({ transaction: crypto.randomUUID(), admin_secret: ADMIN_SECRET, ...body }),
      })).json(),
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const done = child.status;
      const killed = await Promise.race([done.then(() => true), sleep(3000).then(() => false)]);
      if (!killed) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await done;
      }
      await run(["rm", "-rf", dir], { allowFail: true });
    },
  };
}
