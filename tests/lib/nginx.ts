// Debian's nginx with the project's shipped front configuration (deploy/nginx/xrtc.conf), inside the
// front's namespace, with its own pid, logs and temporary files.
import { run, stopChild, waitFor } from "./run.ts";

const SHIPPED = new URL("../../deploy/nginx/xrtc.conf", import.meta.url).pathname;

export interface Nginx {
  errorLog: string;
  stop(): Promise<void>;
}

export async function startNginx(ns: string, check: string): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-nginx-" });
  const errorLog = `${dir}/error.log`;
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${SHIPPED};
}
`,
  );
  await run(["ip", "netns", "exec", ns, "nginx", "-t", "-p", dir, "-c", `${dir}/nginx.conf`, "-e", errorLog]);
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "nginx", "-p", dir, "-c", `${dir}/nginx.conf`, "-e", errorLog],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    await stopChild(child, "SIGQUIT");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitFor("nginx answering", async () => (await fetch(check)).status > 0 || undefined, 10_000, 100);
  } catch (e) {
    const log = await Deno.readTextFile(errorLog).catch(() => "");
    await stop();
    throw new Error(`${e}\n${log}`);
  }
  return { errorLog, stop };
}
