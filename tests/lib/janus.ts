// Starts Debian's Janus with the project's own config (tests/janus/) inside the server namespace.
import { run, sleep, waitFor } from "./run.ts";
import type { Topology } from "./topology.ts";

export interface JanusOptions {
  iceTcp?: boolean;
  fullTrickle?: boolean;
  iceLite?: boolean;
}

export interface Janus {
  httpUrl: string;
  wsUrl: string;
  logFile: string;
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
    .replaceAll("@ADDR@", t.janusAddr)
    .replaceAll("@ICE_TCP@", String(opts.iceTcp ?? false))
    .replaceAll("@ICE_LITE@", String(opts.iceLite ?? false))
    .replaceAll("@FULL_TRICKLE@", String(opts.fullTrickle ?? false));
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
