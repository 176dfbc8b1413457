// Debian's redis-server for the cluster tests: in memory only (no dump, no append-only file), on the
// address it is given, optionally inside a network namespace.
import { stopChild, waitFor } from "./run.ts";

export interface Redis {
  url: string;
  stop(): Promise<void>;
}

export async function startRedis(
  host: string,
  port: number,
  o: { password?: string; netns?: string } = {},
): Promise<Redis> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-redis-" });
  const args = [
    "--port",
    String(port),
    "--bind",
    host,
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--protected-mode",
    "no",
    ...(o.password ? ["--requirepass", o.password] : []),
  ];
  const cmd = o.netns ? ["ip", "netns", "exec", o.netns, "redis-server", ...args] : ["redis-server", ...args];
  const child = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const stop = async () => {
    await stopChild(child);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitFor(
      "redis-server listening",
      async () => {
        if (exited) throw new Error("redis-server exited");
        const c = await Deno.connect({ hostname: host, port });
        c.close();
        return true;
      },
      10_000,
      50,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const auth = o.password ? `:${o.password}@` : "";
  return { url: `redis://${auth}${host.includes(":") ? `[${host}]` : host}:${port}`, stop };
}
