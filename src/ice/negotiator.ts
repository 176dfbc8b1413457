// The negotiation side of the media plane, on the main thread with signalling: per Janus handle it
// reads the ICE credentials of each offer and answer, returns the SDP each side must see, and turns
// each negotiated ICE session into a spec for the shards (open, update, close). It is the one place
// sessions begin and end, and the one place their number is limited.
import type { Candidate } from "../sdp/candidate.ts";
import { candidatePriority } from "../sdp/candidate.ts";
import { iceCredentials, iceView, rewriteIce, type Sdp, stripCandidates } from "../sdp/sdp.ts";
import {
  type IceCredentials,
  randomCredentials,
  randomIceString,
  randomTieBreaker,
  UFRAG_LENGTH,
} from "./credentials.ts";
import type { ClaimBoard } from "./claims.ts";
import {
  applySpecUpdate,
  MAX_JANUS_CANDIDATES,
  type SessionSpec,
  type SpecSink,
  type SpecUpdate,
} from "./spec.ts";
import { TIMING } from "./timing.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

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

/** Per Janus handle (one PeerConnection): what has been negotiated so far. */
interface HandleState {
  key: string;
  janusSession: string;
  mode: RouteMode;
  /** Client's credentials from its offer, waiting for Janus's answer. */
  clientOffer?: IceCredentials;
  /** xRTC's credentials towards Janus, stable across renegotiations. */
  janusLocal: IceCredentials;
  /** The live session, and when it was opened. */
  spec?: SessionSpec;
  openedAt: number;
  /** Janus's trickled candidates, kept for the session (they may arrive before the answer). */
  janusCandidates: Candidate[];
}

export interface NegotiatorOptions {
  sink: SpecSink;
  claims: ClaimBoard;
  /** The candidates clients see: every enabled udp and tcp service × its candidate IPs. */
  clientCandidates: Candidate[];
  consentTimeoutMs: number;
  maxSessions: number;
}

export class Negotiator {
  readonly #handles = new Map<string, HandleState>();
  readonly #byUfrag = new Map<string, HandleState>();
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(readonly opts: NegotiatorOptions) {
    this.#sweeper = setInterval(() => this.#sweep(), TIMING.sweepIntervalMs);
  }

  /** Live ICE sessions, claimed or not. */
  get sessionCount(): number {
    return this.#byUfrag.size;
  }

  get handleCount(): number {
    return this.#handles.size;
  }

  /** The spec of a handle's live session. */
  specFor(key: string): SessionSpec | undefined {
    return this.#handles.get(key)?.spec;
  }

  #handle(key: string, janusSession: string, mode: RouteMode): HandleState {
    let h = this.#handles.get(key);
    if (!h) {
      h = { key, janusSession, mode, janusLocal: randomCredentials(), janusCandidates: [], openedAt: 0 };
      this.#handles.set(key, h);
    }
    h.mode = mode;
    return h;
  }

  #checkCapacity(h: HandleState): void {
    if (!h.spec && this.#byUfrag.size >= this.opts.maxSessions) {
      counters.inc("sessions_refused_limit");
      throw new SessionLimitError(`xRTC is at its limit of ${this.opts.maxSessions} sessions`);
    }
  }

  /** The client offers (echotest, publisher): returns the offer Janus must see. */
  clientOffer(key: string, janusSession: string, mode: RouteMode, sdp: Sdp): Sdp {
    const creds = iceCredentials(sdp);
    if (!creds) throw new SdpRejected("the offer has no ice-ufrag/ice-pwd");
    const h = this.#handle(key, janusSession, mode);
    this.#checkCapacity(h);
    if (h.spec && h.spec.clientUfrag !== creds.ufrag) this.#end(h, "ICE restart by the client");
    h.clientOffer = creds;
    if (mode.icedirect) return stripCandidates(sdp, true);
    return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
  }

  /** Janus answers the client's offer: returns the answer the client must see. */
  janusAnswer(key: string, sdp: Sdp): Sdp {
    const h = this.#handles.get(key);
    const janus = iceCredentials(sdp);
    if (!h || !h.clientOffer || !janus) {
      counters.inc("sdp_unmatched_answers");
      throw new SdpRejected("an answer from Janus without a recorded offer, or without ICE credentials");
    }
    const client = h.clientOffer;
    h.clientOffer = undefined;
    return this.#establish(h, client, janus, true, sdp);
  }

  /** Janus offers (streaming, subscriber): returns the offer the client must see. */
  janusOffer(key: string, janusSession: string, mode: RouteMode, sdp: Sdp): Sdp {
    const janus = iceCredentials(sdp);
    if (!janus) throw new SdpRejected("Janus's offer has no ice-ufrag/ice-pwd");
    const h = this.#handle(key, janusSession, mode);
    this.#checkCapacity(h);
    return this.#establish(h, undefined, janus, false, sdp);
  }

  /** The client answers Janus's offer: returns the answer Janus must see. */
  clientAnswer(key: string, sdp: Sdp): Sdp {
    const h = this.#handles.get(key);
    const creds = iceCredentials(sdp);
    if (!h || !h.spec || !creds) {
      counters.inc("sdp_unmatched_answers");
      throw new SdpRejected("an answer without a recorded offer from Janus, or without ICE credentials");
    }
    this.#update(h.spec, { kind: "client", credentials: creds });
    if (h.spec.mode === "full") return stripCandidates(sdp, true);
    return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
  }

  /** A candidate Janus trickled (full_trickle, or Janus's offers): given to the session, never to the client. */
  janusCandidate(key: string, candidate: Candidate): void {
    const h = this.#handles.get(key);
    if (!h) {
      counters.inc("janus_candidates_unmatched");
      return;
    }
    if (h.janusCandidates.length >= MAX_JANUS_CANDIDATES) {
      counters.inc("janus_candidates_over_limit");
      return;
    }
    h.janusCandidates.push(candidate);
    if (h.spec) this.#addJanusCandidate(h.spec, candidate);
  }

  #establish(
    h: HandleState,
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
    // Renegotiation without an ICE restart keeps the session and the credentials the client has.
    const same = old !== undefined && janusOf(old).ufrag === janus.ufrag && janusOf(old).pwd === janus.pwd &&
      (client === undefined || old.clientUfrag === client.ufrag);
    if (same) {
      for (const candidate of fromSdp) this.#addJanusCandidate(old, candidate);
      if (client && old.mode === "full") {
        this.#update(old, { kind: "client", credentials: client });
      }
    } else {
      if (old) {
        this.#end(h, "ICE restart");
        h.janusCandidates = [];
      }
      const base = {
        id: h.key,
        localUfrag: this.#allocateUfrag(),
        ticket: this.opts.claims.allocate(),
        clientUfrag: client?.ufrag,
        janusCandidates: [...fromSdp, ...h.janusCandidates].slice(0, MAX_JANUS_CANDIDATES),
      };
      h.spec = h.mode.icedirect ? { ...base, mode: "full", janus, client, icetcp: h.mode.icetcp } : {
        ...base,
        mode: "half",
        clientFacing: randomCredentials(base.localUfrag),
        janusLocal: h.janusLocal,
        janusRemote: janus,
        janusControlling: xrtcOffered || janusLite,
        tieBreaker: randomTieBreaker(),
      };
      h.openedAt = Date.now();
      this.#byUfrag.set(base.localUfrag, h);
      counters.inc("sessions_opened");
      log("info", "session_open", { session: h.key, ufrag: base.localUfrag, mode: h.spec.mode });
      this.opts.sink.open(h.spec);
    }
    const s = h.spec!;
    // Full proxy: the client checks Janus's password through xRTC's node-unique ufrag.
    const pwd = s.mode === "half" ? s.clientFacing.pwd : s.janus.pwd;
    return rewriteIce(sdp, {
      ufrag: s.localUfrag,
      pwd,
      candidates: this.opts.clientCandidates,
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
    this.opts.sink.update(spec.localUfrag, u);
  }

  /** A ufrag unique among every live session of this node. */
  #allocateUfrag(): string {
    for (;;) {
      const u = randomIceString(UFRAG_LENGTH);
      if (!this.#byUfrag.has(u)) return u;
    }
  }

  /** Ends a handle's session: the spec leaves every shard, its ufrag and claim slot are freed. */
  #end(h: HandleState, reason: string): void {
    const s = h.spec;
    if (!s) return;
    h.spec = undefined;
    this.#byUfrag.delete(s.localUfrag);
    this.opts.claims.release(s.ticket);
    counters.inc("sessions_closed");
    log("info", "session_close", { session: h.key, ufrag: s.localUfrag, reason });
    this.opts.sink.end(s.localUfrag, reason);
  }

  /** A shard ended a session it owned (consent expiry, Janus leg failure). */
  ended(localUfrag: string, reason: string): void {
    const h = this.#byUfrag.get(localUfrag);
    // The owner has closed it; the other shards drop their dormant copy.
    if (h) this.#end(h, reason);
  }

  /** hangup, detach: the handle's PeerConnection is gone. */
  release(key: string, reason: string): void {
    const h = this.#handles.get(key);
    if (!h) return;
    this.#end(h, reason);
    this.#handles.delete(key);
  }

  /** destroy, timeout: everything of a Janus session. */
  releaseJanusSession(janusSession: string, reason: string): void {
    for (const h of [...this.#handles.values()]) {
      if (h.janusSession === janusSession) this.release(h.key, reason);
    }
  }

  /** Sessions no client has claimed with a valid check within the consent timeout end here; claimed
   * ones are kept alive or expired by the shard that owns them (RFC 7675). */
  #sweep(): void {
    const deadline = Date.now() - this.opts.consentTimeoutMs;
    for (const h of [...this.#byUfrag.values()]) {
      if (h.spec && h.openedAt < deadline && this.opts.claims.owner(h.spec.ticket) === undefined) {
        this.#end(h, "client consent expired (never connected)");
      }
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const h of [...this.#handles.values()]) this.release(h.key, "shutdown");
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
