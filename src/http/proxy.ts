// Reverse proxy of HTTP requests to the route's upstream. For the Janus route every JSON body in both
// directions goes through the signalling module (which decides which backend a request goes to, and acts
// on Janus's reply); other routes are streamed untouched. Every phase has a deadline: the request body,
// the upstream's response headers and body; the upstream request is cancelled when the client goes away.
import { linkSignals } from "./signals.ts";
import type { HttpConfig } from "../config/types.ts";
import {
  type ClientContext,
  idOf,
  isObject,
  type JanusSignalling,
  type Json,
  type Pending,
  rewriteJanusText,
} from "../signalling/janus.ts";
import type { BackendPool, BackendState } from "../signalling/backends.ts";
import { guardedStream, readBody } from "./body.ts";
import { type ClusterDeps, forwardToNode } from "./forward.ts";
import { fetchHeaders } from "./fetch_headers.ts";
import { FORWARDED_BY } from "../signalling/directory.ts";
import { httpRefused, upstreamRequests } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
];

/** Largest Janus JSON reply xRTC will parse (a long-poll array of maxev events with SDPs). */
const MAX_JANUS_RESPONSE = 8 * 1024 * 1024;

export interface ClientInfo {
  /** The client's address (after trusted proxies). */
  remoteHost: string;
  /** The address the connection came from (a trusted proxy's, or the client's). */
  peerHost: string;
  proto: "http" | "https";
  host: string;
}

export function jsonResponse(status: number, body: Json, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json", "access-control-allow-origin": "*", ...headers },
  });
}

export function forwardedHeaders(src: Headers, client: ClientInfo): Headers {
  const h = new Headers(src);
  for (const name of HOP_BY_HOP) h.delete(name);
  const prior = src.get("x-forwarded-for");
  h.set("x-forwarded-for", prior ? `${prior}, ${client.peerHost}` : client.peerHost);
  h.set("x-forwarded-proto", client.proto);
  h.set("x-forwarded-host", client.host);
  return h;
}

function responseHeaders(src: Headers): Headers {
  const h = new Headers(src);
  for (const name of HOP_BY_HOP) h.delete(name);
  return h;
}

export interface ProxyDeps {
  http: HttpConfig;
  pool: BackendPool;
  client: Deno.HttpClient;
  signalling?: JanusSignalling;
  route: { icedirect: boolean; icetcp: boolean };
  /** Aborted when xRTC stops: in-flight upstream requests (long-polls) end at once. */
  shutdown: AbortSignal;
  /** Several nodes: requests for sessions another node holds go there. */
  cluster?: ClusterDeps;
}

/** The path after /janus: session and handle ids, "info", or something Janus has no such path for. */
export function janusPath(pathname: string): { sessionId?: string; handleId?: string; bad: boolean } {
  const parts = pathname.split("/").filter(Boolean);
  const at = parts.indexOf("janus");
  const rest = at >= 0 ? parts.slice(at + 1) : parts;
  if (rest.length === 0 || (rest.length === 1 && rest[0] === "info")) return { bad: false };
  const sessionId = idOf(rest[0]);
  const handleId = rest.length > 1 ? idOf(rest[1]) : undefined;
  return {
    sessionId,
    handleId,
    bad: sessionId === undefined || (rest.length > 1 && handleId === undefined) || rest.length > 2,
  };
}

function tooLarge(limit: number): Response {
  httpRefused.inc({ reason: "body_too_large" });
  return jsonResponse(413, { error: "request body too large", limit });
}

function bodyTimeout(): Response {
  httpRefused.inc({ reason: "body_timeout" });
  return jsonResponse(408, { error: "request body too slow" }, { connection: "close" });
}

export async function proxyHttp(
  req: Request,
  url: URL,
  client: ClientInfo,
  deps: ProxyDeps,
): Promise<Response> {
  const { http } = deps;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > http.maxBodyBytes) return tooLarge(http.maxBodyBytes);
  const { signal, dispose } = linkSignals(req.signal, deps.shutdown);
  if (deps.signalling) {
    try {
      return await proxyJanus(req, url, client, deps, deps.signalling, signal);
    } finally {
      dispose();
    }
  }
  // Another route: streamed both ways, under the body limit and idle deadlines.
  const guard = req.body ? guardedStream(http.maxBodyBytes, http.bodyTimeoutMs) : undefined;
  const backend = deps.pool.candidates()[0];
  if (!backend) return jsonResponse(502, { error: "no upstream server for this route" });
  const result = await fetchUpstream(
    backend,
    url.pathname + url.search,
    {
      method: req.method,
      headers: forwardedHeaders(req.headers, client),
      body: guard ? req.body!.pipeThrough(guard.stream) : null,
    },
    http.responseHeaderTimeoutMs,
    deps.client,
    signal,
  );
  // From here the body streams to the client: its end (or the client's) ends the upstream body.
  dispose();
  if ("error" in result) {
    if (guard?.exceeded()) return tooLarge(http.maxBodyBytes);
    return upstreamFailure(result.error, deps.shutdown);
  }
  const upstream = result.response;
  const out = upstream.body
    ? upstream.body.pipeThrough(guardedStream(Number.MAX_SAFE_INTEGER, http.bodyTimeoutMs).stream)
    : null;
  return new Response(out, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: responseHeaders(upstream.headers),
  });
}

async function proxyJanus(
  req: Request,
  url: URL,
  client: ClientInfo,
  deps: ProxyDeps,
  sig: JanusSignalling,
  signal: AbortSignal,
): Promise<Response> {
  const { http } = deps;
  const path = janusPath(url.pathname);
  const ctx: ClientContext = {
    protocol: "http",
    client: client.remoteHost,
    route: deps.route,
    pool: deps.pool,
    sessionId: path.sessionId,
    handleId: path.handleId,
  };
  if (path.bad) return verdictResponse(sig.refuse("bad_id", ctx, "other", undefined));
  const hasBody = req.method === "POST" ||
    (req.body !== null && req.method !== "GET" && req.method !== "HEAD");
  if (
    deps.cluster && path.sessionId !== undefined && !sig.sessions.get(path.sessionId) &&
    !req.headers.has(FORWARDED_BY)
  ) {
    return await viaOwner(req, url, client, deps, deps.cluster, ctx, sig, path.sessionId, hasBody, signal);
  }
  let body: string | null = null;
  let backends: BackendState[];
  let pending: Pending | undefined;
  if (hasBody) {
    const read = await readBody(req.body, http.maxBodyBytes, http.bodyTimeoutMs, signal);
    if ("error" in read) {
      if (read.error === "too_large") return tooLarge(http.maxBodyBytes);
      if (read.error === "timeout") return bodyTimeout();
      return jsonResponse(499, { error: "client went away" });
    }
    body = new TextDecoder().decode(read.bytes);
    let parsed: Json | undefined;
    try {
      parsed = body.length ? JSON.parse(body) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!isObject(parsed)) return verdictResponse(sig.refuse("bad_json", ctx, "other", undefined));
    const verdict = sig.fromClient(parsed, ctx);
    if (verdict.action === "reply") return verdictResponse(verdict);
    if (verdict.changed) body = JSON.stringify(parsed);
    backends = verdict.backends;
    pending = verdict.pending;
  } else if (path.sessionId !== undefined) {
    // A long-poll for a session's events (GET /janus/<session>), or another request of a session.
    const target = sig.poll(path.sessionId, client.remoteHost);
    if ("action" in target) return verdictResponse(target);
    backends = [target.session.backend];
  } else backends = deps.pool.candidates();
  if (backends.length === 0) {
    if (pending) sig.replied(pending, undefined, undefined);
    return jsonResponse(502, { error: "no upstream server for this route" });
  }
  const headers = forwardedHeaders(req.headers, client);
  // A request of an existing session goes only to its server; a new one tries the next on failure.
  const headerTimeout = path.sessionId === undefined ? http.dialTimeoutMs : http.responseHeaderTimeoutMs;
  let lastError = "";
  for (const backend of backends) {
    const result = await fetchUpstream(
      backend,
      url.pathname + url.search,
      { method: req.method, headers, body },
      headerTimeout,
      deps.client,
      signal,
    );
    if ("error" in result) {
      lastError = result.error;
      if (signal.aborted) break;
      continue;
    }
    const upstream = result.response;
    const type = upstream.headers.get("content-type") ?? "application/json";
    if (!/json|text/.test(type)) {
      if (pending) sig.replied(pending, undefined, backend);
      return new Response(upstream.body, {
        status: upstream.status,
        headers: responseHeaders(upstream.headers),
      });
    }
    const raw = await readBody(upstream.body, MAX_JANUS_RESPONSE, http.bodyTimeoutMs, signal);
    if ("error" in raw) {
      upstreamRequests.inc({ backend: backend.name, outcome: "error" });
      if (pending) sig.replied(pending, undefined, backend);
      return jsonResponse(502, {
        error: `upstream response ${raw.error === "too_large" ? "too large" : "incomplete"}`,
      });
    }
    const text = new TextDecoder().decode(raw.bytes);
    if (pending) {
      let reply: Json | undefined;
      try {
        reply = JSON.parse(text);
      } catch {
        reply = undefined;
      }
      sig.replied(pending, reply, backend);
      // A new session is in the cluster's directory before its client can name it to another node.
      const created = pending.kind === "create" && isObject(reply) && isObject(reply.data)
        ? idOf(reply.data.id)
        : undefined;
      if (created && deps.cluster) await deps.cluster.directory.published(created);
    }
    // A long-poll event that is swallowed becomes a keepalive, which janus.js ignores.
    const out = rewriteJanusText(
      text,
      sig,
      { sessionId: path.sessionId, handleId: path.handleId },
      JSON.stringify({ janus: "keepalive" }),
    );
    return new Response(out, { status: upstream.status, headers: responseHeaders(upstream.headers) });
  }
  if (pending) sig.replied(pending, undefined, undefined);
  return upstreamFailure(lastError, deps.shutdown);
}

/** A request of a session this node does not hold: served by the node that holds it. */
async function viaOwner(
  req: Request,
  url: URL,
  client: ClientInfo,
  deps: ProxyDeps,
  cluster: ClusterDeps,
  ctx: ClientContext,
  sig: JanusSignalling,
  sessionId: string,
  hasBody: boolean,
  signal: AbortSignal,
): Promise<Response> {
  const kind = hasBody ? "other" : "poll";
  const owner = await cluster.directory.locate(sessionId);
  if (owner.where === "unknown") {
    return verdictResponse(sig.refuse("unknown_session", ctx, kind, undefined, undefined, sessionId));
  }
  if (owner.where !== "node") {
    const detail = owner.where === "node_gone"
      ? `the node holding this session (${owner.node}) is not answering`
      : "the cluster directory is unreachable";
    return verdictResponse(sig.refuse("cluster_unavailable", ctx, kind, undefined, detail, sessionId));
  }
  let body: string | null = null;
  if (hasBody) {
    const read = await readBody(req.body, deps.http.maxBodyBytes, deps.http.bodyTimeoutMs, signal);
    if ("error" in read) {
      if (read.error === "too_large") return tooLarge(deps.http.maxBodyBytes);
      if (read.error === "timeout") return bodyTimeout();
      return jsonResponse(499, { error: "client went away" });
    }
    body = new TextDecoder().decode(read.bytes);
  }
  const result = await forwardToNode(
    owner,
    url.pathname + url.search,
    { method: req.method, headers: forwardedHeaders(req.headers, client), body },
    "http",
    sessionId,
    cluster,
    signal,
  );
  if ("error" in result) {
    if (deps.shutdown.aborted) return jsonResponse(503, { error: "xRTC is shutting down" });
    return verdictResponse(
      sig.refuse(
        "cluster_unavailable",
        ctx,
        kind,
        undefined,
        `node ${owner.node}: ${result.error}`,
        sessionId,
      ),
    );
  }
  const upstream = result.response;
  const out = upstream.body
    ? upstream.body.pipeThrough(guardedStream(MAX_JANUS_RESPONSE, deps.http.bodyTimeoutMs).stream)
    : null;
  return new Response(out, { status: upstream.status, headers: responseHeaders(upstream.headers) });
}

function verdictResponse(v: { reply: Json; status: number; retryAfter?: number }): Response {
  return jsonResponse(v.status, v.reply, v.retryAfter ? { "retry-after": String(v.retryAfter) } : {});
}

function upstreamFailure(error: string, shutdown: AbortSignal): Response {
  if (shutdown.aborted) return jsonResponse(503, { error: "xRTC is shutting down" });
  return jsonResponse(502, { error: "upstream unavailable", reason: error });
}

type UpstreamResult = { response: Response } | { error: string };

/** One upstream request with a deadline for the response headers; counted per backend. */
async function fetchUpstream(
  backend: BackendState,
  pathAndQuery: string,
  init: { method: string; headers: Headers; body: BodyInit | null },
  headerTimeoutMs: number,
  client: Deno.HttpClient,
  signal: AbortSignal,
): Promise<UpstreamResult> {
  const r = await fetchHeaders(backend.backend.httpUrl + pathAndQuery, init, headerTimeoutMs, client, signal);
  if ("response" in r) {
    upstreamRequests.inc({ backend: backend.name, outcome: "ok" });
    return r;
  }
  if (!signal.aborted) {
    upstreamRequests.inc({ backend: backend.name, outcome: r.timedOut ? "timeout" : "error" });
    log("warn", "upstream_error", {
      backend: backend.name,
      path: pathAndQuery.split("?")[0],
      error: r.error,
    });
  }
  return { error: r.error };
}
