// The Janus leg of a half-proxy session: a full ICE agent (RFC 8445) of xRTC's own, running over the
// project's I/O layer with the RFC 5769-verified STUN codec. Janus's candidates come from its SDP and
// trickles; xRTC's single local candidate is the shared upstream socket, which Janus learns as
// peer-reflexive (RFC 8445 §7.3.1.3). The controlling side nominates aggressively: USE-CANDIDATE on
// every check, so the first pair that succeeds is the selected one for both agents.
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
  randomTransactionId,
  type StunMessage,
  transactionKey,
  verifyFingerprint,
  verifyIntegrity,
} from "../stun/message.ts";
import type { Candidate } from "../sdp/candidate.ts";
import { candidatePriority } from "../sdp/candidate.ts";
import type { DatagramSocket, PeerAddress } from "../io/types.ts";
import type { IceCredentials } from "./credentials.ts";
import { buildCheck } from "./check.ts";
import { TIMING } from "./timing.ts";
import { counters } from "../metrics.ts";

type PairState = "waiting" | "in-progress" | "succeeded" | "failed";

interface Pair {
  remote: PeerAddress;
  state: PairState;
  transaction?: string;
  sentAt: number;
  attempts: number;
}

/** Retransmissions per check before a pair is given up (RFC 8489 §6.2.1 Rc, spread over ~5 s). */
const MAX_CHECK_ATTEMPTS = 25;
const PRFLX_PRIORITY = candidatePriority(110, 65535, 1);
const UTF8 = new TextEncoder();

export interface JanusLegEvents {
  /** A pair was selected (or changed): media may flow. */
  onSelected(remote: PeerAddress): void;
  /** No pair could be established, or consent was lost. */
  onFailed(reason: string): void;
  /** Every address that may send to this leg: route its packets here. False refuses the address. */
  onRemoteAddress(remote: PeerAddress): boolean;
}

export class JanusLeg {
  readonly #pairs: Pair[] = [];
  readonly #localKey: Uint8Array;
  readonly #remoteKey: Uint8Array;
  readonly #tieBreaker: bigint;
  #controlling: boolean;
  #selected?: Pair;
  #nominatedByPeer?: PeerAddress;
  #timer?: ReturnType<typeof setInterval>;
  #startedAt = Date.now();
  /** When the next consent check or keepalive is due. */
  #nextConsentAt = 0;
  #lastConsentReply = Date.now();
  #lastMediaSent = 0;
  #closed = false;

  constructor(
    readonly socket: DatagramSocket,
    readonly address: (host: string, port: number) => PeerAddress,
    readonly local: IceCredentials,
    readonly remote: IceCredentials,
    controlling: boolean,
    tieBreaker: bigint,
    readonly events: JanusLegEvents,
  ) {
    this.#controlling = controlling;
    this.#tieBreaker = tieBreaker;
    this.#localKey = UTF8.encode(local.pwd);
    this.#remoteKey = UTF8.encode(remote.pwd);
    this.#timer = setInterval(() => this.#pace(), TIMING.checkIntervalMs);
  }

  get controlling(): boolean {
    return this.#controlling;
  }

  get selected(): PeerAddress | undefined {
    return this.#selected?.remote;
  }

  /** Adds a remote candidate from Janus's SDP or a trickle. Only UDP: the half proxy's Janus leg is UDP. */
  addRemoteCandidate(c: Candidate): void {
    if (this.#closed || c.transport.toLowerCase() !== "udp" || c.component !== 1 || c.port === 0) return;
    if (c.address.endsWith(".local")) return; // mDNS names are not resolvable here
    this.#addPair(this.address(c.address, c.port));
  }

  #addPair(remote: PeerAddress): Pair | undefined {
    let pair = this.#pairs.find((p) => p.remote === remote);
    if (!pair) {
      if (!this.events.onRemoteAddress(remote)) return undefined;
      pair = { remote, state: "waiting", sentAt: 0, attempts: 0 };
      this.#pairs.push(pair);
      if (this.#timer === undefined && !this.#selected) {
        this.#timer = setInterval(() => this.#pace(), TIMING.checkIntervalMs);
      }
    }
    return pair;
  }

  /** Media (DTLS/SRTP/SCTP) to Janus on the selected pair. Returns false when there is none yet. */
  send(data: Uint8Array): boolean {
    const s = this.#selected;
    if (s === undefined) return false;
    this.socket.send(data, s.remote);
    this.#lastMediaSent = performance.now();
    return true;
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
      counters.inc("janus_leg_bad_requests");
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
    this.#lastConsentReply = Date.now();
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
    if (!pair || pair.remote !== from || !verifyIntegrity(msg, this.#remoteKey)) {
      counters.inc("janus_leg_bad_responses");
      return;
    }
    pair.transaction = undefined;
    this.#lastConsentReply = Date.now();
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
    if (this.#selected === undefined || (!wasSucceeded && this.#nominatedByPeer === from)) this.#select(pair);
  }

  #select(pair: Pair): void {
    if (this.#selected === pair) return;
    this.#selected = pair;
    this.#lastConsentReply = Date.now();
    // The check that selected the pair counts as the first consent (RFC 7675 §5.1).
    this.#nextConsentAt = Date.now() + this.#consentInterval(TIMING.keepaliveIntervalMs);
    this.events.onSelected(pair.remote);
  }

  #check(pair: Pair): void {
    const tid = randomTransactionId();
    pair.transaction = transactionKey(tid);
    pair.state = pair.state === "succeeded" ? "succeeded" : "in-progress";
    pair.sentAt = Date.now();
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

  /** Connectivity checks, one new check per Ta plus due retransmissions; stops once a pair is selected. */
  #pace(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#selected) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    let sentNew = false;
    for (const p of this.#pairs) {
      if (p.state === "waiting" && !sentNew) {
        this.#check(p);
        sentNew = true;
      } else if (p.state === "in-progress" && now - p.sentAt >= TIMING.checkRetransmitMs) {
        if (p.attempts >= MAX_CHECK_ATTEMPTS) p.state = "failed";
        else this.#check(p);
      }
    }
    if (now - this.#startedAt > TIMING.janusLegConnectTimeoutMs) {
      this.events.onFailed("janus leg: no candidate pair succeeded");
    }
  }

  /** Consent freshness towards Janus (RFC 7675) and keepalives (RFC 8445 §11), driven by the sweeper. */
  maintain(now: number): void {
    if (this.#closed || !this.#selected) return;
    if (now >= this.#nextConsentAt) {
      // Consent checks every ~5 s while media flows to Janus (RFC 7675 §5.1), keepalives every ~15 s
      // when idle (RFC 8445 §11); randomised so thousands of sessions do not check in step.
      const mediaFlowing = performance.now() - this.#lastMediaSent < TIMING.consentIntervalMs * 2;
      this.#nextConsentAt = now +
        this.#consentInterval(mediaFlowing ? TIMING.consentIntervalMs : TIMING.keepaliveIntervalMs);
      this.#check(this.#selected);
    }
    if (now - this.#lastConsentReply > TIMING.consentLossMs) this.events.onFailed("janus leg: consent lost");
  }

  /** RFC 7675 §5.1: uniformly random between 0.8 and 1.2 times the base interval. */
  #consentInterval(base: number): number {
    return base * (0.8 + 0.4 * Math.random());
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** True for an address this leg has a pair with (from Janus's SDP, trickles, or a verified check). */
  knows(remote: PeerAddress): boolean {
    return this.#pairs.some((p) => p.remote === remote);
  }

  remoteAddresses(): PeerAddress[] {
    return this.#pairs.map((p) => p.remote);
  }
}
