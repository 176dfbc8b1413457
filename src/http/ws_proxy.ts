// WebSocket proxy: the client's socket <-> WebSocket clients to Janus backends. The client's upgrade is
// validated and answered first (with the subprotocol the route names), then the upstream is opened;
// messages that arrive meanwhile wait in a bounded queue, and every error path closes both sides. A
// session that lives on another backend gets its own upstream socket, opened when a message names it.
// Frames of the Janus route go through the signalling module both ways; requests wait in a bounded
// table for Janus's reply to take effect. Close codes pass through; a peer that does not read, a frame
// over the limit, or a stalled upstream closes the connection with its RFC 6455 code.
import {
  type ClientContext,
  idOf,
  isObject,
  type JanusSignalling,
  type Json,
  type JsonObject,
  type Pending,
  rewriteJanusText,
} from "../signalling/janus.ts";
import type { BackendPool, BackendState } from "../signalling/backends.ts";
import { type ClientInfo, forwardedHeaders } from "./proxy.ts";
import { type ClusterDeps, forwardToNode } from "./forward.ts";
import { readBody } from "./body.ts";
import { kindOf } from "../signalling/janus_api.ts";
import { upstreamRequests, websockets, websocketsClosed } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

/** Bytes queued towards a peer before the connection is dropped (backpressure). */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** Largest frame either way (text or binary); a Janus message with an SDP is well under this. */
export const MAX_FRAME = 1024 * 1024;
/** Client messages held while the upstream opens. */
const MAX_EARLY = 64;
/** Frames held behind a create's reply while its session is written to the cluster's directory (that
 * takes at most the directory's deadline). */
const MAX_HELD = 1024;
/** A request whose reply has not come within this long is forgotten (its effect never happens). */
const PENDING_TTL_MS = 60_000;
/** RFC 6455 §7.4.1 close codes. */
const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN: 1013,
  BAD_GATEWAY: 1014,
} as const;

export interface WsDeps {
  pool: BackendPool;
  signalling?: JanusSignalling;
  route: { icedirect: boolean; icetcp: boolean };
  dialTimeoutMs: number;
  /** Subprotocols the route names ("ws@x"); empty = any. */
  protocols: string[];
  shutdown: AbortSignal;
  inFlightLimit: number;
  /** Several nodes: messages for sessions another node holds go there, as HTTP requests. */
  cluster?: ClusterDeps;
  /** The route's Janus HTTP path on the other nodes ("/janus"). */
  httpPath: string;
}

/** Close codes a client WebSocket may send to an upstream (WHATWG: 1000 or 3000-4999). */
function upstreamCode(code: number | undefined): number {
  return code !== undefined && (code === 1000 || (code >= 3000 && code <= 4999)) ? code : 1000;
}

/** Close codes xRTC may send to the client (any RFC 6455 code but the reserved 1005/1006/1015). */
function clientCode(code: number | undefined): number {
  if (code === undefined || code === 1005 || code === 1006 || code === 1015 || code < 1000 || code > 4999) {
    return 1000;
  }
  return code;
}

export function proxyWebSocket(req: Request, url: URL, client: ClientInfo, deps: WsDeps): Response {
  const requested = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim()).filter(
    Boolean,
  );
  const protocol = deps.protocols.find((p) => requested.includes(p)) ??
    (deps.protocols.length === 0 ? requested[0] : undefined);
  // The upgrade is validated before anything is opened towards Janus: a failed upgrade leaves nothing.
  let upgraded: Deno.WebSocketUpgrade;
  try {
    upgraded = Deno.upgradeWebSocket(req, protocol ? { protocol } : {});
  } catch (e) {
    return new Response(`bad WebSocket upgrade: ${e instanceof Error ? e.message : e}\n`, { status: 400 });
  }
  new WsSession(upgraded.socket, url, client, deps, protocol ? [protocol] : requested).start();
  return upgraded.response;
}

class WsSession {
  readonly #upstreams = new Map<BackendState, WebSocket>();
  readonly #opening = new Map<BackendState, Promise<WebSocket | undefined>>();
  readonly #pending = new Map<string, Pending>();
  #early: Array<string | ArrayBuffer> = [];
  /** Messages forwarded to other nodes and not answered yet (they count against the in-flight limit). */
  #forwarding = 0;
  /** Frames to the client waiting behind one that waits (#deliver). */
  #held = 0;
  #outbox: Promise<void> = Promise.resolve();
  #primary?: BackendState;
  #closed = false;
  readonly #token = {};
  readonly #sig?: JanusSignalling;
  readonly #ctx: ClientContext;
  #sweeper?: ReturnType<typeof setInterval>;

  constructor(
    readonly socket: WebSocket,
    readonly url: URL,
    readonly client: ClientInfo,
    readonly deps: WsDeps,
    readonly protocols: string[],
  ) {
    this.#sig = deps.signalling;
    this.#ctx = {
      protocol: "ws",
      client: client.remoteHost,
      route: deps.route,
      pool: deps.pool,
      conn: this.#token,
    };
  }

  start(): void {
    websockets.add({}, 1);
    const onShutdown = () => this.#closeAll(CLOSE.GOING_AWAY, "xRTC is shutting down", "shutdown");
    this.deps.shutdown.addEventListener("abort", onShutdown, { once: true });
    this.socket.onmessage = (ev) => this.#safely(() => this.#fromClient(ev.data as string | ArrayBuffer));
    this.socket.onclose = (ev) => {
      this.deps.shutdown.removeEventListener("abort", onShutdown);
      this.#closeAll(ev.code, ev.reason);
    };
    this.socket.onerror = () => this.#closeAll(CLOSE.INTERNAL, "client error");
    this.#sweeper = setInterval(() => this.#expirePending(), PENDING_TTL_MS / 2);
    Deno.unrefTimer(this.#sweeper);
    // The first upstream: where new sessions of this connection are created.
    this.#safely(async () => {
      const candidates = this.deps.pool.candidates();
      for (const b of candidates) {
        const ws = await this.#open(b);
        if (this.#closed) return;
        if (ws) {
          this.#primary = b;
          log("info", "ws_open", { client: this.client.remoteHost, backend: b.name, protocol: ws.protocol });
          const early = this.#early;
          this.#early = [];
          for (const m of early) this.#fromClient(m);
          return;
        }
      }
      this.#closeAll(CLOSE.BAD_GATEWAY, "upstream unavailable", "upstream_unavailable");
    });
  }

  /** No exception from a handler may escape: the connection is closed instead. */
  #safely(f: () => void | Promise<void>): void {
    try {
      const r = f();
      if (r instanceof Promise) r.catch((e) => this.#fail(e));
    } catch (e) {
      this.#fail(e);
    }
  }

  #fail(e: unknown): void {
    log("error", "ws_proxy_error", { client: this.client.remoteHost, error: e });
    this.#closeAll(CLOSE.INTERNAL, "internal error");
  }

  #open(b: BackendState): Promise<WebSocket | undefined> {
    const open = this.#upstreams.get(b);
    if (open) return Promise.resolve(open);
    let opening = this.#opening.get(b);
    if (opening) return opening;
    opening = openWebSocket(
      b.backend.wsUrl + this.url.pathname + this.url.search,
      this.protocols,
      this.deps.dialTimeoutMs,
    )
      .then((ws) => {
        upstreamRequests.inc({ backend: b.name, outcome: "ok" });
        if (this.#closed) {
          ws.close();
          return undefined;
        }
        this.#upstreams.set(b, ws);
        ws.onmessage = (ev) => this.#safely(() => this.#fromUpstream(ev.data as string | ArrayBuffer, b));
        ws.onclose = (ev) => this.#closeAll(ev.code, ev.reason);
        ws.onerror = () => this.#closeAll(CLOSE.BAD_GATEWAY, "upstream error");
        return ws;
      })
      .catch((e) => {
        upstreamRequests.inc({ backend: b.name, outcome: "error" });
        log("warn", "upstream_ws_error", { backend: b.name, error: e });
        return undefined;
      })
      .finally(() => this.#opening.delete(b));
    this.#opening.set(b, opening);
    return opening;
  }

  #tooBig(data: string | ArrayBuffer): boolean {
    const size = typeof data === "string" ? data.length : data.byteLength;
    if (size <= MAX_FRAME) return false;
    websocketsClosed.inc({ reason: "frame_too_large" });
    this.#closeAll(CLOSE.TOO_BIG, "frame too large");
    return true;
  }

  #fromClient(data: string | ArrayBuffer): void {
    if (this.#closed || this.#tooBig(data)) return;
    if (!this.#primary) {
      if (this.#early.length >= MAX_EARLY) {
        websocketsClosed.inc({ reason: "slow_peer" });
        return this.#closeAll(CLOSE.TRY_AGAIN, "too many messages before the upstream opened");
      }
      this.#early.push(data);
      return;
    }
    const sig = this.#sig;
    if (!sig || typeof data !== "string") return this.#send(this.#primary, data);
    let parsed: Json | undefined;
    try {
      parsed = JSON.parse(data);
    } catch {
      parsed = undefined;
    }
    if (!isObject(parsed)) {
      const v = sig.refuse("bad_json", this.#ctx, "other", undefined);
      if (v.action === "reply") this.#sendClient(JSON.stringify(v.reply));
      return;
    }
    const tx = typeof parsed.transaction === "string" ? parsed.transaction : undefined;
    if (tx !== undefined && this.#pending.has(tx)) {
      const v = sig.refuse("duplicate_transaction", this.#ctx, "other", tx);
      if (v.action === "reply") this.#sendClient(JSON.stringify(v.reply));
      return;
    }
    if (this.#pending.size + this.#forwarding >= this.deps.inFlightLimit) {
      const v = sig.refuse("in_flight_limit", this.#ctx, "other", tx);
      if (v.action === "reply") this.#sendClient(JSON.stringify(v.reply));
      return;
    }
    const foreign = this.deps.cluster ? idOf(parsed.session_id) : undefined;
    if (foreign !== undefined && !sig.sessions.get(foreign)) {
      return this.#viaOwner(this.deps.cluster!, sig, parsed, data, foreign);
    }
    const verdict = sig.fromClient(parsed, this.#ctx);
    if (verdict.action === "reply") return this.#sendClient(JSON.stringify(verdict.reply));
    const out = verdict.changed ? JSON.stringify(parsed) : data;
    const backend = verdict.pending.session?.backend ?? this.#primary;
    if (tx !== undefined) this.#pending.set(tx, verdict.pending);
    else sig.replied(verdict.pending, { janus: "ack" }, backend); // no transaction: no reply can be matched
    if (this.#upstreams.has(backend)) return this.#send(backend, out);
    // The session lives on another backend: its own upstream, opened now.
    this.#open(backend).then((ws) => {
      if (ws) this.#send(backend, out);
      else {
        if (tx !== undefined) this.#pending.delete(tx);
        sig.replied(verdict.pending, undefined, backend);
        this.#sendClient(
          JSON.stringify({
            janus: "error",
            transaction: tx ?? "",
            error: { code: 503, reason: "xRTC: this session's Janus is unreachable" },
          }),
        );
      }
    });
  }

  /** A message for a session another node holds: sent there as its HTTP request, the reply returned
   * here. Its events flow where the session lives (the other node's transport). */
  #viaOwner(
    cluster: ClusterDeps,
    sig: JanusSignalling,
    msg: JsonObject,
    text: string,
    sessionId: string,
  ): void {
    const kind = kindOf(msg.janus);
    const tx = msg.transaction;
    const refuse = (reason: "unknown_session" | "cluster_unavailable", detail?: string) =>
      this.#sendClient(JSON.stringify(sig.refuse(reason, this.#ctx, kind, tx, detail, sessionId).reply));
    this.#forwarding++;
    this.#safely(async () => {
      try {
        const owner = await cluster.directory.locate(sessionId);
        if (this.#closed) return;
        if (owner.where === "unknown") return refuse("unknown_session");
        if (owner.where !== "node") return refuse("cluster_unavailable");
        // A claim moves a session's events to the claiming transport, which must be on its own node.
        if (kind === "claim") {
          return refuse("unknown_session", `this session lives on node ${owner.node}: claim it there`);
        }
        const handleId = idOf(msg.handle_id);
        const result = await forwardToNode(
          owner,
          `${this.deps.httpPath}/${sessionId}${handleId ? `/${handleId}` : ""}`,
          {
            method: "POST",
            headers: forwardedHeaders(new Headers({ "content-type": "application/json" }), this.client),
            body: text,
          },
          "ws",
          sessionId,
          cluster,
          this.deps.shutdown,
        );
        if (this.#closed) return;
        if ("error" in result) return refuse("cluster_unavailable", `node ${owner.node}: ${result.error}`);
        const reply = await readBody(result.response.body, MAX_FRAME, PENDING_TTL_MS, this.deps.shutdown);
        if (this.#closed) return;
        if ("error" in reply) {
          return refuse("cluster_unavailable", `node ${owner.node}: reply ${reply.error}`);
        }
        this.#deliver(new TextDecoder().decode(reply.bytes).trim());
      } finally {
        this.#forwarding--;
      }
    });
  }

  #send(b: BackendState, data: string | ArrayBuffer): void {
    const ws = this.#upstreams.get(b);
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      websocketsClosed.inc({ reason: "slow_peer" });
      return this.#closeAll(CLOSE.TRY_AGAIN, "upstream too slow");
    }
    ws.send(data);
  }

  #sendClient(data: string | ArrayBuffer): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED) {
      websocketsClosed.inc({ reason: "slow_peer" });
      return this.#closeAll(CLOSE.TRY_AGAIN, "client too slow");
    }
    this.socket.send(data);
  }

  #fromUpstream(data: string | ArrayBuffer, from: BackendState): void {
    if (this.#closed || this.#tooBig(data)) return;
    const sig = this.#sig;
    if (!sig || typeof data !== "string") return this.#deliver(data);
    let published: Promise<void> | undefined;
    // A reply to a request that is waiting: Janus's decision takes effect now.
    if (this.#pending.size > 0) {
      try {
        const r = JSON.parse(data) as Json;
        if (isObject(r) && typeof r.transaction === "string") {
          const p = this.#pending.get(r.transaction);
          // "ack" only acknowledges an asynchronous request; its event or error comes later.
          if (p && !(r.janus === "ack" && p.kind === "message")) {
            this.#pending.delete(r.transaction);
            sig.replied(p, r, from);
            // A new session is in the cluster's directory before its client can name it elsewhere.
            const created = p.kind === "create" && isObject(r.data) ? idOf(r.data.id) : undefined;
            if (created && this.deps.cluster) published = this.deps.cluster.directory.published(created);
          }
        }
      } catch { /* not JSON: passed on as is */ }
    }
    const out = rewriteJanusText(data, sig, {}, undefined);
    if (out !== undefined) this.#deliver(out, published);
  }

  /** Sends to the client in Janus's order: a frame that waits (a create's reply, until the session is in
   * the cluster's directory) holds back the frames after it. */
  #deliver(data: string | ArrayBuffer, wait?: Promise<void>): void {
    if (!wait && this.#held === 0) return this.#sendClient(data);
    if (this.#held >= MAX_HELD) {
      websocketsClosed.inc({ reason: "slow_peer" });
      return this.#closeAll(CLOSE.TRY_AGAIN, "too many frames waiting");
    }
    this.#held++;
    this.#outbox = this.#outbox.then(() => wait).then(() => this.#sendClient(data)).catch((e) =>
      this.#fail(e)
    )
      .finally(() => this.#held--);
  }

  #expirePending(): void {
    const now = Date.now();
    for (const [tx, p] of this.#pending) {
      if (now - p.at > PENDING_TTL_MS) {
        this.#pending.delete(tx);
        this.#sig?.replied(p, undefined, undefined);
      }
    }
  }

  #closeAll(code: number | undefined, reason: string, counted?: "upstream_unavailable" | "shutdown"): void {
    if (this.#closed) return;
    this.#closed = true;
    if (counted) websocketsClosed.inc({ reason: counted });
    clearInterval(this.#sweeper);
    websockets.add({}, -1);
    const text = reason.slice(0, 120);
    try {
      if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
        this.socket.close(clientCode(code), text);
      }
    } catch { /* already closing */ }
    for (const ws of this.#upstreams.values()) {
      try {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
          ws.close(upstreamCode(code), text);
        }
      } catch { /* already closing */ }
    }
    for (const p of this.#pending.values()) this.#sig?.replied(p, undefined, undefined);
    this.#pending.clear();
    this.#early = [];
    this.#sig?.sessions.connectionClosed(this.#token);
  }
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
      try {
        ws.close();
      } catch { /* closed */ }
      reject(new Error(`cannot connect to ${url}: ${(e as ErrorEvent).message ?? "error"}`));
    };
  });
}
