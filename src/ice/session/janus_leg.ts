// The Janus leg of a half-proxy session: a full ICE agent (RFC 8445) of xRTC's own, running over the
// project's I/O layer with the RFC 5769-verified STUN codec. Janus's candidates come from its SDP and
// trickles; xRTC's single local candidate is the upstream socket, which Janus learns as peer-reflexive
// (RFC 8445 §7.3.1.3). The controlling side nominates aggressively: USE-CANDIDATE on every check, so the
// first pair that succeeds is the selected one for both agents. No timers of its own: the media plane
// calls tick() every Ta and maintain() once per sweep, with the time of its clock.
import {
  Attr,
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeErrorCode,
  encodeXorAddress,
  getErrorCode,
  getTieBreaker,
  getUsername,
  hasAttribute,
  KeepaliveIndications,
  randomTransactionId,
  type StunMessage,
  transactionKey,
  verifyFingerprint,
  verifyIntegrity,
} from "../../stun/message.ts";
import type { Candidate } from "../../sdp/candidate.ts";
import { candidatePriority } from "../../sdp/candidate.ts";
import type { DatagramSocket } from "../../io/types.ts";
import { type PeerAddress, peerAddress } from "../../io/address.ts";
import type { IceCredentials } from "../credentials.ts";
import { buildCheck } from "../check.ts";
import { TIMING } from "../timing.ts";
import { drop } from "../../telemetry/catalog.ts";

type PairState = "waiting" | "in-progress" | "succeeded" | "failed";

interface Pair {
  remote: PeerAddress;
  state: PairState;
  transaction?: string;
  sentAt: number;
  attempts: number;
}

const PRFLX_PRIORITY = candidatePriority(110, 65535, 1);
/** Janus announces a few candidates and learns one address of xRTC's; more pairs than this are refused. */
const MAX_PAIRS = 16;
/** Media sent within this long counts as flowing: consent checks then, keepalives otherwise. */
const MEDIA_PAUSE_MS = TIMING.consentIntervalMs * 2;
const UTF8 = new TextEncoder();
/** Every leg's keepalives are written in one buffer (the socket copies each as it is sent). */
const KEEPALIVES = new KeepaliveIndications();

export interface JanusLegEvents {
  /** A pair was selected (or changed): media may flow. */
  onSelected(remote: PeerAddress): void;
  /** No pair could be established, or consent was lost. */
  onFailed(reason: string): void;
  /** maintain() is due sooner than maintenanceDueAt() said last (a pair was selected, media resumed). */
  onMaintenanceDue(): void;
  /** Every address that may send to this leg: route its packets here. False refuses the address. */
  onRemoteAddress(remote: PeerAddress): boolean;
}

export interface JanusLegOptions {
  socket: DatagramSocket;
  local: IceCredentials;
  remote: IceCredentials;
  controlling: boolean;
  tieBreaker: bigint;
  /** Tr (RFC 8445 §11): an idle pair gets a keepalive this often (options.janus_keepalive). */
  keepaliveIntervalMs: number;
  now: () => number;
  events: JanusLegEvents;
}

export class JanusLeg {
  readonly #pairs: Pair[] = [];
  readonly socket: DatagramSocket;
  readonly local: IceCredentials;
  readonly remote: IceCredentials;
  readonly #localKey: Uint8Array;
  readonly #remoteKey: Uint8Array;
  readonly #tieBreaker: bigint;
  readonly #keepaliveIntervalMs: number;
  readonly #now: () => number;
  readonly events: JanusLegEvents;
  #controlling: boolean;
  #selected?: Pair;
  #nominatedByPeer?: PeerAddress;
  #startedAt: number;
  /** When the next consent check is due while media flows (RFC 7675 §5.1, ~5 s), and when the next
   * keepalive is due while it does not (RFC 8445 §11, ~15 s); both move on with every one sent. */
  #nextConsentAt = 0;
  #nextKeepaliveAt = 0;
  #lastConsentReply: number;
  /** When media was last seen going out: dated by maintain(), which learns of it from #sentSinceMaintain,
   * so forwarding reads no clock per packet (on V8 a time is a heap number, garbage per packet). */
  #lastMediaSent = -Infinity;
  #sentSinceMaintain = false;
  /** No media went out within MEDIA_PAUSE_MS when maintain() last looked, or none yet: the next packet
   * resumes it. */
  #mediaPaused = true;
  /** When media last started after a pause: consent is counted from here if it is older. */
  #mediaResumedAt = -Infinity;
  #closed = false;

  constructor(o: JanusLegOptions) {
    this.socket = o.socket;
    this.local = o.local;
    this.remote = o.remote;
    this.#controlling = o.controlling;
    this.#tieBreaker = o.tieBreaker;
    this.#keepaliveIntervalMs = o.keepaliveIntervalMs;
    this.#now = o.now;
    this.events = o.events;
    this.#localKey = UTF8.encode(o.local.pwd);
    this.#remoteKey = UTF8.encode(o.remote.pwd);
    this.#startedAt = this.#lastConsentReply = o.now();
  }

  get controlling(): boolean {
    return this.#controlling;
  }

  get selected(): PeerAddress | undefined {
    return this.#selected?.remote;
  }

  /** True while no pair is selected: the plane ticks the leg every Ta. */
  get connecting(): boolean {
    return !this.#closed && this.#selected === undefined;
  }

  /** Adds a remote candidate from Janus's SDP or a trickle. Only UDP: the half proxy's Janus leg is UDP. */
  addRemoteCandidate(c: Candidate): void {
    if (this.#closed || c.transport.toLowerCase() !== "udp" || c.component !== 1 || c.port === 0) return;
    const remote = peerAddress(c.address, c.port); // mDNS names and other hosts are not usable
    if (remote) this.#addPair(remote);
  }

  #addPair(remote: PeerAddress): Pair | undefined {
    let pair = this.#pairs.find((p) => p.remote.key === remote.key);
    if (!pair) {
      if (this.#pairs.length >= MAX_PAIRS || !this.events.onRemoteAddress(remote)) return undefined;
      pair = { remote, state: "waiting", sentAt: 0, attempts: 0 };
      this.#pairs.push(pair);
    }
    return pair;
  }

  /** The pair the leg had selected before a restart of xRTC: selected again at once, consent fresh.
   * Janus's ICE state is unchanged, so its next check or media packet from there is expected. */
  restore(remote: PeerAddress): void {
    const pair = this.#addPair(remote);
    if (!pair) return;
    pair.state = "succeeded";
    this.#select(pair);
  }

  /** Media (DTLS/SRTP/SCTP) to Janus on the selected pair. Returns false when there is none yet. */
  send(data: Uint8Array): boolean {
    const s = this.#selected;
    if (s === undefined) return false;
    this.socket.send(data, s.remote);
    if (this.#mediaPaused) this.#resumeMedia();
    else this.#sentSinceMaintain = true;
    return true;
  }

  /** Media after a pause: consent checks are due again (RFC 7675 §5.1), not only keepalives. */
  #resumeMedia(): void {
    const now = this.#now();
    this.#mediaPaused = false;
    this.#lastMediaSent = this.#mediaResumedAt = this.#nextConsentAt = now;
    this.events.onMaintenanceDue();
  }

  /** A STUN message that arrived on the upstream socket from one of this leg's addresses. */
  onStun(msg: StunMessage, from: PeerAddress): void {
    if (this.#closed) return;
    if (msg.type === BINDING_REQUEST) this.#onRequest(msg, from);
    else if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) this.#onResponse(msg, from);
  }

  #onRequest(msg: StunMessage, from: PeerAddress): void {
    const username = getUsername(msg);
    if (
      username !== `${this.local.ufrag}:${this.remote.ufrag}` || !verifyFingerprint(msg) ||
      !verifyIntegrity(msg, this.#localKey)
    ) {
      drop.janus_leg_bad_request.inc();
      return;
    }
    // Role conflict (RFC 8445 §7.3.1.1).
    const theirControlling = getTieBreaker(msg, Attr.ICE_CONTROLLING);
    const theirControlled = getTieBreaker(msg, Attr.ICE_CONTROLLED);
    if (this.#controlling && theirControlling !== undefined) {
      if (this.#tieBreaker >= theirControlling) return this.#reply(msg, from, 487);
      this.#controlling = false;
    } else if (!this.#controlling && theirControlled !== undefined) {
      if (this.#tieBreaker >= theirControlled) this.#controlling = true;
      else return this.#reply(msg, from, 487);
    }
    const pair = this.#addPair(from); // a new source is a peer-reflexive candidate (§7.3.1.3)
    if (!pair) return;
    this.#reply(msg, from);
    this.#lastConsentReply = this.#now();
    if (!this.#controlling && hasAttribute(msg, Attr.USE_CANDIDATE)) {
      this.#nominatedByPeer = from;
      if (pair.state === "succeeded") this.#select(pair);
    }
    if (pair.state === "waiting" || pair.state === "failed") {
      pair.state = "waiting"; // triggered check (§7.3.1.4)
      pair.attempts = 0;
    }
  }

  #reply(msg: StunMessage, to: PeerAddress, errorCode?: number): void {
    const attributes: Array<[number, Uint8Array]> = errorCode === undefined
      ? [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(to, msg.transactionId)]]
      : [[Attr.ERROR_CODE, encodeErrorCode(errorCode, "Role Conflict")]];
    this.socket.send(
      buildStun({
        type: errorCode === undefined ? BINDING_SUCCESS : BINDING_ERROR,
        transactionId: msg.transactionId,
        attributes,
        integrityKey: this.#localKey,
        fingerprint: true,
      }),
      to,
    );
  }

  #onResponse(msg: StunMessage, from: PeerAddress): void {
    const key = transactionKey(msg.transactionId);
    const pair = this.#pairs.find((p) => p.transaction === key);
    if (!pair || pair.remote.key !== from.key || !verifyIntegrity(msg, this.#remoteKey)) {
      drop.janus_leg_bad_response.inc();
      return;
    }
    pair.transaction = undefined;
    this.#lastConsentReply = this.#now();
    if (msg.type === BINDING_ERROR) {
      if (getErrorCode(msg) === 487) {
        this.#controlling = !this.#controlling; // §7.2.5.1: switch role and retry
        pair.state = "waiting";
        pair.attempts = 0;
      } else pair.state = "failed";
      return;
    }
    const wasSucceeded = pair.state === "succeeded";
    pair.state = "succeeded";
    if (this.#selected === undefined || (!wasSucceeded && this.#nominatedByPeer?.key === from.key)) {
      this.#select(pair);
    }
  }

  #select(pair: Pair): void {
    if (this.#selected === pair) return;
    this.#selected = pair;
    const now = this.#now();
    this.#lastConsentReply = now;
    // The check that selected the pair counts as the first consent (RFC 7675 §5.1).
    this.#schedule(now);
    this.events.onSelected(pair.remote);
    this.events.onMaintenanceDue();
  }

  #check(pair: Pair, now: number): void {
    const tid = randomTransactionId();
    pair.transaction = transactionKey(tid);
    pair.state = pair.state === "succeeded" ? "succeeded" : "in-progress";
    pair.sentAt = now;
    pair.attempts++;
    this.socket.send(
      buildCheck({
        receiverUfrag: this.remote.ufrag,
        senderUfrag: this.local.ufrag,
        key: this.#remoteKey,
        priority: PRFLX_PRIORITY,
        controlling: this.#controlling,
        tieBreaker: this.#tieBreaker,
        useCandidate: this.#controlling,
        transactionId: tid,
      }),
      pair.remote,
    );
  }

  /** Connectivity checks while connecting: one new check per Ta plus due retransmissions. */
  tick(now: number): void {
    if (!this.connecting) return;
    let sentNew = false;
    for (const p of this.#pairs) {
      if (p.state === "waiting" && !sentNew) {
        this.#check(p, now);
        sentNew = true;
      } else if (p.state === "in-progress" && now - p.sentAt >= TIMING.checkRetransmitMs) {
        if (p.attempts >= TIMING.maxCheckAttempts) p.state = "failed";
        else this.#check(p, now);
      }
    }
    if (now - this.#startedAt > TIMING.janusLegConnectTimeoutMs) {
      this.#fail("janus leg: no candidate pair succeeded");
    }
  }

  /** Consent freshness towards Janus (RFC 7675) while media flows to it, keepalives (RFC 8445 §11) while
   * it does not; driven by the media plane when maintenanceDueAt() comes. */
  maintain(now: number): void {
    if (this.#closed || !this.#selected) return;
    if (this.#sentSinceMaintain) {
      this.#sentSinceMaintain = false;
      this.#lastMediaSent = Math.max(this.#lastMediaSent, now);
    }
    const flowing = this.#mediaFlowing(now);
    this.#mediaPaused = !flowing;
    if (now >= (flowing ? this.#nextConsentAt : this.#nextKeepaliveAt)) {
      this.#schedule(now);
      if (flowing) this.#check(this.#selected, now);
      else this.#keepalive(this.#selected);
    }
    if (flowing && now - this.#consentSince() > TIMING.consentLossMs) this.#fail("janus leg: consent lost");
  }

  /** When maintain() has something to do next: a consent check or consent loss while media flows, a
   * keepalive while it does not. Until a pair is selected, never (tick() drives the checks; selection
   * and media after a pause report onMaintenanceDue). */
  maintenanceDueAt(now: number): number {
    if (this.#closed || !this.#selected) return Infinity;
    if (!this.#mediaFlowing(now)) return this.#nextKeepaliveAt;
    return Math.min(this.#nextConsentAt, this.#consentSince() + TIMING.consentLossMs + 1);
  }

  /** Media sent within MEDIA_PAUSE_MS (as maintain() last dated it): consent checks then, keepalives
   * otherwise. */
  #mediaFlowing(now: number): boolean {
    return now - this.#lastMediaSent < MEDIA_PAUSE_MS;
  }

  /** Consent counts from the last authentic response or request from Janus, or from when media resumed
   * after a pause if that is later: no consent is sought while nothing is sent (RFC 7675 §5.1 is about
   * sending), so a pause longer than the consent timeout does not end the leg the moment media resumes;
   * a check goes out at once then, and the timeout runs from there. */
  #consentSince(): number {
    return Math.max(this.#lastConsentReply, this.#mediaResumedAt);
  }

  /** An idle pair's keepalive (RFC 8445 §11): a Binding indication, unauthenticated, with a FINGERPRINT.
   * Nothing answers it, so keeping 10,000 idle legs alive costs one small datagram each per ~15 s. */
  #keepalive(pair: Pair): void {
    this.socket.send(KEEPALIVES.next(), pair.remote);
  }

  /** The next consent check, uniformly random between 0.8 and 1.2 times its interval (RFC 7675 §5.1), and
   * the next keepalive, between 1 and 1.2 times Tr (never under it: RFC 8445 §11), so thousands of legs do
   * not send in step. */
  #schedule(now: number): void {
    this.#nextConsentAt = now + TIMING.consentIntervalMs * (0.8 + 0.4 * Math.random());
    this.#nextKeepaliveAt = now + this.#keepaliveIntervalMs * (1 + 0.2 * Math.random());
  }

  /** The leg stops, and says why once. */
  #fail(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.events.onFailed(reason);
  }

  close(): void {
    this.#closed = true;
  }

  /** True for an address this leg has a pair with (from Janus's SDP, trickles, or a verified check). */
  knows(remote: PeerAddress): boolean {
    return this.#pairs.some((p) => p.remote.key === remote.key);
  }

  remoteAddresses(): PeerAddress[] {
    return this.#pairs.map((p) => p.remote);
  }
}
