// Janus signalling (https://janus.conf.meetecho.com/docs/rest.html): every JSON message in both
// directions passes here, over HTTP (request bodies, sync replies, long-poll events and `maxev`
// arrays) and WebSocket frames. Messages are changed in place only where xRTC must (jsep SDP,
// trickles); a message that was not changed is forwarded as its original text, so unknown fields
// and large ids survive byte for byte.
import { type IceView, iceView, parseSdp, SdpError, serializeSdp, stripCandidates } from "../sdp/sdp.ts";
import { CandidateError, parseCandidate } from "../sdp/candidate.ts";
import { type Negotiator, type RouteMode, SdpRejected, SessionLimitError } from "../ice/negotiator.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface SignallingContext {
  route: RouteMode;
  /** From the HTTP path; over WebSocket these come from the message. */
  sessionId?: string;
  handleId?: string;
}

/** What to do with a client's message: forward it (changed or not), or answer it here. */
export type ClientVerdict =
  | { action: "forward"; changed: boolean }
  | { action: "reply"; reply: JsonObject };

/** What to do with a message from Janus. */
export type ServerVerdict = "keep" | "changed" | "drop";

export interface SdpRecord {
  type: string;
  from: "client" | "janus";
  ice: IceView[];
  at: number;
}

export interface HandleRecord {
  sessionId: string;
  handleId: string;
  offer?: SdpRecord;
  answer?: SdpRecord;
}

const MAX_RECORDS = 100_000;

export class JanusSignalling {
  /** Offers and answers seen, per Janus handle: the session registry. */
  readonly registry = new Map<string, HandleRecord>();
  /** WS transactions of create/attach/destroy waiting for their reply. */
  readonly #pending = new Map<string, { janus: string; sessionId?: string; at: number }>();
  /** The route mode of each Janus session, learnt when the client speaks, used for Janus's offers. */
  readonly #modes = new Map<string, RouteMode>();

  constructor(readonly plane: Negotiator | undefined) {}

  #key(sessionId: string, handleId: string): string {
    return `${sessionId}/${handleId}`;
  }

  #record(
    sessionId: string,
    handleId: string,
    type: string,
    from: "client" | "janus",
    sdp: ReturnType<typeof parseSdp>,
  ) {
    const key = this.#key(sessionId, handleId);
    let r = this.registry.get(key);
    if (!r) {
      if (this.registry.size >= MAX_RECORDS) this.registry.delete(this.registry.keys().next().value!);
      r = { sessionId, handleId };
      this.registry.set(key, r);
    }
    const rec: SdpRecord = { type, from, ice: iceView(sdp), at: Date.now() };
    if (type === "offer") {
      r.offer = rec;
      r.answer = undefined;
    } else r.answer = rec;
  }

  /** A message from the client (HTTP body or WS frame). May change `msg`. */
  fromClient(msg: JsonObject, ctx: SignallingContext): ClientVerdict {
    const janus = typeof msg.janus === "string" ? msg.janus : "";
    const sessionId = ctx.sessionId ?? idOf(msg.session_id);
    const handleId = ctx.handleId ?? idOf(msg.handle_id);
    const transaction = typeof msg.transaction === "string" ? msg.transaction : undefined;
    if (sessionId) this.#modes.set(sessionId, ctx.route);
    if (transaction && (janus === "create" || janus === "attach" || janus === "destroy")) {
      if (this.#pending.size > 10_000) this.#prunePending();
      this.#pending.set(transaction, { janus, sessionId, at: Date.now() });
    }
    switch (janus) {
      case "trickle": {
        // Client candidates never reach Janus (both modes): Janus learns only xRTC's address.
        counters.inc("client_trickles_absorbed");
        const reply: JsonObject = { janus: "ack", transaction: transaction ?? "" };
        if (sessionId) reply.session_id = numberOrString(sessionId);
        return { action: "reply", reply };
      }
      case "message": {
        const jsep = msg.jsep;
        if (!isObject(jsep) || typeof jsep.sdp !== "string" || !sessionId || !handleId) {
          return { action: "forward", changed: false };
        }
        try {
          const sdp = parseSdp(jsep.sdp);
          const type = String(jsep.type);
          this.#record(sessionId, handleId, type, "client", sdp);
          if (!this.plane) {
            jsep.sdp = serializeSdp(stripCandidates(sdp, false));
            return { action: "forward", changed: true };
          }
          const key = this.#key(sessionId, handleId);
          const out = type === "offer"
            ? this.plane.clientOffer(key, sessionId, ctx.route, sdp)
            : this.plane.clientAnswer(key, sdp);
          jsep.sdp = serializeSdp(out);
          if (jsep.trickle === true) jsep.trickle = false; // Janus must not wait for client trickles
          return { action: "forward", changed: true };
        } catch (e) {
          return { action: "reply", reply: this.#error(msg, sessionId, e) };
        }
      }
      case "hangup":
      case "detach":
        if (sessionId && handleId) this.#release(this.#key(sessionId, handleId), `client ${janus}`);
        return { action: "forward", changed: false };
      case "destroy":
        if (sessionId) this.#releaseSession(sessionId, "client destroy");
        return { action: "forward", changed: false };
      default:
        return { action: "forward", changed: false };
    }
  }

  #error(msg: JsonObject, sessionId: string | undefined, e: unknown): JsonObject {
    const known = e instanceof SdpError || e instanceof SdpRejected || e instanceof SessionLimitError ||
      e instanceof CandidateError;
    if (!known) throw e;
    counters.inc(e instanceof SessionLimitError ? "signalling_refused_limit" : "signalling_bad_sdp");
    log("warn", "signalling_refused", { session: sessionId, reason: (e as Error).message });
    const reply: JsonObject = {
      janus: "error",
      transaction: typeof msg.transaction === "string" ? msg.transaction : "",
      error: { code: e instanceof SessionLimitError ? 503 : 465, reason: `xRTC: ${(e as Error).message}` },
    };
    if (sessionId) reply.session_id = numberOrString(sessionId);
    return reply;
  }

  /** A message from Janus (one element of a long-poll array, a sync reply or a WS frame). May change `msg`. */
  fromJanus(msg: JsonObject, ctx: SignallingContext): ServerVerdict {
    const janus = typeof msg.janus === "string" ? msg.janus : "";
    const sessionId = idOf(msg.session_id) ?? ctx.sessionId;
    const handleId = idOf(msg.sender) ?? ctx.handleId;
    const transaction = typeof msg.transaction === "string" ? msg.transaction : undefined;
    if (transaction && this.#pending.has(transaction) && (janus === "success" || janus === "error")) {
      const p = this.#pending.get(transaction)!;
      this.#pending.delete(transaction);
      if (janus === "success" && p.janus === "destroy" && p.sessionId) {
        this.#releaseSession(p.sessionId, "destroyed");
      }
    }
    switch (janus) {
      case "trickle": {
        // Janus's candidates go to xRTC's own agent (half) or relay (full), never to the client.
        const cand = msg.candidate;
        if (sessionId && handleId && this.plane) {
          const list = Array.isArray(cand) ? cand : [cand];
          for (const c of list) {
            if (isObject(c) && typeof c.candidate === "string") {
              try {
                this.plane.janusCandidate(this.#key(sessionId, handleId), parseCandidate(c.candidate));
              } catch (e) {
                if (!(e instanceof CandidateError)) throw e;
                counters.inc("signalling_bad_candidate");
              }
            }
          }
        }
        counters.inc("janus_trickles_absorbed");
        return "drop";
      }
      case "hangup":
      case "detached":
        if (sessionId && handleId) this.#release(this.#key(sessionId, handleId), `janus ${janus}`);
        return "keep";
      case "timeout":
        if (sessionId) this.#releaseSession(sessionId, "janus session timeout");
        return "keep";
    }
    const jsep = msg.jsep;
    if (!isObject(jsep) || typeof jsep.sdp !== "string") return "keep";
    if (!sessionId || !handleId) {
      // A jsep we cannot attribute must still not leak Janus's addresses.
      jsep.sdp = safeStrip(jsep.sdp);
      counters.inc("signalling_unattributed_jsep");
      return "changed";
    }
    const key = this.#key(sessionId, handleId);
    try {
      const sdp = parseSdp(jsep.sdp);
      const type = String(jsep.type);
      this.#record(sessionId, handleId, type, "janus", sdp);
      if (!this.plane) {
        jsep.sdp = serializeSdp(stripCandidates(sdp, false));
        return "changed";
      }
      const mode = this.#modes.get(sessionId) ?? ctx.route;
      const out = type === "offer"
        ? this.plane.janusOffer(key, sessionId, mode, sdp)
        : this.plane.janusAnswer(key, sdp);
      jsep.sdp = serializeSdp(out);
      return "changed";
    } catch (e) {
      if (
        !(e instanceof SdpError || e instanceof SdpRejected || e instanceof SessionLimitError ||
          e instanceof CandidateError)
      ) throw e;
      counters.inc("signalling_bad_sdp");
      log("warn", "janus_jsep_unusable", { session: key, reason: e.message });
      jsep.sdp = safeStrip(jsep.sdp);
      return "changed";
    }
  }

  #release(key: string, reason: string): void {
    this.registry.delete(key);
    this.plane?.release(key, reason);
  }

  #releaseSession(sessionId: string, reason: string): void {
    for (const [k, r] of this.registry) if (r.sessionId === sessionId) this.registry.delete(k);
    this.#modes.delete(sessionId);
    this.plane?.releaseJanusSession(sessionId, reason);
  }

  #prunePending(): void {
    const now = Date.now();
    for (const [k, v] of this.#pending) if (now - v.at > 60_000) this.#pending.delete(k);
  }
}

function safeStrip(text: string): string {
  try {
    return serializeSdp(stripCandidates(parseSdp(text), false));
  } catch {
    return text.split(/\r?\n/).filter((l) => !l.startsWith("a=candidate:")).join("\r\n");
  }
}

/** Janus ids are numbers in JSON; keys use their decimal text. */
export function idOf(v: Json | undefined): string | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v === "string" && /^\d+$/.test(v)) return v;
  return undefined;
}

function numberOrString(id: string | undefined): Json {
  if (id === undefined) return null;
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : id;
}

/** Applies `fromJanus` to a Janus response text: one object or a `maxev` array. Returns the text to send. */
export function rewriteJanusText(
  text: string,
  sig: JanusSignalling,
  ctx: SignallingContext,
  emptyReplacement: string | undefined,
): string | undefined {
  let parsed: Json;
  try {
    parsed = JSON.parse(text);
  } catch {
    counters.inc("signalling_unparsable_from_janus");
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
