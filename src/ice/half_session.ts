// Half proxy (the default): ICE is terminated on both sides. xRTC answers the client's checks with the
// credentials it gave the client, runs its own agent towards Janus, and forwards everything else
// (DTLS, SRTP, SRTCP, SCTP) untouched between the client's selected path and the Janus leg.
import type { StunMessage } from "../stun/message.ts";
import { classifyPacket, parseStun, StunError } from "../stun/message.ts";
import type { Candidate } from "../sdp/candidate.ts";
import type { DatagramSocket, PeerAddress } from "../io/types.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, MediaSession, SessionTable } from "./session.ts";
import type { IceCredentials } from "./credentials.ts";
import { answerClientCheck } from "./client_check.ts";
import { JanusLeg } from "./janus_leg.ts";
import { TIMING } from "./timing.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

export interface HalfSessionOptions {
  id: string;
  /** Credentials xRTC gave the client (client leg). */
  clientFacing: IceCredentials;
  /** The client's own ufrag, when known (from its offer or answer). */
  clientUfrag?: string;
  /** Credentials xRTC uses towards Janus, and Janus's. */
  janusLocal: IceCredentials;
  janusRemote: IceCredentials;
  /** xRTC controls the Janus leg when it made the offer to Janus, or Janus is ICE-lite. */
  janusControlling: boolean;
  tieBreaker: bigint;
  consentTimeoutMs: number;
  upstream: DatagramSocket;
  /** False when `upstream` is this session's own socket (its Janus address is shared with another session). */
  sharedUpstream: boolean;
  address: (host: string, port: number) => PeerAddress;
  table: SessionTable;
  onClose: (s: HalfSession, reason: string) => void;
}

export class HalfSession implements MediaSession {
  readonly mode = "half" as const;
  readonly id: string;
  readonly localUfrag: string;
  clientUfrag?: string;
  readonly #key: Uint8Array;
  readonly #paths = new Set<ClientPath>();
  #selected?: ClientPath;
  #nominated = false;
  #pending: Uint8Array[] = [];
  #lastValidFromClient = Date.now();
  #closed = false;
  readonly leg: JanusLeg;

  constructor(readonly opts: HalfSessionOptions) {
    this.id = opts.id;
    this.localUfrag = opts.clientFacing.ufrag;
    this.clientUfrag = opts.clientUfrag;
    this.#key = new TextEncoder().encode(opts.clientFacing.pwd);
    this.leg = new JanusLeg(
      opts.upstream,
      opts.address,
      opts.janusLocal,
      opts.janusRemote,
      opts.janusControlling,
      opts.tieBreaker,
      {
        onSelected: (remote) => {
          log("info", "janus_leg_selected", { session: this.id, ufrag: this.localUfrag, janus: remote.key });
          this.#flushPending();
        },
        onFailed: (reason) => this.close(reason),
        onRemoteAddress: (remote) => !opts.sharedUpstream || opts.table.routeUpstream(remote, this),
      },
    );
  }

  addJanusCandidate(c: Candidate): void {
    this.leg.addRemoteCandidate(c);
  }

  get selectedPath(): ClientPath | undefined {
    return this.#selected;
  }

  onClientStun(msg: StunMessage, from: PeerAddress, port: ClientPort): void {
    if (msg.type !== 0x0001) {
      counters.inc("stun_drop_not_request"); // xRTC is lite: it sends no requests, so expects no responses
      return;
    }
    const verdict = answerClientCheck(msg, from, this.localUfrag, this.clientUfrag, this.#key);
    if (!verdict) return;
    port.reply(verdict.response, from);
    if (!verdict.valid) return;
    const path = port.bind(from, this);
    this.#lastValidFromClient = Date.now();
    if (!this.#paths.has(path)) {
      this.#paths.add(path);
      log("info", "client_path_bound", { session: this.id, ufrag: this.localUfrag, path: path.key });
    }
    // Media follows the nominated pair (RFC 8445 §8.1.1); until one is nominated, the latest valid one.
    if (verdict.nominate) {
      if (this.#selected !== path) {
        log("info", "client_path_nominated", { session: this.id, ufrag: this.localUfrag, path: path.key });
      }
      this.#selected = path;
      this.#nominated = true;
    } else if (!this.#nominated) this.#selected = path;
  }

  onClientData(data: Uint8Array, path: ClientPath): void {
    if (this.#closed) return;
    // Consent (RFC 7675) is refreshed by checks only; media alone does not keep a session alive.
    if (!this.leg.send(data)) {
      if (this.#pending.length < TIMING.pendingQueueLimit) this.#pending.push(data.slice());
      else counters.inc("media_drop_janus_leg_not_ready");
    }
    if (this.#selected === undefined) this.#selected = path;
  }

  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void {
    if (this.#closed) return;
    if (data.length > 0 && classifyPacket(data[0]) === "stun") {
      try {
        this.leg.onStun(parseStun(data), from);
      } catch (e) {
        if (!(e instanceof StunError)) throw e;
        counters.inc("stun_drop_malformed_upstream");
      }
      return;
    }
    // A private upstream socket hears any source; only Janus's own addresses may send media.
    if (!this.opts.sharedUpstream && !this.leg.knows(from)) {
      counters.inc("upstream_drop_unknown_source");
      return;
    }
    const path = this.#selected;
    if (path === undefined) {
      counters.inc("media_drop_no_client_path");
      return;
    }
    path.send(data);
  }

  #flushPending(): void {
    const queued = this.#pending;
    this.#pending = [];
    for (const p of queued) this.leg.send(p);
  }

  onPathClosed(path: ClientPath): void {
    this.#paths.delete(path);
    if (this.#selected === path) {
      this.#selected = [...this.#paths].pop();
      this.#nominated = false;
    }
  }

  maintain(now: number): string | undefined {
    if (now - this.#lastValidFromClient > this.opts.consentTimeoutMs) return "client consent expired";
    this.leg.maintain(now);
    return undefined;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.leg.close();
    if (!this.opts.sharedUpstream) this.opts.upstream.close();
    for (const p of this.#paths) p.close();
    this.#paths.clear();
    this.#pending = [];
    this.opts.onClose(this, reason);
  }
}
