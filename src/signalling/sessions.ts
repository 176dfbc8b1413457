// The one owner of Janus session state: per Janus session its backend, transport (and WebSocket), the
// route's proxy mode, the client's address, its handles (each with its ICE negotiation), and when it was
// last active. Entries exist only for ids Janus issued (added on Janus's success replies), and go by one
// rule: destroy or Janus's timeout, the WebSocket closing (after Janus's reclaim window), idleness longer
// than Janus's session timeout, or the backend going down. Per-client-address limits are kept here too,
// in maps that hold an address only while it has sessions (or a recent create).
import type { JanusTimers, Limits } from "../config/types.ts";
import { HandleIce, type Negotiator, type RouteMode } from "../ice/negotiation/negotiator.ts";
import type { IceCredentials } from "../ice/credentials.ts";
import { type Clock, systemClock } from "../io/clock.ts";
import { DueSchedule } from "../ice/due_schedule.ts";
import type { BackendState } from "./backends.ts";
import {
  type EndReason,
  janusHandles,
  janusSessions,
  janusSessionsEnded,
  type Refusal,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

export type SessionEndReason =
  | "destroyed"
  | "timeout"
  | "websocket_closed"
  | "idle"
  | "backend_down"
  | "shutdown";

/** The identity of a proxied WebSocket (sessions created on it live and die with it). */
export type ConnectionToken = object;

export class HandleEntry {
  readonly ice: HandleIce;
  constructor(
    readonly session: JanusSessionEntry,
    readonly id: string,
    readonly plugin: string,
    janusLocal?: IceCredentials,
  ) {
    this.ice = new HandleIce(`${session.id}/${id}`, session.mode, janusLocal);
  }
  get key(): string {
    return this.ice.key;
  }
}

/** A WHIP resource xRTC holds through a Janus session: what a restarted process needs to go on serving
 * it (the publisher knows it by its resource id and ETag). */
export interface WhipResource {
  endpoint: string;
  resource: string;
  etag: string;
  /** The VideoRoom handle of the publisher. */
  handle: string;
  mid?: string;
}

export class JanusSessionEntry {
  readonly handles = new Map<string, HandleEntry>();
  lastActivity: number;
  wsClosedAt?: number;
  /** The WHIP endpoint's tag when xRTC itself holds this session for a WHIP publisher. */
  whip?: string;
  /** Its resource, once the publisher has it (the 201 went out). */
  whipResource?: WhipResource;
  constructor(
    readonly id: string,
    readonly backend: BackendState,
    public protocol: "http" | "ws",
    public conn: ConnectionToken | undefined,
    readonly mode: RouteMode,
    readonly client: string,
    readonly createdAt: number,
  ) {
    this.lastActivity = createdAt;
  }
}

interface ClientUsage {
  sessions: Set<JanusSessionEntry>;
  /** Creates sent to Janus and not answered yet (they count against the limits until they are). */
  creating: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Client addresses whose create rate is remembered; the oldest are forgotten first (a forgotten
 * address starts with a full bucket, which is where an idle one would be anyway). */
const MAX_RATE_ENTRIES = 100_000;

export interface JanusSessionsOptions {
  negotiator?: Negotiator;
  limits: Limits;
  timers: JanusTimers;
  clock?: Clock;
  /** Tells Janus something xRTC decided on its own (hangup of a dead ICE session, destroy of an
   * abandoned Janus session). */
  tellJanus?: (backend: BackendState, path: string, request: "hangup" | "destroy") => void;
  /** Every change of the registry, for the state directory. */
  onChange?: (c: RegistryChange) => void;
}

export type RegistryChange =
  | { kind: "session"; session: JanusSessionEntry }
  | { kind: "session_gone"; id: string }
  | { kind: "handle"; handle: HandleEntry }
  | { kind: "handle_gone"; session: string; key: string };

export class JanusSessions {
  /** New limits and Janus timers (a reload): they apply from the next request, and every session's
   * expiry follows the new timers. */
  update(limits: Limits, timers: JanusTimers): void {
    const changed = timers.sessionTimeoutMs !== this.opts.timers.sessionTimeoutMs ||
      timers.reclaimTimeoutMs !== this.opts.timers.reclaimTimeoutMs;
    this.opts.limits = limits;
    this.opts.timers = timers;
    if (changed) { for (const s of this.#sessions.values()) this.#fileExpiry(s); }
  }

  readonly #sessions = new Map<string, JanusSessionEntry>();
  /** When each session next may expire (to the millisecond): only those are looked at by sweep(). */
  readonly #expiries = new DueSchedule<JanusSessionEntry>(1);
  readonly #usage = new Map<string, ClientUsage>();
  readonly #rates = new Map<string, Bucket>();
  readonly #clock: Clock;
  #handleCount = 0;
  #creating = 0;

  constructor(readonly opts: JanusSessionsOptions) {
    this.#clock = opts.clock ?? systemClock;
    janusSessions.collectWith((set) => {
      const per = new Map<string, number>();
      for (const s of this.#sessions.values()) per.set(s.backend.name, (per.get(s.backend.name) ?? 0) + 1);
      for (const [b, n] of per) set({ backend: b }, n);
    });
    janusHandles.collectWith((set) => {
      const per = new Map<string, number>();
      for (const s of this.#sessions.values()) {
        per.set(s.backend.name, (per.get(s.backend.name) ?? 0) + s.handles.size);
      }
      for (const [b, n] of per) set({ backend: b }, n);
    });
  }

  get size(): number {
    return this.#sessions.size;
  }

  get handleCount(): number {
    return this.#handleCount;
  }

  /** Client addresses with state here (limits), for tests and the status page. */
  get trackedClients(): number {
    return this.#usage.size;
  }

  get(id: string): JanusSessionEntry | undefined {
    return this.#sessions.get(id);
  }

  handle(sessionId: string, handleId: string): HandleEntry | undefined {
    return this.#sessions.get(sessionId)?.handles.get(handleId);
  }

  /** The handle of an ICE session id ("<session>/<handle>"). */
  byKey(key: string): HandleEntry | undefined {
    const [s, h] = key.split("/");
    return this.handle(s, h);
  }

  sessions(): IterableIterator<JanusSessionEntry> {
    return this.#sessions.values();
  }

  touch(s: JanusSessionEntry): void {
    s.lastActivity = this.#clock.now(); // moves its idle expiry later: the sweep finds that when it comes
  }

  /** Files a session for its next expiry: the end of the reclaim window while its WebSocket is gone, and
   * Janus's session timeout after its last activity. None: it is not filed. */
  #fileExpiry(s: JanusSessionEntry): void {
    const { sessionTimeoutMs, reclaimTimeoutMs } = this.opts.timers;
    let at = Infinity;
    if (s.wsClosedAt !== undefined) at = s.wsClosedAt + reclaimTimeoutMs;
    if (sessionTimeoutMs > 0) at = Math.min(at, s.lastActivity + sessionTimeoutMs + 1);
    if (at === Infinity) this.#expiries.remove(s);
    else this.#expiries.schedule(s, at);
  }

  // ---- limits ----

  /** May `client` create a Janus session now? Counts the create as in flight when it may. */
  admitCreate(client: string): Refusal | undefined {
    const l = this.opts.limits;
    if (this.#sessions.size + this.#creating >= l.maxJanusSessions) return "janus_session_limit";
    const u = this.#usage.get(client);
    if (u && u.sessions.size + u.creating >= l.janusSessionsPerAddress) return "client_session_limit";
    if (!this.#takeToken(client)) return "client_session_rate";
    this.#usageOf(client).creating++;
    this.#creating++;
    return undefined;
  }

  /** The create admitted for `client` was answered (or failed). */
  createDone(client: string): void {
    const u = this.#usage.get(client);
    if (!u || u.creating === 0) return;
    u.creating--;
    this.#creating--;
    this.#dropUsageIfIdle(client, u);
  }

  /** ICE sessions (negotiated or reserved) of a client address. */
  iceSessionsOf(client: string): number {
    let n = 0;
    for (const s of this.#usage.get(client)?.sessions ?? []) {
      for (const h of s.handles.values()) if (h.ice.spec || h.ice.reserved) n++;
    }
    return n;
  }

  #takeToken(client: string): boolean {
    const rate = this.opts.limits.janusSessionRatePerAddress;
    const now = this.#clock.now();
    let b = this.#rates.get(client);
    if (b) this.#rates.delete(client); // re-inserted last: the map's order is least recently used first
    else {
      if (this.#rates.size >= MAX_RATE_ENTRIES) this.#rates.delete(this.#rates.keys().next().value!);
      b = { tokens: rate, at: now };
    }
    b.tokens = Math.min(rate, b.tokens + (now - b.at) * rate / 1000);
    b.at = now;
    this.#rates.set(client, b);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  #usageOf(client: string): ClientUsage {
    let u = this.#usage.get(client);
    if (!u) this.#usage.set(client, u = { sessions: new Set(), creating: 0 });
    return u;
  }

  #dropUsageIfIdle(client: string, u: ClientUsage): void {
    if (u.sessions.size === 0 && u.creating === 0) this.#usage.delete(client);
  }

  // ---- changes, on Janus's replies and events ----

  addSession(
    id: string,
    backend: BackendState,
    protocol: "http" | "ws",
    conn: ConnectionToken | undefined,
    mode: RouteMode,
    client: string,
  ): JanusSessionEntry {
    const existing = this.#sessions.get(id);
    if (existing) return existing;
    const s = new JanusSessionEntry(id, backend, protocol, conn, mode, client, this.#clock.now());
    this.#sessions.set(id, s);
    this.#fileExpiry(s);
    this.#usageOf(client).sessions.add(s);
    backend.sessions++;
    log("info", "janus_session_created", { janus_session: id, backend: backend.name, protocol, client });
    this.opts.onChange?.({ kind: "session", session: s });
    return s;
  }

  /** A Janus session of the process before a restart. A WebSocket it lived on is gone with that process:
   * the session is kept for the reclaim window, in which its client may claim it on a new one. */
  restoreSession(
    r: {
      id: string;
      protocol: "http" | "ws";
      mode: RouteMode;
      client: string;
      createdAt: number;
      whip?: WhipResource;
    },
    backend: BackendState,
  ): JanusSessionEntry {
    const s = this.addSession(r.id, backend, r.protocol, undefined, r.mode, r.client);
    if (r.protocol === "ws") {
      s.wsClosedAt = this.#clock.now();
      this.#fileExpiry(s);
    }
    if (r.whip) {
      s.whip = r.whip.endpoint;
      s.whipResource = r.whip;
    }
    return s;
  }

  /** A WHIP resource now lives on this session (or its ETag changed): recorded like any change. */
  setWhip(s: JanusSessionEntry, r: WhipResource): void {
    if (this.#sessions.get(s.id) !== s) return;
    s.whip = r.endpoint;
    s.whipResource = r;
    this.opts.onChange?.({ kind: "session", session: s });
  }

  restoreHandle(s: JanusSessionEntry, id: string, plugin: string, janusLocal: IceCredentials): HandleEntry {
    const h = new HandleEntry(s, id, plugin, janusLocal);
    s.handles.set(id, h);
    this.#handleCount++;
    return h;
  }

  addHandle(s: JanusSessionEntry, id: string, plugin: string): HandleEntry | undefined {
    const existing = s.handles.get(id);
    if (existing) return existing;
    if (s.handles.size >= this.opts.limits.handlesPerSession) return undefined;
    const h = new HandleEntry(s, id, plugin);
    s.handles.set(id, h);
    this.#handleCount++;
    this.opts.onChange?.({ kind: "handle", handle: h });
    return h;
  }

  /** The handle's PeerConnection is gone (hangup): its ICE session ends, the handle stays. */
  hangup(h: HandleEntry, reason: EndReason): void {
    this.opts.negotiator?.release(h.ice, reason);
  }

  removeHandle(h: HandleEntry, reason: EndReason): void {
    this.opts.negotiator?.release(h.ice, reason);
    if (h.session.handles.get(h.id) === h) {
      h.session.handles.delete(h.id);
      this.#handleCount--;
      this.opts.onChange?.({ kind: "handle_gone", session: h.session.id, key: h.key });
    }
  }

  removeSession(s: JanusSessionEntry, reason: SessionEndReason): void {
    if (this.#sessions.get(s.id) !== s) return;
    this.#sessions.delete(s.id);
    this.#expiries.remove(s);
    for (const h of [...s.handles.values()]) {
      this.removeHandle(
        h,
        reason === "backend_down"
          ? "backend_down"
          : reason === "shutdown"
          ? "shutdown"
          : "janus_session_gone",
      );
    }
    const u = this.#usage.get(s.client);
    if (u) {
      u.sessions.delete(s);
      this.#dropUsageIfIdle(s.client, u);
    }
    s.backend.sessions--;
    this.opts.onChange?.({ kind: "session_gone", id: s.id });
    janusSessionsEnded.inc({ reason });
    log("info", "janus_session_ended", { janus_session: s.id, backend: s.backend.name, reason });
  }

  /** A WebSocket closed: its sessions go after Janus's reclaim window unless claimed meanwhile. */
  connectionClosed(conn: ConnectionToken): void {
    const now = this.#clock.now();
    for (const s of this.#sessions.values()) {
      if (s.conn !== conn) continue;
      s.conn = undefined;
      s.wsClosedAt = now;
      if (this.opts.timers.reclaimTimeoutMs === 0) this.removeSession(s, "websocket_closed");
      else this.#fileExpiry(s);
    }
  }

  /** Janus accepted a claim: the session now lives on this transport. */
  claimed(s: JanusSessionEntry, protocol: "http" | "ws", conn: ConnectionToken | undefined): void {
    s.protocol = protocol;
    s.conn = conn;
    s.wsClosedAt = undefined;
    this.touch(s);
    this.opts.onChange?.({ kind: "session", session: s });
  }

  /** A shard ended an ICE session on its own: Janus is told (hangup), so it frees the PeerConnection. */
  iceSessionEnded(h: HandleEntry): void {
    this.opts.tellJanus?.(h.session.backend, `/${h.session.id}/${h.id}`, "hangup");
  }

  /** Every session of a backend that went down. */
  backendDown(b: BackendState): void {
    for (const s of [...this.#sessions.values()]) if (s.backend === b) this.removeSession(s, "backend_down");
  }

  /** Idle sessions (no request or event for longer than Janus's session timeout) and WebSocket
   * sessions past the reclaim window go; Janus is told to destroy the idle ones (its own timeout may
   * be off). Only the sessions whose expiry has come are looked at. */
  sweep(): void {
    const now = this.#clock.now();
    const { sessionTimeoutMs, reclaimTimeoutMs } = this.opts.timers;
    for (const s of this.#expiries.takeDue(now)) {
      if (this.#sessions.get(s.id) !== s) continue;
      if (s.wsClosedAt !== undefined && now - s.wsClosedAt >= reclaimTimeoutMs) {
        this.removeSession(s, "websocket_closed");
      } else if (sessionTimeoutMs > 0 && now - s.lastActivity > sessionTimeoutMs) {
        this.opts.tellJanus?.(s.backend, `/${s.id}`, "destroy");
        this.removeSession(s, "idle");
      } else this.#fileExpiry(s); // active since it was filed
    }
  }

  close(): void {
    for (const s of [...this.#sessions.values()]) this.removeSession(s, "shutdown");
    this.#rates.clear();
  }
}
