// Starts Debian's Janus with the project's own config (tests/janus/) inside the server namespace.
import { run, stopChild, waitFor } from "./run.ts";
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
  /** A second Janus beside the first in the server namespace: instance 1 listens on ports one above
   * (HTTP 8089, WS 8189, admin 7089) and takes the upper half of the RTP range. */
  instance?: 0 | 1;
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

/** The ports of a Janus instance in the server namespace. */
export function janusPorts(instance: 0 | 1 = 0) {
  return { http: 8088 + instance, ws: 8188 + instance, admin: 7088 + instance };
}

export async function startJanus(t: Topology, opts: JanusOptions = {}): Promise<Janus> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-janus-" });
  const ports = janusPorts(opts.instance);
  for await (const e of Deno.readDir(CONF_DIR)) {
    const text = (await Deno.readTextFile(CONF_DIR + e.name))
      .replaceAll("@HTTP_PORT@", String(ports.http))
      .replaceAll("@WS_PORT@", String(ports.ws))
      .replaceAll("@ADMIN_PORT@", String(ports.admin))
      .replaceAll("@RTP_RANGE@", opts.instance === 1 ? "30000-39999" : "20000-29999");
    await Deno.writeTextFile(`${dir}/${e.name}`, text);
  }
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
  const httpUrl = `http://${t.janusAddr}:${ports.http}`;
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
    wsUrl: `ws://${t.janusAddr}:${ports.ws}`,
    logFile,
    admin: async (body, path = "") =>
      await (await fetch(`http://${t.janusAddr}:${ports.admin}/admin${path}`, {
        method: "POST",
        body: JSON.stringify({ transaction: crypto.randomUUID(), admin_secret: ADMIN_SECRET, ...body }),
      })).json(),
    stop: async () => {
      await stopChild(child);
      await run(["rm", "-rf", dir], { allowFail: true });
    },
  };
}
