// The admin listener: /metrics (Prometheus text format), /livez (also /healthz), /readyz (?verbose lists each check),
// /status (JSON) and /status.html (the live status page). Bound to loopback unless configured otherwise,
// a bearer token when configured (for all but the page and the bare probes); its paths are 404 on every
// public listener. No endpoint shows an ICE password, a key or a token.
import type { AdminService } from "../config/types.ts";
import { anyAddress } from "../io/address.ts";
import { log } from "../telemetry/log.ts";

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** What the admin endpoints read from the running xRTC. */
export interface AdminSource {
  metricsText(): Promise<string>;
  readiness(): ReadinessCheck[];
  status(): Promise<unknown>;
}

const PAGE = new URL("./status.html", import.meta.url);
const PROBES = ["/livez", "/healthz", "/readyz"];

/** Constant-time comparison of the bearer token. */
function tokenMatches(header: string | null, token: string): boolean {
  const given = header?.startsWith("Bearer ") ? header.slice(7) : "";
  let diff = given.length ^ token.length;
  for (let i = 0; i < token.length; i++) diff |= (given.charCodeAt(i) || 0) ^ token.charCodeAt(i);
  return diff === 0;
}

export function makeAdminHandler(
  admin: AdminService,
  source: AdminSource,
): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    // The page itself holds no data (it reads /status with the token it is given): served to anyone. So
    // are the bare probes, which say only "ok" or "not ready": a kubelet's probe cannot carry a secret.
    const isPage = url.pathname === "/" || url.pathname === "/status.html";
    const isProbe = PROBES.includes(url.pathname) && !url.searchParams.has("verbose");
    if (
      admin.token !== undefined && !isPage && !isProbe &&
      !tokenMatches(req.headers.get("authorization"), admin.token)
    ) {
      return new Response("unauthorized\n", {
        status: 401,
        headers: { "www-authenticate": 'Bearer realm="xrtc"' },
      });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    try {
      switch (url.pathname) {
        case "/metrics":
          return new Response(await source.metricsText(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        case "/livez":
        case "/healthz": // the older name, which many load balancers and probes default to
          return new Response("ok\n", { headers: { "content-type": "text/plain" } });
        case "/readyz": {
          const checks = source.readiness();
          const ready = checks.every((c) => c.ok);
          const body = url.searchParams.has("verbose")
            ? checks.map((c) =>
              `[${c.ok ? "+" : "-"}]${c.name} ${c.ok ? "ok" : "failed"}${c.detail ? `: ${c.detail}` : ""}`
            ).join("\n") +
              `\nreadyz check ${ready ? "passed" : "failed"}\n`
            : ready
            ? "ok\n"
            : "not ready\n";
          return new Response(body, { status: ready ? 200 : 503, headers: { "content-type": "text/plain" } });
        }
        case "/status":
        case "/status.json":
          return new Response(JSON.stringify(await source.status()), {
            headers: { "content-type": "application/json", "cache-control": "no-store" },
          });
        case "/":
        case "/status.html":
          return new Response(await Deno.readFile(PAGE), {
            headers: { "content-type": "text/html; charset=utf-8" },
          });
        default:
          return new Response("not found\n", { status: 404 });
      }
    } catch (e) {
      log("error", "admin_error", { path: url.pathname, error: e });
      return new Response("internal error\n", { status: 500 });
    }
  };
}

export class AdminListener {
  #server?: Deno.HttpServer;
  #stopped = false;
  constructor(readonly admin: AdminService, readonly source: AdminSource) {}

  start(): Deno.NetAddr {
    const handler = makeAdminHandler(this.admin, this.source);
    const server = Deno.serve({
      hostname: this.admin.addr.host || anyAddress(4),
      port: this.admin.addr.port,
      reusePort: true,
      onListen: () => {},
      onError: () => new Response("internal error\n", { status: 500 }),
    }, handler);
    this.#server = server;
    // Deno.serve's accept loop ends for good on an accept error (EMFILE): a new server takes over.
    server.finished.catch((e) => {
      if (this.#stopped || this.#server !== server) return;
      log("error", "admin_listener_restarted", { error: e });
      setTimeout(() => {
        if (!this.#stopped) this.start();
      }, 100);
    });
    return server.addr as Deno.NetAddr;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#server?.shutdown().catch(() => {});
  }
}
