// Reverse proxy of HTTP requests to the route's upstream. For the `janus` route every JSON body in
// both directions goes through the signalling module; other routes are streamed untouched.
import type { HttpConfig } from "../config/types.ts";
import {
  idOf,
  isObject,
  type JanusSignalling,
  type Json,
  rewriteJanusText,
  type SignallingContext,
} from "../signalling/janus.ts";
import type { UpstreamPool } from "./upstream.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

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
  remoteHost: string;
  proto: "http" | "https";
  host: string;
}

export function jsonResponse(status: number, body: Json): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json", "access-control-allow-origin": "*" },
  });
}

export function forwardedHeaders(src: Headers, client: ClientInfo): Headers {
  const h = new Headers(src);
  for (const name of HOP_BY_HOP) h.delete(name);
  const prior = src.get("x-forwarded-for");
  h.set("x-forwarded-for", prior ? `${prior}, ${client.remoteHost}` : client.remoteHost);
  h.set("x-forwarded-proto", client.proto);
  h.set("x-forwarded-host", client.host);
  return h;
}

/** Reads a body up to `limit` bytes; undefined when it is larger. */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<Uint8Array | undefined> {
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) out.set(c, o), o += c.length;
  return out;
}

/** A stream that errors once more than `limit` bytes went through. */
function limitStream(limit: number): TransformStream<Uint8Array, Uint8Array> {
  let size = 0;
  return new TransformStream({
    transform(chunk, ctl) {
      size += chunk.length;
      if (size > limit) ctl.error(new Error("request body too large"));
      else ctl.enqueue(chunk);
    },
  });
}

export interface ProxyDeps {
  http: HttpConfig;
  pool: UpstreamPool;
  client: Deno.HttpClient;
  signalling?: JanusSignalling;
  ctx: SignallingContext;
  /** Aborted when xRTC stops: in-flight upstream requests (long-polls) end at once. */
  shutdown: AbortSignal;
}

/** The Janus session id of an HTTP request: the first all-digit path segment (/janus/<session>/<handle>). */
export function janusIdsFromPath(pathname: string): { sessionId?: string; handleId?: string } {
  const ids = pathname.split("/").filter((s) => /^\d+$/.test(s));
  return { sessionId: ids[0], handleId: ids[1] };
}

export async function proxyHttp(
  req: Request,
  url: URL,
  client: ClientInfo,
  deps: ProxyDeps,
): Promise<Response> {
  const { http, pool, signalling } = deps;
  const { sessionId, handleId } = janusIdsFromPath(url.pathname);
  const ctx: SignallingContext = { ...deps.ctx, sessionId, handleId };
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > http.maxBodyBytes) {
    counters.inc("http_body_too_large");
    return jsonResponse(413, { error: "request body too large", limit: http.maxBodyBytes });
  }
  let body: BodyInit | null = null;
  let janusRequest: string | undefined;
  if (req.body) {
    if (signalling) {
      const bytes = await readLimited(req.body, http.maxBodyBytes);
      if (bytes === undefined) {
        counters.inc("http_body_too_large");
        return jsonResponse(413, { error: "request body too large", limit: http.maxBodyBytes });
      }
      let text = new TextDecoder().decode(bytes);
      let parsed: Json | undefined;
      try {
        parsed = text.length ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined; // Janus answers malformed JSON itself
      }
      if (isObject(parsed)) {
        janusRequest = typeof parsed.janus === "string" ? parsed.janus : undefined;
        const verdict = signalling.fromClient(parsed, ctx);
        if (verdict.action === "reply") return jsonResponse(200, verdict.reply);
        if (verdict.changed) text = JSON.stringify(parsed);
      }
      body = text;
    } else body = req.body.pipeThrough(limitStream(http.maxBodyBytes));
  }
  const servers = pool.candidates(false, sessionId);
  if (servers.length === 0) return jsonResponse(502, { error: "no upstream server for this route" });
  const headers = forwardedHeaders(req.headers, client);
  // A request of an existing session goes only to its server; a new one tries the next on failure.
  for (const [i, server] of servers.entries()) {
    const target = server + url.pathname + url.search;
    const abort = new AbortController();
    const timeoutMs = sessionId === undefined ? http.dialTimeoutMs : http.responseHeaderTimeoutMs;
    const timer = setTimeout(
      () => abort.abort(new Error(`no response headers in ${timeoutMs} ms`)),
      timeoutMs,
    );
    let upstream: Response;
    try {
      upstream = await fetch(target, {
        method: req.method,
        headers,
        body: typeof body === "string" || body === null ? body : i === 0 ? body : null,
        client: deps.client,
        signal: AbortSignal.any([abort.signal, deps.shutdown]),
        redirect: "manual",
      });
    } catch (e) {
      clearTimeout(timer);
      if (deps.shutdown.aborted) return jsonResponse(503, { error: "xRTC is shutting down" });
      counters.inc("upstream_errors");
      log("warn", "upstream_error", { server, path: url.pathname, error: e });
      if (i + 1 < servers.length && (typeof body === "string" || body === null)) continue;
      return jsonResponse(502, {
        error: "upstream unavailable",
        reason: e instanceof Error ? e.message : String(e),
      });
    }
    clearTimeout(timer);
    const outHeaders = new Headers(upstream.headers);
    for (const name of HOP_BY_HOP) outHeaders.delete(name);
    const type = upstream.headers.get("content-type") ?? "application/json";
    if (!signalling || !/json|text/.test(type)) {
      return new Response(upstream.body, {
        status: upstream.status,
        statusText: upstream.statusText,
        headers: outHeaders,
      });
    }
    const raw = await readLimited(upstream.body, MAX_JANUS_RESPONSE);
    if (raw === undefined) return jsonResponse(502, { error: "upstream response too large" });
    const text = new TextDecoder().decode(raw);
    if (janusRequest === "create" && sessionId === undefined) {
      const id = newSessionId(text);
      if (id) pool.pin(false, id, server);
    }
    // A long-poll event that is swallowed becomes a keepalive, which janus.js ignores.
    const out = rewriteJanusText(text, signalling, ctx, JSON.stringify({ janus: "keepalive" }));
    if (janusRequest === "destroy" && sessionId) pool.unpin(sessionId);
    return new Response(out, { status: upstream.status, headers: outHeaders });
  }
  return jsonResponse(502, { error: "upstream unavailable" });
}

export function newSessionId(text: string): string | undefined {
  try {
    const r = JSON.parse(text) as Json;
    if (isObject(r) && r.janus === "success" && isObject(r.data)) return idOf(r.data.id);
  } catch { /* not JSON */ }
  return undefined;
}
