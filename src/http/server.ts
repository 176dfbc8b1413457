// The HTTP side of a listener: servername matching like nginx, then routes by hosts, WebSocket
// subprotocol (protos) and longest path prefix; unrouted requests get static files.
import type { Config, HttpConfig, ListenerService, RouteConfig } from "../config/types.ts";
import type { JanusSignalling } from "../signalling/janus.ts";
import { UpstreamPool } from "./upstream.ts";
import { type ClientInfo, jsonResponse, proxyHttp } from "./proxy.ts";
import { proxyWebSocket } from "./ws_proxy.ts";
import { StaticFiles } from "./static.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

interface PreparedRoute {
  route: RouteConfig;
  pool: UpstreamPool;
  /** Subprotocols named by "ws@x" in protos; "ws" alone matches any WebSocket. */
  wsProtocols: string[];
  anyWs: boolean;
}

export type HttpHandler = (req: Request, client: { remoteHost: string; tls: boolean }) => Promise<Response>;

/** Strips the port from a Host header value, lower-cased. */
function hostOnly(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const i = h.lastIndexOf(":");
  return i > 0 ? h.slice(0, i) : h;
}

/** nginx server_name: exact, "*.example.com", "example.*". */
export function nameMatches(patterns: string[], host: string): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) =>
    p === host || (p.startsWith("*.") && host.endsWith(p.slice(1))) ||
    (p.startsWith(".") && (host === p.slice(1) || host.endsWith(p))) ||
    (p.endsWith(".*") && host.startsWith(p.slice(0, -1)))
  );
}

export function makeHttpHandler(
  listener: ListenerService,
  config: Config,
  signalling: JanusSignalling,
  shutdown: AbortSignal,
): HttpHandler {
  const http: HttpConfig = listener.http;
  const routes: PreparedRoute[] = http.routes.map((route) => {
    const ws = route.protos.filter((p) => p.startsWith("ws"));
    return {
      route,
      pool: UpstreamPool.forRoute(route, config.upstreams),
      wsProtocols: ws.filter((p) => p.includes("@")).map((p) => p.slice(p.indexOf("@") + 1)),
      anyWs: ws.some((p) => !p.includes("@")),
    };
  });
  const files = new StaticFiles(http.root);
  const client = Deno.createHttpClient({ poolIdleTimeout: http.idleConnTimeoutMs, poolMaxIdlePerHost: 64 });

  return async (req, info) => {
    const url = new URL(req.url);
    const hostHeader = req.headers.get("host") ?? url.host;
    const host = hostOnly(hostHeader);
    if (!nameMatches(http.servernames, host)) {
      counters.inc("http_unknown_servername");
      return new Response("unknown server name\n", { status: 421 });
    }
    const isWs = (req.headers.get("upgrade") ?? "").toLowerCase() === "websocket";
    const requested = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim())
      .filter(Boolean);
    const route = pickRoute(routes, host, url.pathname, isWs, requested);
    const clientInfo: ClientInfo = {
      remoteHost: info.remoteHost,
      proto: info.tls ? "https" : "http",
      host: hostHeader,
    };
    if (!route) {
      if (isWs) return new Response("no route for this WebSocket\n", { status: 404 });
      return await files.serve(req, url.pathname);
    }
    const janus = route.route.tag === "janus";
    const ctx = { route: { icedirect: route.route.icedirect, icetcp: route.route.icetcp } };
    try {
      if (isWs) {
        return await proxyWebSocket(req, url, clientInfo, {
          pool: route.pool,
          signalling: janus ? signalling : undefined,
          ctx,
          dialTimeoutMs: http.dialTimeoutMs,
          shutdown,
        });
      }
      return await proxyHttp(req, url, clientInfo, {
        http,
        pool: route.pool,
        client,
        signalling: janus ? signalling : undefined,
        ctx,
        shutdown,
      });
    } catch (e) {
      counters.inc("http_proxy_errors");
      log("error", "http_proxy_error", { path: url.pathname, error: e });
      return jsonResponse(502, { error: "proxy error" });
    }
  };
}

function pickRoute(
  routes: PreparedRoute[],
  host: string,
  path: string,
  isWs: boolean,
  requested: string[],
): PreparedRoute | undefined {
  const byHost = routes.filter((r) => r.route.hosts.length === 0 || nameMatches(r.route.hosts, host));
  if (isWs) {
    // A WebSocket whose subprotocol a route names goes there whatever its path (janus.js uses "/").
    const byProto = byHost.filter((r) => r.wsProtocols.some((p) => requested.includes(p)));
    if (byProto.length) return longestPrefix(byProto, path) ?? byProto[0];
  }
  const candidates = byHost.filter((r) =>
    !isWs || r.anyWs || r.wsProtocols.length === 0 || r.route.protos.length === 0
  );
  return longestPrefix(candidates, path);
}

function longestPrefix(routes: PreparedRoute[], path: string): PreparedRoute | undefined {
  let best: PreparedRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    const prefixes = r.route.paths.length ? r.route.paths : ["/"];
    for (const p of prefixes) {
      const matches = path === p || path.startsWith(p.endsWith("/") ? p : p + "/") || p === "/";
      if (matches && p.length > bestLen) [best, bestLen] = [r, p.length];
    }
  }
  return best;
}

export interface TlsFiles {
  cert: string;
  key: string;
}

export async function readTls(listener: ListenerService): Promise<TlsFiles | undefined> {
  const { tlsCrtFile, tlsKeyFile } = listener.net;
  if (!tlsCrtFile || !tlsKeyFile) return undefined;
  return { cert: await Deno.readTextFile(tlsCrtFile), key: await Deno.readTextFile(tlsKeyFile) };
}

/** Serves one http listener on its own port (HTTPS when it has TLS files). SIGHUP reloads the files:
 * a new server takes the port (SO_REUSEPORT) before the old one drains, so no connection is refused. */
export class HttpListener {
  #server?: Deno.HttpServer;
  constructor(readonly listener: ListenerService, readonly handler: HttpHandler) {}

  async start(): Promise<void> {
    const tls = await readTls(this.listener);
    this.#server = this.#serve(tls);
  }

  #serve(tls: TlsFiles | undefined): Deno.HttpServer {
    const { host, port } = this.listener.net.addr;
    return Deno.serve(
      {
        hostname: host || "0.0.0.0",
        port,
        reusePort: true, // lets a TLS reload bind the new server before the old one drains
        ...(tls ?? {}),
        onListen: () => {},
        onError: (e) => {
          counters.inc("http_errors");
          log("error", "http_error", { listener: this.listener.name, error: e });
          return new Response("internal error\n", { status: 500 });
        },
      },
      (req, info) =>
        this.handler(req, { remoteHost: (info.remoteAddr as Deno.NetAddr).hostname, tls: tls !== undefined }),
    );
  }

  async reloadTls(): Promise<void> {
    const tls = await readTls(this.listener);
    if (!tls) return;
    const old = this.#server;
    this.#server = this.#serve(tls);
    await old?.shutdown();
  }

  async stop(): Promise<void> {
    await this.#server?.shutdown();
  }
}
