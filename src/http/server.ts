// The HTTP side of a listener: servername matching like nginx, then routes by hosts, WebSocket
// subprotocol (protos) and longest path prefix; unrouted requests get static files. Admin paths are
// never served on a public listener. No exception from a handler reaches the connection.
import type { HttpConfig, ListenerService, RouteConfig, WhipEndpoint } from "../config/types.ts";
import type { JanusSignalling } from "../signalling/janus.ts";
import type { BackendPool } from "../signalling/backends.ts";
import { type Cidr, cidrContains } from "../io/address.ts";
import { type ClientInfo, jsonResponse, proxyHttp } from "./proxy.ts";
import { proxyWebSocket } from "./ws_proxy.ts";
import type { ClusterDeps } from "./forward.ts";
import { notFound, StaticFiles } from "./static.ts";
import { httpErrors, httpRefused } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

interface PreparedRoute {
  route: RouteConfig;
  pool: BackendPool;
  /** Subprotocols named by "ws@x" in protos; "ws" alone matches any WebSocket. */
  wsProtocols: string[];
  anyWs: boolean;
}

/** Where a request came from: the address of the TCP peer, and whether it came over TLS. */
export interface ConnInfo {
  peerHost: string;
  tls: boolean;
}

export type HttpHandler = (req: Request, info: ConnInfo) => Promise<Response>;

/** Paths of the admin listener: answered 404 on every public listener. */
export const ADMIN_PATHS = [
  "/metrics",
  "/livez",
  "/healthz",
  "/readyz",
  "/status",
  "/status.json",
  "/status.html",
];

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

/** The client's address: the TCP peer's, or, when the peer is a trusted proxy, the right-most address
 * of X-Forwarded-For that is not a trusted proxy. */
export function clientAddress(peer: string, forwardedFor: string | null, trusted: Cidr[]): string {
  if (!trusted.some((c) => cidrContains(c, peer)) || !forwardedFor) return peer;
  const hops = forwardedFor.split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted.some((c) => cidrContains(c, hops[i]))) return hops[i].slice(0, 64);
  }
  return peer;
}

/** The WHIP front-end (RFC 9725): a request under one of the listener's WHIP endpoints. */
export type WhipHandler = (
  req: Request,
  url: URL,
  client: ClientInfo,
  endpoint: WhipEndpoint,
  http: HttpConfig,
) => Promise<Response>;

/** The WHIP endpoint whose path is the request's path or a prefix of it. */
export function whipEndpointOf(endpoints: WhipEndpoint[], path: string): WhipEndpoint | undefined {
  return endpoints.find((w) => path === w.path || path.startsWith(`${w.path}/`));
}

export interface HandlerDeps {
  /** WHIP endpoints are served only where this is given. */
  whip?: WhipHandler;
  pools: (route: RouteConfig) => BackendPool;
  signalling: JanusSignalling;
  shutdown: AbortSignal;
  trustedProxies: Cidr[];
  inFlightPerWebSocket: number;
  /** Several nodes: requests for sessions another node holds are served there. */
  cluster?: ClusterDeps;
}

export function makeHttpHandler(listener: ListenerService, deps: HandlerDeps): HttpHandler {
  const http: HttpConfig = listener.http;
  const routes: PreparedRoute[] = http.routes.map((route) => {
    const ws = route.protos.filter((p) => p.startsWith("ws"));
    return {
      route,
      pool: deps.pools(route),
      wsProtocols: ws.filter((p) => p.includes("@")).map((p) => p.slice(p.indexOf("@") + 1)),
      anyWs: ws.some((p) => !p.includes("@")),
    };
  });
  const files = new StaticFiles(http.root);
  const client = Deno.createHttpClient({ poolIdleTimeout: http.idleConnTimeoutMs, poolMaxIdlePerHost: 64 });

  const handle = async (req: Request, info: ConnInfo): Promise<Response> => {
    const url = new URL(req.url);
    if (ADMIN_PATHS.includes(url.pathname)) {
      httpRefused.inc({ reason: "admin_path" });
      return notFound();
    }
    const hostHeader = req.headers.get("host") ?? url.host;
    const host = hostOnly(hostHeader);
    if (!nameMatches(http.servernames, host)) {
      httpRefused.inc({ reason: "unknown_servername" });
      return new Response("unknown server name\n", { status: 421 });
    }
    const isWs = (req.headers.get("upgrade") ?? "").toLowerCase() === "websocket";
    const requested = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim())
      .filter(Boolean);
    const route = pickRoute(routes, host, url.pathname, isWs, requested);
    const clientInfo: ClientInfo = {
      remoteHost: clientAddress(info.peerHost, req.headers.get("x-forwarded-for"), deps.trustedProxies),
      peerHost: info.peerHost,
      proto: info.tls ? "https" : "http",
      host: hostHeader,
    };
    const whip = isWs ? undefined : whipEndpointOf(http.whip, url.pathname);
    if (whip && deps.whip) return await deps.whip(req, url, clientInfo, whip, http);
    if (!route) {
      if (isWs) return new Response("no route for this WebSocket\n", { status: 404 });
      return await files.serve(req, url.pathname);
    }
    const janus = route.route.tag === "janus";
    const routeMode = { icedirect: route.route.icedirect, icetcp: route.route.icetcp };
    if (isWs) {
      return proxyWebSocket(req, url, clientInfo, {
        pool: route.pool,
        signalling: janus ? deps.signalling : undefined,
        route: routeMode,
        dialTimeoutMs: http.dialTimeoutMs,
        protocols: route.wsProtocols,
        shutdown: deps.shutdown,
        inFlightLimit: deps.inFlightPerWebSocket,
        cluster: janus ? deps.cluster : undefined,
        httpPath: route.route.paths.find((p) => p !== "/") ?? "/janus",
      });
    }
    return await proxyHttp(req, url, clientInfo, {
      http,
      pool: route.pool,
      client,
      signalling: janus ? deps.signalling : undefined,
      route: routeMode,
      shutdown: deps.shutdown,
      cluster: janus ? deps.cluster : undefined,
    });
  };

  return async (req, info) => {
    try {
      return await handle(req, info);
    } catch (e) {
      httpErrors.inc();
      log("error", "http_handler_error", {
        listener: listener.name,
        path: new URL(req.url).pathname,
        error: e,
      });
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
