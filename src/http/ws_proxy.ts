// WebSocket proxy: the client's socket <-> a WebSocket client to the upstream. The upstream is opened
// first so the subprotocol it chose can be passed back; frames of the janus route go through the
// signalling module both ways; close codes are propagated; a peer that does not read is cut off.
import {
  idOf,
  isObject,
  type JanusSignalling,
  type Json,
  rewriteJanusText,
  type SignallingContext,
} from "../signalling/janus.ts";
import type { UpstreamPool } from "./upstream.ts";
import { type ClientInfo, jsonResponse } from "./proxy.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

/** Bytes queued towards a peer before the connection is dropped (backpressure). */
const MAX_BUFFERED = 4 * 1024 * 1024;
const MAX_FRAME = 1024 * 1024;

export interface WsDeps {
  pool: UpstreamPool;
  signalling?: JanusSignalling;
  ctx: SignallingContext;
  dialTimeoutMs: number;
  shutdown: AbortSignal;
}

/** Close codes an endpoint may send itself (RFC 6455 §7.4): 1000, or 3000-4999. */
function sendableCode(code: number | undefined): number {
  return code !== undefined && (code === 1000 || (code >= 3000 && code <= 4999)) ? code : 1000;
}

export async function proxyWebSocket(
  req: Request,
  url: URL,
  client: ClientInfo,
  deps: WsDeps,
): Promise<Response> {
  const requested = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim()).filter(
    Boolean,
  );
  const servers = deps.pool.candidates(true, undefined);
  let upstream: WebSocket | undefined;
  let server = "";
  for (const s of servers) {
    try {
      upstream = await openWebSocket(s + url.pathname + url.search, requested, deps.dialTimeoutMs);
      server = s;
      break;
    } catch (e) {
      counters.inc("upstream_errors");
      log("warn", "upstream_ws_error", { server: s, error: e });
    }
  }
  if (!upstream) return jsonResponse(502, { error: "upstream unavailable" });
  const up = upstream;
  const { socket, response } = Deno.upgradeWebSocket(req, up.protocol ? { protocol: up.protocol } : {});
  const sessions = new Set<string>();
  const pending = new Map<string, string>(); // transaction -> janus request
  const sig = deps.signalling;
  const ctx = deps.ctx;
  log("info", "ws_open", { client: client.remoteHost, server, protocol: up.protocol });

  const closeBoth = (code: number | undefined, reason: string) => {
    for (const ws of [socket, up]) {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        try {
          ws.close(sendableCode(code), reason.slice(0, 120));
        } catch { /* already closing */ }
      }
    }
  };
  const sendTo = (ws: WebSocket, data: string | ArrayBuffer) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      counters.inc("ws_dropped_slow_peer");
      closeBoth(1013, "peer too slow");
      return;
    }
    ws.send(data);
  };

  socket.onmessage = (ev) => {
    let data = ev.data as string | ArrayBuffer;
    if (typeof data === "string" && data.length > MAX_FRAME) {
      counters.inc("ws_frame_too_large");
      closeBoth(1009, "frame too large");
      return;
    }
    if (sig && typeof data === "string") {
      let parsed: Json | undefined;
      try {
        parsed = JSON.parse(data);
      } catch {
        parsed = undefined;
      }
      if (isObject(parsed)) {
        const sid = idOf(parsed.session_id);
        if (sid) sessions.add(sid);
        if (parsed.janus === "create" && typeof parsed.transaction === "string") {
          pending.set(parsed.transaction, "create");
        }
        const verdict = sig.fromClient(parsed, { ...ctx, sessionId: undefined, handleId: undefined });
        if (verdict.action === "reply") {
          sendTo(socket, JSON.stringify(verdict.reply));
          return;
        }
        if (verdict.changed) data = JSON.stringify(parsed);
      }
    }
    sendTo(up, data);
  };
  up.onmessage = (ev) => {
    let data = ev.data as string | ArrayBuffer;
    if (sig && typeof data === "string") {
      // Pin sessions created over this socket to its server, for the HTTP requests that may follow.
      if (pending.size > 0) {
        try {
          const r = JSON.parse(data) as Json;
          if (isObject(r) && typeof r.transaction === "string" && pending.has(r.transaction)) {
            pending.delete(r.transaction);
            const id = isObject(r.data) ? idOf(r.data.id) : undefined;
            if (id) {
              sessions.add(id);
              deps.pool.pin(false, id, server.replace(/^ws/, "http"));
            }
          }
        } catch { /* not JSON */ }
      }
      const out = rewriteJanusText(data, sig, ctx, undefined);
      if (out === undefined) return;
      data = out;
    }
    sendTo(socket, data);
  };
  const onShutdown = () => closeBoth(1001, "xRTC is shutting down");
  deps.shutdown.addEventListener("abort", onShutdown, { once: true });
  socket.onclose = (ev) => {
    deps.shutdown.removeEventListener("abort", onShutdown);
    closeBoth(ev.code, ev.reason);
  };
  up.onclose = (ev) => closeBoth(ev.code, ev.reason);
  socket.onerror = () => closeBoth(1011, "client error");
  up.onerror = () => closeBoth(1011, "upstream error");
  return response;
}

function openWebSocket(url: string, protocols: string[], timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`no answer from ${url} in ${timeoutMs} ms`));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onerror = (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${url}: ${(e as ErrorEvent).message ?? "error"}`));
    };
  });
}
