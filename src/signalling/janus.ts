// Janus signalling: every JSON message in both directions passes here, over HTTP (request bodies, sync
// replies, long-poll events and `maxev` arrays) and WebSocket frames. xRTC acts on Janus's replies, not on
// requests Janus may refuse: a session or handle exists here once Janus has issued it, and hangup, detach,
// destroy and claim take effect when Janus says success. A request naming an id Janus did not issue (to
// this node) is refused here with Janus's own error code, and nothing is kept for it. Messages are changed
// in place only where xRTC must (jsep SDP, trickles); a message that was not changed is forwarded as its
// original text, so unknown fields and large ids survive byte for byte.
import { attrName, parseSdp, SdpError, serializeSdp, stripCandidates } from "../sdp/sdp.ts";
import { CandidateError, parseCandidate } from "../sdp/candidate.ts";
import {
  type Negotiator,
  type RouteMode,
  SdpRejected,
  SessionLimitError,
} from "../ice/negotiation/negotiator.ts";
import {
  idField,
  idJson,
  idOf,
  isObject,
  JanusError,
  janusError,
  jsepType,
  type Json,
  type JsonObject,
  kindOf,
  pluginError,
} from "./janus_api.ts";
import type { BackendPool, BackendState } from "./backends.ts";
import {
  type ConnectionToken,
  type HandleEntry,
  type JanusSessionEntry,
  JanusSessions,
  type RegistryChange,
} from "./sessions.ts";
import type { JanusTimers, Limits } from "../config/types.ts";
import type { Clock } from "../io/clock.ts";
import {
  janusCandidatesDropped,
  janusJsepUnusable,
  type Refusal,
  type SignallingKind,
  signallingRefused,
  signallingRequests,
  trickles,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

export type { Json, JsonObject };
export { idOf, isObject };

/** Where a client's message came from. */
export interface ClientContext {
  protocol: "http" | "ws";
  /** The client's address (after trusted proxies), for limits and logs. */
  client: string;
  route: RouteMode;
  pool: BackendPool;
  /** HTTP: the ids in the request path (already known to be id-shaped). Over WebSocket they come from
   * the message. */
  sessionId?: string;
  handleId?: string;
  /** The proxied WebSocket the message came on. */
  conn?: ConnectionToken;
}

/** A request forwarded to Janus, waiting for Janus's reply to take effect. */
export interface Pending {
  kind: SignallingKind;
  protocol: "http" | "ws";
  client: string;
  route: RouteMode;
  conn?: ConnectionToken;
  session?: JanusSessionEntry;
  handle?: HandleEntry;
  /** A message carrying the client's offer: freed if Janus refuses it. */
  offer?: boolean;
  plugin?: string;
  at: number;
}

/** xRTC answers the client itself. */
export interface Refused {
  action: "reply";
  reply: JsonObject;
  status: number;
  retryAfter?: number;
}

export type ClientVerdict =
  | { action: "forward"; changed: boolean; pending: Pending; backends: BackendState[] }
  | Refused;

/** What to do with a message from Janus. */
export type ServerVerdict = "keep" | "changed" | "drop";

/** Each refusal's Janus error code and HTTP status. */
const REFUSED: Record<Refusal, { code: number; status: number; reason: string; retryAfter?: number }> = {
  bad_json: { code: JanusError.INVALID_JSON, status: 400, reason: "the request is not a JSON object" },
  bad_id: {
    code: JanusError.INVALID_ELEMENT_TYPE,
    status: 400,
    reason: "a session or handle id is not an id",
  },
  unknown_session: { code: JanusError.SESSION_NOT_FOUND, status: 200, reason: "No such session" },
  unknown_handle: {
    code: JanusError.HANDLE_NOT_FOUND,
    status: 200,
    reason: "No such handle in this session",
  },
  session_limit: {
    code: JanusError.UNAVAILABLE,
    status: 503,
    reason: "at the limit of ICE sessions",
    retryAfter: 5,
  },
  janus_session_limit: {
    code: JanusError.UNAVAILABLE,
    status: 503,
    reason: "at the limit of Janus sessions",
    retryAfter: 5,
  },
  client_session_limit: {
    code: JanusError.TOO_MANY_REQUESTS,
    status: 429,
    reason: "too many Janus sessions from this address",
    retryAfter: 10,
  },
  client_session_rate: {
    code: JanusError.TOO_MANY_REQUESTS,
    status: 429,
    reason: "Janus sessions created too fast from this address",
    retryAfter: 1,
  },
  client_ice_limit: {
    code: JanusError.TOO_MANY_REQUESTS,
    status: 429,
    reason: "too many ICE sessions from this address",
    retryAfter: 10,
  },
  handle_limit: {
    code: JanusError.TOO_MANY_REQUESTS,
    status: 429,
    reason: "too many handles in this session",
    retryAfter: 10,
  },
  in_flight_limit: {
    code: JanusError.TOO_MANY_REQUESTS,
    status: 429,
    reason: "too many requests in flight on this connection",
    retryAfter: 1,
  },
  duplicate_transaction: {
    code: JanusError.INVALID_ELEMENT_TYPE,
    status: 400,
    reason: "this transaction is already in flight",
  },
  bad_sdp: { code: JanusError.INVALID_SDP, status: 200, reason: "unusable SDP" },
  draining: {
    code: JanusError.UNAVAILABLE,
    status: 503,
    reason: "this node is draining: no new sessions",
    retryAfter: 5,
  },
  cluster_unavailable: {
    code: JanusError.UNAVAILABLE,
    status: 503,
    reason: "the node holding this session cannot be reached now",
    retryAfter: 1,
  },
};

export interface SignallingOptions {
  limits: Limits;
  timers: JanusTimers;
  clock?: Clock;
  tellJanus?: (backend: BackendState, path: string, request: "hangup" | "destroy") => void;
  onChange?: (c: RegistryChange) => void;
}

export class JanusSignalling {
  readonly sessions: JanusSessions;
  /** Draining: new Janus sessions are refused; everything of existing ones goes on. */
  draining = false;

  constructor(readonly negotiator: Negotiator | undefined, readonly opts: SignallingOptions) {
    this.sessions = new JanusSessions({
      negotiator,
      limits: opts.limits,
      timers: opts.timers,
      clock: opts.clock,
      tellJanus: opts.tellJanus,
      onChange: opts.onChange,
    });
  }

  /** New limits and Janus timers (a reload). */
  update(limits: Limits, timers: JanusTimers): void {
    this.opts.limits = limits;
    this.opts.timers = timers;
    this.sessions.update(limits, timers);
  }

  #now(): number {
    return this.opts.clock?.now() ?? Date.now();
  }

  /** A Janus-style refusal, counted. */
  refuse(
    reason: Refusal,
    ctx: { protocol: "http" | "ws" },
    kind: SignallingKind,
    transaction: Json | undefined,
    detail?: string,
    sessionId?: string,
  ): Refused {
    const r = REFUSED[reason];
    signallingRefused.inc({ reason });
    signallingRequests.inc({ protocol: ctx.protocol, kind, outcome: "refused" });
    return {
      action: "reply",
      reply: janusError(transaction, r.code, detail ?? r.reason, sessionId),
      status: r.status,
      retryAfter: r.retryAfter,
    };
  }

  /** A message from the client (HTTP body or WS frame). May change `msg`. */
  fromClient(msg: JsonObject, ctx: ClientContext): ClientVerdict {
    const kind = kindOf(msg.janus);
    const tx = msg.transaction;
    // Ids from the HTTP path come first; without them (WebSocket, or a claim POSTed to /janus) Janus
    // reads them from the message, and so does xRTC.
    let sid = ctx.sessionId, hid = ctx.handleId;
    if (sid === undefined) {
      const s = idField(msg.session_id), h = idField(msg.handle_id);
      if (s.bad || h.bad) return this.refuse("bad_id", ctx, kind, tx);
      sid = s.id;
      hid = hid ?? h.id;
    }
    const session = sid === undefined ? undefined : this.sessions.get(sid);
    if (sid !== undefined && !session) return this.refuse("unknown_session", ctx, kind, tx, undefined, sid);
    const handle = hid === undefined ? undefined : session?.handles.get(hid);
    if (hid !== undefined && !handle) {
      return this.refuse(session ? "unknown_handle" : "unknown_session", ctx, kind, tx, undefined, sid);
    }
    if (session) this.sessions.touch(session);
    const pending: Pending = {
      kind,
      protocol: ctx.protocol,
      client: ctx.client,
      route: ctx.route,
      conn: ctx.conn,
      session,
      handle,
      at: this.#now(),
    };
    const forward = (changed: boolean): ClientVerdict => ({
      action: "forward",
      changed,
      pending,
      backends: session ? [session.backend] : ctx.pool.candidates(),
    });
    switch (kind) {
      case "create": {
        if (this.draining) return this.refuse("draining", ctx, kind, tx);
        const refused = this.sessions.admitCreate(ctx.client);
        if (refused) return this.refuse(refused, ctx, kind, tx);
        return forward(false);
      }
      case "attach":
        if (!session) return this.refuse("unknown_session", ctx, kind, tx);
        if (session.handles.size >= this.opts.limits.handlesPerSession) {
          return this.refuse("handle_limit", ctx, kind, tx, undefined, sid);
        }
        pending.plugin = typeof msg.plugin === "string" ? msg.plugin.slice(0, 128) : "";
        return forward(false);
      case "trickle": {
        // Client candidates never reach Janus (both modes): Janus learns only xRTC's address.
        if (!handle) {
          return this.refuse(session ? "unknown_handle" : "unknown_session", ctx, kind, tx, undefined, sid);
        }
        trickles.inc({ from: "client" });
        signallingRequests.inc({ protocol: ctx.protocol, kind, outcome: "ok" });
        const reply: JsonObject = { janus: "ack", transaction: typeof tx === "string" ? tx : "" };
        if (sid) reply.session_id = idJson(sid);
        return { action: "reply", reply, status: 200 };
      }
      case "message": {
        const jsep = msg.jsep;
        if (!isObject(jsep) || typeof jsep.sdp !== "string") return forward(false);
        if (!handle) {
          return this.refuse(session ? "unknown_handle" : "unknown_session", ctx, kind, tx, undefined, sid);
        }
        return this.#clientJsep(msg, jsep, handle, ctx, pending, forward);
      }
      case "hangup":
      case "detach":
      case "destroy":
      case "claim":
      case "keepalive":
        if (!session) return this.refuse("unknown_session", ctx, kind, tx);
        return forward(false);
      default:
        return forward(false);
    }
  }

  #clientJsep(
    msg: JsonObject,
    jsep: JsonObject,
    handle: HandleEntry,
    ctx: ClientContext,
    pending: Pending,
    forward: (changed: boolean) => ClientVerdict,
  ): ClientVerdict {
    const type = jsepType(jsep);
    const sid = handle.session.id;
    if (!type) {
      return this.refuse(
        "bad_sdp",
        ctx,
        "message",
        msg.transaction,
        'jsep.type must be "offer" or "answer"',
        sid,
      );
    }
    try {
      const sdp = parseSdp(jsep.sdp as string);
      if (!this.negotiator) {
        jsep.sdp = serializeSdp(stripCandidates(sdp, false));
      } else if (type === "offer") {
        const isNew = !handle.ice.spec && !handle.ice.reserved;
        if (
          isNew &&
          this.sessions.iceSessionsOf(handle.session.client) >= this.opts.limits.iceSessionsPerAddress
        ) {
          return this.refuse("client_ice_limit", ctx, "message", msg.transaction, undefined, sid);
        }
        jsep.sdp = serializeSdp(this.negotiator.clientOffer(handle.ice, sdp));
        pending.offer = true;
      } else {
        jsep.sdp = serializeSdp(this.negotiator.clientAnswer(handle.ice, sdp));
      }
      if (jsep.trickle === true) jsep.trickle = false; // Janus must not wait for client trickles
      return forward(true);
    } catch (e) {
      if (e instanceof SessionLimitError) {
        return this.refuse("session_limit", ctx, "message", msg.transaction, e.message, sid);
      }
      if (e instanceof SdpError || e instanceof SdpRejected || e instanceof CandidateError) {
        log("warn", "signalling_bad_sdp", { janus_session: sid, handle: handle.id, reason: e.message });
        return this.refuse("bad_sdp", ctx, "message", msg.transaction, e.message, sid);
      }
      throw e;
    }
  }

  /** Janus's reply to a forwarded request (undefined when Janus could not be reached): the request
   * takes effect here only if Janus accepted it. */
  replied(p: Pending, reply: Json | undefined, backend: BackendState | undefined): void {
    const obj = isObject(reply) ? reply : undefined;
    const outcome = obj === undefined ? "upstream_error" : obj.janus === "error" ? "janus_error" : "ok";
    signallingRequests.inc({ protocol: p.protocol, kind: p.kind, outcome });
    const success = obj?.janus === "success";
    const data = obj && isObject(obj.data) ? obj.data : undefined;
    switch (p.kind) {
      case "create": {
        this.sessions.createDone(p.client);
        const id = success ? idOf(data?.id) : undefined;
        if (id && backend) this.sessions.addSession(id, backend, p.protocol, p.conn, p.route, p.client);
        return;
      }
      case "attach": {
        const id = success ? idOf(data?.id) : undefined;
        if (id && p.session && this.sessions.get(p.session.id) === p.session) {
          this.sessions.addHandle(p.session, id, p.plugin ?? "");
        }
        return;
      }
      case "destroy":
        if (success && p.session) this.sessions.removeSession(p.session, "destroyed");
        return;
      case "hangup":
        if (success && p.handle) this.sessions.hangup(p.handle, "client_hangup");
        return;
      case "detach":
        if (success && p.handle) this.sessions.removeHandle(p.handle, "client_hangup");
        return;
      case "claim":
        if (success && p.session) this.sessions.claimed(p.session, p.protocol, p.conn);
        return;
      case "message":
        if (p.offer && p.handle && outcome !== "ok") this.negotiator?.offerRefused(p.handle.ice);
        return;
    }
  }

  /** An HTTP long-poll for a session's events: refused unless the session is one Janus issued. */
  poll(sessionId: string, client: string): { session: JanusSessionEntry } | Refused {
    const session = this.sessions.get(sessionId);
    if (!session) {
      return this.refuse("unknown_session", { protocol: "http" }, "poll", undefined, undefined, sessionId);
    }
    this.sessions.touch(session);
    void client;
    return { session };
  }

  /** A message from Janus (one element of a long-poll array, a sync reply or a WS frame). May change `msg`. */
  fromJanus(msg: JsonObject, ctx: { sessionId?: string; handleId?: string }): ServerVerdict {
    const janus = typeof msg.janus === "string" ? msg.janus : "";
    const sid = idOf(msg.session_id) ?? ctx.sessionId;
    const hid = idOf(msg.sender) ?? ctx.handleId;
    const session = sid === undefined ? undefined : this.sessions.get(sid);
    const handle = hid === undefined ? undefined : session?.handles.get(hid);
    if (session) this.sessions.touch(session);
    switch (janus) {
      case "trickle":
        this.#janusTrickle(msg, handle);
        return "drop";
      case "hangup":
        if (handle) this.sessions.hangup(handle, "janus_hangup");
        return "keep";
      case "detached":
        if (handle) this.sessions.removeHandle(handle, "janus_hangup");
        return "keep";
      case "timeout":
        if (session) this.sessions.removeSession(session, "timeout");
        return "keep";
    }
    const jsep = msg.jsep;
    if (!isObject(jsep) || typeof jsep.sdp !== "string") {
      // A plugin's error answering the client's offer refuses it: its reservation is freed.
      if (handle?.ice.clientOffer && pluginError(msg)) this.negotiator?.offerRefused(handle.ice);
      return "keep";
    }
    if (!handle) {
      // A jsep xRTC cannot attribute must still not leak Janus's addresses.
      jsep.sdp = safeStrip(jsep.sdp);
      janusJsepUnusable.inc();
      return "changed";
    }
    const type = jsepType(jsep);
    try {
      const sdp = parseSdp(jsep.sdp);
      if (!type) throw new SdpRejected(`a jsep of type ${JSON.stringify(jsep.type)?.slice(0, 40)}`);
      if (!this.negotiator) {
        jsep.sdp = serializeSdp(stripCandidates(sdp, false));
        return "changed";
      }
      const out = type === "offer"
        ? this.negotiator.janusOffer(handle.ice, sdp)
        : this.negotiator.janusAnswer(handle.ice, sdp);
      jsep.sdp = serializeSdp(out);
      return "changed";
    } catch (e) {
      if (
        !(e instanceof SdpError || e instanceof SdpRejected || e instanceof SessionLimitError ||
          e instanceof CandidateError)
      ) throw e;
      janusJsepUnusable.inc();
      log("warn", "janus_jsep_unusable", { session: handle.key, reason: e.message });
      jsep.sdp = safeStrip(jsep.sdp);
      return "changed";
    }
  }

  #janusTrickle(msg: JsonObject, handle: HandleEntry | undefined): void {
    // Janus's candidates go to xRTC's own agent (half) or relay (full), never to the client.
    const cand = msg.candidate;
    const list = Array.isArray(cand) ? cand : [cand];
    for (const c of list) {
      if (!isObject(c) || typeof c.candidate !== "string") continue;
      trickles.inc({ from: "janus" });
      if (!handle || !this.negotiator) {
        janusCandidatesDropped.inc({ reason: "unmatched" });
        continue;
      }
      try {
        if (!this.negotiator.janusCandidate(handle.ice, parseCandidate(c.candidate))) {
          janusCandidatesDropped.inc({ reason: "over_limit" });
        }
      } catch (e) {
        if (!(e instanceof CandidateError)) throw e;
        janusCandidatesDropped.inc({ reason: "malformed" });
      }
    }
  }

  /** A shard ended an ICE session (consent lost, Janus leg failed, never connected): Janus is told. */
  iceSessionEnded(id: string): void {
    const h = this.sessions.byKey(id);
    if (h) this.sessions.iceSessionEnded(h);
  }
}

function safeStrip(text: string): string {
  try {
    return serializeSdp(stripCandidates(parseSdp(text), false));
  } catch {
    return text.split(/\r?\n/).filter((l) => attrName(l) !== "candidate").join("\r\n");
  }
}

/** Applies `fromJanus` to a Janus response text: one object or a `maxev` array. Returns the text to send. */
export function rewriteJanusText(
  text: string,
  sig: JanusSignalling,
  ctx: { sessionId?: string; handleId?: string },
  emptyReplacement: string | undefined,
): string | undefined {
  let parsed: Json;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text; // not JSON: pass through as is
  }
  if (Array.isArray(parsed)) {
    let changed = false;
    const kept: Json[] = [];
    for (const item of parsed) {
      if (!isObject(item)) {
        kept.push(item);
        continue;
      }
      const v = sig.fromJanus(item, ctx);
      if (v !== "keep") changed = true;
      if (v !== "drop") kept.push(item);
    }
    return changed ? JSON.stringify(kept) : text;
  }
  if (!isObject(parsed)) return text;
  const v = sig.fromJanus(parsed, ctx);
  if (v === "keep") return text;
  if (v === "drop") return emptyReplacement;
  return JSON.stringify(parsed);
}
