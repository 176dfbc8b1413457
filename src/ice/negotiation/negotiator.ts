// The negotiation side of the media plane, on the main thread with signalling: per Janus handle it
// reads the ICE credentials of each offer and answer, returns the SDP each side must see, and turns each
// negotiated ICE session into a spec for the shards (open, update, end). It is the one place sessions
// begin and end, and the one place their number is limited: capacity is reserved when a client's offer
// is checked, and the reservation is used or freed when Janus answers or refuses.
import type { Candidate } from "../../sdp/candidate.ts";
import { candidatePriority } from "../../sdp/candidate.ts";
import { iceCredentials, iceView, rewriteIce, type Sdp, stripCandidates } from "../../sdp/sdp.ts";
import {
  type IceCredentials,
  randomCredentials,
  randomIceString,
  randomTieBreaker,
  UFRAG_LENGTH,
} from "../credentials.ts";
import type { ClaimBoard, ClaimTicket } from "../shards/claims.ts";
import { applySpecUpdate, type SessionSpec, type SpecSink, type SpecUpdate } from "./spec.ts";
import { MAX_JANUS_CANDIDATES, TIMING } from "../timing.ts";
import { DueSchedule } from "../due_schedule.ts";
import { type Clock, systemClock } from "../../io/clock.ts";
import {
  type EndReason,
  sessionsClosed,
  sessionsNegotiated,
  sessionsOpened,
} from "../../telemetry/catalog.ts";
import type { LiveState } from "../session/media_session.ts";
import { log } from "../../telemetry/log.ts";

export class SessionLimitError extends Error {
  override name = "SessionLimitError";
}

export class SdpRejected extends Error {
  override name = "SdpRejected";
}

export interface RouteMode {
  icedirect: boolean;
  icetcp: boolean;
}

/** Per Janus handle (one PeerConnection): what has been negotiated so far. Held by the Janus session
 * registry with the handle, so it lives exactly as long as Janus's handle. */
export class HandleIce {
  /** xRTC's credentials towards Janus, stable across renegotiations (and restarts of xRTC). */
  readonly janusLocal: IceCredentials;
  /** The client's credentials from its offer, waiting for Janus's answer. */
  clientOffer?: IceCredentials;
  /** A session slot reserved for a client's offer that Janus has not answered yet. */
  reserved?: { ticket: ClaimTicket; at: number };
  /** The live session, and when it was opened. */
  spec?: SessionSpec;
  openedAt = 0;
  /** Janus's trickled candidates, kept for the session (they may arrive before the answer). */
  janusCandidates: Candidate[] = [];

  constructor(
    readonly key: string,
    public mode: RouteMode,
    janusLocal: IceCredentials = randomCredentials(),
  ) {
    this.janusLocal = janusLocal;
  }
}

export interface NegotiatorOptions {
  sink: SpecSink;
  claims: ClaimBoard;
  /** The candidates clients see: every enabled udp and tcp service × its candidate IPs. */
  clientCandidates: Candidate[];
  consentTimeoutMs: number;
  maxSessions: number;
  clock?: Clock;
  /** Run the sweeper's own timer (false in tests, which call sweep()). */
  autoSweep?: boolean;
  /** A session the negotiator ended on its own (no client ever connected). */
  onExpired?: (id: string) => void;
  /** A handle's spec opened, changed or ended (the state directory keeps it). */
  onSpecChange?: (h: HandleIce) => void;
}

export class Negotiator {
  /** Live specs by id, and every client-facing ufrag in use (so a new one is unique on the node). */
  readonly #byId = new Map<string, HandleIce>();
  readonly #ufrags = new Set<string>();
  readonly #reserved = new Set<HandleIce>();
  /** When each handle's unclaimed spec or unanswered reservation expires (to the millisecond). */
  readonly #expiries = new DueSchedule<HandleIce>(1);
  readonly #clock: Clock;
  readonly #sweeper?: ReturnType<typeof setInterval>;
  clientCandidates: Candidate[];

  constructor(readonly opts: NegotiatorOptions) {
    this.#clock = opts.clock ?? systemClock;
    this.clientCandidates = opts.clientCandidates;
    if (opts.autoSweep !== false) this.#sweeper = setInterval(() => this.sweep(), TIMING.sweepIntervalMs);
    sessionsNegotiated.collectWith((set) => set({}, this.#byId.size));
  }

  /** Negotiated ICE sessions, claimed or not. */
  get sessionCount(): number {
    return this.#byId.size;
  }

  /** Sessions and reservations together: what counts against max_sessions. */
  get committed(): number {
    return this.#byId.size + this.#reserved.size;
  }

  #reserve(h: HandleIce): void {
    if (h.spec || h.reserved) return;
    let ticket: ClaimTicket;
    try {
      ticket = this.opts.claims.allocate();
    } catch {
      throw new SessionLimitError(`xRTC is at its limit of ${this.opts.maxSessions} sessions`);
    }
    h.reserved = { ticket, at: this.#clock.now() };
    this.#reserved.add(h);
    this.#fileExpiry(h);
  }

  #unreserve(h: HandleIce): void {
    if (!h.reserved) return;
    this.opts.claims.release(h.reserved.ticket);
    h.reserved = undefined;
    this.#reserved.delete(h);
    this.#fileExpiry(h);
  }

  /** Files the handle for the expiry it has now: its spec's while unclaimed (the consent timeout after it
   * opened), or its reservation's while Janus has not answered. */
  #fileExpiry(h: HandleIce): void {
    if (h.spec) this.#expiries.schedule(h, h.openedAt + this.opts.consentTimeoutMs + 1);
    else if (h.reserved) this.#expiries.schedule(h, h.reserved.at + TIMING.reservationTimeoutMs + 1);
    else this.#expiries.remove(h);
  }

  /** The client offers (echotest, publisher): returns the offer Janus must see. */
  clientOffer(h: HandleIce, sdp: Sdp): Sdp {
    const creds = iceCredentials(sdp);
    if (!creds) throw new SdpRejected("the offer has no ice-ufrag/ice-pwd");
    this.#reserve(h);
    h.clientOffer = creds;
    if (h.mode.icedirect) return stripCandidates(sdp, true);
    return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
  }

  /** Janus refused the message that carried the client's offer: nothing of it is kept. */
  offerRefused(h: HandleIce): void {
    h.clientOffer = undefined;
    this.#unreserve(h);
  }

  /** Janus answers the client's offer: returns the answer the client must see. */
  janusAnswer(h: HandleIce, sdp: Sdp): Sdp {
    const janus = iceCredentials(sdp);
    if (!h.clientOffer || !janus) {
      this.offerRefused(h);
      throw new SdpRejected("an answer from Janus without a recorded offer, or without ICE credentials");
    }
    const client = h.clientOffer;
    h.clientOffer = undefined;
    return this.#establish(h, client, janus, true, sdp);
  }

  /** Janus offers (streaming, subscriber): returns the offer the client must see. */
  janusOffer(h: HandleIce, sdp: Sdp): Sdp {
    const janus = iceCredentials(sdp);
    if (!janus) throw new SdpRejected("Janus's offer has no ice-ufrag/ice-pwd");
    return this.#establish(h, undefined, janus, false, sdp);
  }

  /** The client answers Janus's offer: returns the answer Janus must see. */
  clientAnswer(h: HandleIce, sdp: Sdp): Sdp {
    const creds = iceCredentials(sdp);
    if (!h.spec || !creds) {
      throw new SdpRejected("an answer without a recorded offer from Janus, or without ICE credentials");
    }
    this.#update(h.spec, { kind: "client", credentials: creds });
    if (h.spec.mode === "full") return stripCandidates(sdp, true);
    return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
  }

  /** The client restarts ICE without a new offer (WHIP, RFC 9725 §4.4): half proxy only, answered by
   * xRTC alone with new client-facing credentials; the old ones work until the new ones authenticate,
   * and Janus's leg is left as it is. Undefined when there is no live half-proxy session to restart. */
  clientIceRestart(h: HandleIce, client: IceCredentials): IceCredentials | undefined {
    const s = h.spec;
    if (!s || s.mode !== "half") return undefined;
    // A restart before the previous one authenticated: the oldest credentials go now.
    if (s.previousFacing) this.#ufrags.delete(s.previousFacing.ufrag);
    const clientFacing = randomCredentials(this.#allocateUfrag());
    log("info", "client_ice_restart", { session: h.key, signalling: "whip" });
    this.#update(s, { kind: "restart", clientFacing, client });
    return clientFacing;
  }

  /** A candidate Janus trickled (full_trickle, or Janus's offers): given to the session, never to the
   * client. False when it was not kept. */
  janusCandidate(h: HandleIce, candidate: Candidate): boolean {
    if (h.janusCandidates.length >= MAX_JANUS_CANDIDATES) return false;
    h.janusCandidates.push(candidate);
    if (h.spec) this.#addJanusCandidate(h.spec, candidate);
    return true;
  }

  #establish(
    h: HandleIce,
    client: IceCredentials | undefined,
    janus: IceCredentials,
    xrtcOffered: boolean,
    sdp: Sdp,
  ): Sdp {
    const view = iceView(sdp);
    const janusLite = view[0]?.lite ?? false;
    const fromSdp = view.flatMap((v) => v.candidates).slice(0, MAX_JANUS_CANDIDATES);
    const old = h.spec;
    const janusOf = (s: SessionSpec) => s.mode === "half" ? s.janusRemote : s.janus;
    // Renegotiation without an ICE restart towards Janus keeps the session and its Janus leg.
    if (old !== undefined && janusOf(old).ufrag === janus.ufrag && janusOf(old).pwd === janus.pwd) {
      this.#unreserve(h);
      for (const candidate of fromSdp) this.#addJanusCandidate(old, candidate);
      if (client && old.client && client.ufrag !== old.client.ufrag && old.mode === "half") {
        // The client restarted ICE: new client-facing credentials, the old ones kept until the new
        // ones authenticate; Janus's ICE state stays as it is.
        const clientFacing = randomCredentials(this.#allocateUfrag());
        log("info", "client_ice_restart", { session: h.key });
        this.#update(old, { kind: "restart", clientFacing, client });
      } else if (client && (old.client?.ufrag !== client.ufrag || old.client?.pwd !== client.pwd)) {
        this.#update(old, { kind: "client", credentials: client });
      }
    } else {
      if (old) {
        this.#end(h, "ice_restart");
        h.janusCandidates = [];
      }
      this.#reserve(h);
      const ticket = h.reserved!.ticket;
      h.reserved = undefined;
      this.#reserved.delete(h);
      const localUfrag = this.#allocateUfrag();
      const base = {
        id: h.key,
        localUfrag,
        ticket,
        client,
        janusCandidates: [...fromSdp, ...h.janusCandidates].slice(0, MAX_JANUS_CANDIDATES),
        answeredAt: this.#clock.now(),
      };
      h.spec = h.mode.icedirect ? { ...base, mode: "full", janus, icetcp: h.mode.icetcp } : {
        ...base,
        mode: "half",
        clientFacing: randomCredentials(localUfrag),
        janusLocal: h.janusLocal,
        janusRemote: janus,
        janusControlling: xrtcOffered || janusLite,
        tieBreaker: randomTieBreaker(),
      };
      h.openedAt = this.#clock.now();
      this.#byId.set(h.key, h);
      this.#fileExpiry(h);
      sessionsOpened.inc({ mode: h.spec.mode });
      log("info", "session_open", { session: h.key, mode: h.spec.mode });
      this.opts.sink.open(h.spec);
      this.opts.onSpecChange?.(h);
    }
    const s = h.spec!;
    // Full proxy: the client checks Janus's password through xRTC's node-unique ufrag.
    const pwd = s.mode === "half" ? s.clientFacing.pwd : s.janus.pwd;
    return rewriteIce(sdp, {
      ufrag: s.localUfrag,
      pwd,
      candidates: this.clientCandidates,
      endOfCandidates: true,
      // Half proxy: xRTC is ICE-lite to clients. Full proxy: Janus's own ICE runs end to end.
      lite: s.mode === "full" ? janusLite : true,
    });
  }

  #addJanusCandidate(spec: SessionSpec, c: Candidate): void {
    const known = spec.janusCandidates.some((k) =>
      k.transport.toLowerCase() === c.transport.toLowerCase() && k.address === c.address && k.port === c.port
    );
    if (known || spec.janusCandidates.length >= MAX_JANUS_CANDIDATES) return;
    this.#update(spec, { kind: "janusCandidate", candidate: c });
  }

  /** Changes a live session here and on every shard, the same way (applySpecUpdate). */
  #update(spec: SessionSpec, u: SpecUpdate): void {
    applySpecUpdate(spec, u);
    if (u.kind === "restart") this.#ufrags.add(u.clientFacing.ufrag);
    this.opts.sink.update(spec.id, u);
    const h = this.#byId.get(spec.id);
    if (h) this.opts.onSpecChange?.(h);
  }

  /** A session of the process before a restart: its spec as it was (credentials, Janus's candidates),
   * a slot of this process's claim board, and live again at once where it was live. */
  restore(h: HandleIce, spec: SessionSpec, live?: LiveState): void {
    if (h.spec || this.#byId.has(h.key)) return;
    let ticket: ClaimTicket;
    try {
      ticket = this.opts.claims.allocate();
    } catch {
      log("warn", "session_not_restored", { session: h.key, reason: "at the limit of sessions" });
      return;
    }
    spec.ticket = ticket;
    h.spec = spec;
    h.openedAt = this.#clock.now();
    this.#byId.set(h.key, h);
    this.#fileExpiry(h);
    this.#ufrags.add(spec.localUfrag);
    if (spec.mode === "half" && spec.previousFacing) this.#ufrags.add(spec.previousFacing.ufrag);
    if (live) this.opts.sink.restore(spec, live);
    else this.opts.sink.open(spec);
  }

  /** A ufrag unique among every live session of this node. */
  #allocateUfrag(): string {
    for (;;) {
      const u = randomIceString(UFRAG_LENGTH);
      if (!this.#ufrags.has(u)) {
        this.#ufrags.add(u);
        return u;
      }
    }
  }

  /** Ends a handle's session: the spec leaves every shard, its ufrags and claim slot are freed. */
  #end(h: HandleIce, reason: EndReason): void {
    const s = h.spec;
    if (!s) return;
    h.spec = undefined;
    this.#byId.delete(h.key);
    this.#fileExpiry(h);
    this.#ufrags.delete(s.localUfrag);
    if (s.mode === "half" && s.previousFacing) this.#ufrags.delete(s.previousFacing.ufrag);
    this.opts.claims.release(s.ticket);
    sessionsClosed.inc({ mode: s.mode, reason });
    log("info", "session_close", { session: h.key, reason });
    this.opts.sink.end(s.id, reason);
    this.opts.onSpecChange?.(h);
  }

  /** A shard ended a session it owned (consent expiry, Janus leg failure). Returns the handle. */
  ended(id: string, reason: EndReason): HandleIce | undefined {
    const h = this.#byId.get(id);
    // The owner has closed it; the other shards drop their dormant copy.
    if (h) this.#end(h, reason);
    return h;
  }

  /** hangup, detach, destroy, and Janus's own hangup: the handle's PeerConnection is gone. */
  release(h: HandleIce, reason: EndReason): void {
    h.clientOffer = undefined;
    this.#unreserve(h);
    this.#end(h, reason);
  }

  /** Sessions no client has claimed with an authentic check within the consent timeout end here
   * (claimed ones are kept alive or expired by the shard that owns them, RFC 7675); reservations Janus
   * never answered are freed. Only the handles whose expiry has come are looked at. */
  sweep(): void {
    const now = this.#clock.now();
    for (const h of this.#expiries.takeDue(now)) {
      if (h.spec) {
        // Claimed: the owning shard keeps it alive or ends it; nothing more to expire here.
        if (this.opts.claims.owner(h.spec.ticket) !== undefined) continue;
        if (now - h.openedAt > this.opts.consentTimeoutMs) {
          this.#end(h, "never_connected");
          this.opts.onExpired?.(h.key);
        } else this.#fileExpiry(h);
      } else if (h.reserved) {
        if (now - h.reserved.at > TIMING.reservationTimeoutMs) this.offerRefused(h);
        else this.#fileExpiry(h);
      }
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const h of [...this.#byId.values()]) this.#end(h, "shutdown");
    for (const h of [...this.#reserved]) this.#unreserve(h);
  }
}

/** xRTC's candidates as clients see them (RFC 8839 §5.1): UDP first, then passive TCP (RFC 6544). */
export function makeClientCandidates(
  services: Array<{ proto: "udp" | "tcp"; ips: string[]; port: number }>,
): Candidate[] {
  const out: Candidate[] = [];
  let n = 0;
  for (const svc of services) {
    for (const ip of svc.ips) {
      n++;
      const udp = svc.proto === "udp";
      out.push({
        foundation: `xrtc${n}`,
        component: 1,
        transport: udp ? "udp" : "tcp",
        priority: candidatePriority(udp ? 126 : 100, 65535 - n, 1),
        address: ip,
        port: svc.port,
        type: "host",
        tcpType: udp ? undefined : "passive",
        extensions: [],
      });
    }
  }
  return out;
}
