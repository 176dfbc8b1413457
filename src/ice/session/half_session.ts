// Half proxy (the default): ICE is terminated on both sides. xRTC answers the client's checks with the
// credentials it gave the client, runs its own agent towards Janus, and forwards everything else
// (DTLS, SRTP, SRTCP, SCTP) untouched between the client's selected path and the Janus leg. A client's
// ICE restart concerns only the client leg: new client-facing credentials, the Janus leg untouched.
import type { StunMessage } from "../../stun/message.ts";
import {
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  classifyPacket,
  parseStun,
  StunError,
} from "../../stun/message.ts";
import type { Candidate } from "../../sdp/candidate.ts";
import type { DatagramSocket } from "../../io/types.ts";
import type { PeerAddress } from "../../io/address.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, LiveState, MediaSession, SessionHost, SessionView } from "./media_session.ts";
import { peerAddress } from "../../io/address.ts";
import { type HalfSpec, retirePrevious, type SpecUpdate } from "../negotiation/spec.ts";
import { answerClientCheck } from "./client_check.ts";
import { ClientPaths } from "./client_paths.ts";
import { JanusLeg } from "./janus_leg.ts";
import { TIMING } from "../timing.ts";
import { drop, type EndReason, FORWARDED, iceSetup, janusLegs, stunChecks } from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";

export interface HalfSessionOptions {
  spec: HalfSpec;
  host: SessionHost;
  /** The session's state before a restart of xRTC, to resume from. */
  restore?: LiveState;
  upstream: DatagramSocket;
  /** False when `upstream` is this session's own socket (its Janus address is shared with another session). */
  sharedUpstream: boolean;
}

const UTF8 = new TextEncoder();

export class HalfSession implements MediaSession {
  readonly mode = "half" as const;
  readonly id: string;
  readonly spec: HalfSpec;
  readonly leg: JanusLeg;
  readonly #host: SessionHost;
  /** Client-facing ufrag -> the password's key: the current credentials, and the previous ones until
   * a check under the current ones authenticates. */
  readonly #keys = new Map<string, Uint8Array>();
  readonly #paths: ClientPaths;
  #pending: Uint8Array[] = [];
  readonly #createdAt: number;
  #closed = false;
  #packetsToJanus = 0;
  #bytesToJanus = 0;
  #packetsToClient = 0;
  #bytesToClient = 0;

  constructor(readonly opts: HalfSessionOptions) {
    const { spec, host } = opts;
    this.spec = spec;
    this.id = spec.id;
    this.#host = host;
    this.#createdAt = host.now();
    for (const c of [spec.clientFacing, spec.previousFacing]) {
      if (c) this.#keys.set(c.ufrag, UTF8.encode(c.pwd));
    }
    this.#paths = new ClientPaths({
      id: spec.id,
      localUfrag: spec.localUfrag,
      client: spec.client,
      tieBreaker: spec.tieBreaker,
      consentTimeoutMs: host.consentTimeoutMs,
      now: host.now,
      onChange: () => {
        if (!this.#closed) host.liveStateChanged(this);
      },
    });
    let legCounted = opts.restore !== undefined;
    this.leg = new JanusLeg({
      socket: opts.upstream,
      local: spec.janusLocal,
      remote: spec.janusRemote,
      controlling: opts.restore?.controlling ?? spec.janusControlling,
      tieBreaker: spec.tieBreaker,
      keepaliveIntervalMs: host.janusKeepaliveMs,
      now: host.now,
      events: {
        onSelected: (remote) => {
          log("info", "janus_leg_selected", { session: this.id, janus: remote.text });
          // Counted once per leg, and not for a leg resumed after a restart (it connected before).
          if (!legCounted) {
            legCounted = true;
            janusLegs.inc({ mode: "half", transport: "udp" });
            iceSetup.observe(
              { phase: "first_check_to_janus_connected" },
              (host.now() - this.#createdAt) / 1000,
            );
          }
          this.#flushPending();
          if (!this.#closed) host.liveStateChanged(this);
        },
        onFailed: (detail) => {
          log("info", "janus_leg_failed", { session: this.id, detail });
          this.close("janus_leg_failed");
        },
        onMaintenanceDue: () => host.maintainSoon(this),
        onRemoteAddress: (remote) => !opts.sharedUpstream || host.routeUpstream(remote, this),
      },
    });
    for (const c of spec.janusCandidates) this.leg.addRemoteCandidate(c);
    if (opts.restore) this.#restore(opts.restore);
  }

  #restore(live: LiveState): void {
    this.#paths.restoreAll(live.paths, (port, from) => this.#host.port(port)?.bind(from, this));
    const janus = live.janus && peerAddress(live.janus.host, live.janus.port);
    if (janus) this.leg.restore(janus);
  }

  liveState(): LiveState {
    const j = this.leg.selected;
    return {
      shard: this.#host.shard,
      paths: this.#paths.udpPaths(),
      janus: j && { host: j.host, port: j.port },
      controlling: this.leg.controlling,
    };
  }

  get transport(): "udp" | "tcp" | undefined {
    return this.#paths.selected?.transport;
  }

  get selectedPath(): ClientPath | undefined {
    return this.#paths.selected;
  }

  addJanusCandidate(c: Candidate): void {
    this.leg.addRemoteCandidate(c);
  }

  applyUpdate(u: SpecUpdate): void {
    if (u.kind === "janusCandidate") this.leg.addRemoteCandidate(u.candidate);
    else if (u.kind === "restart") this.#keys.set(u.clientFacing.ufrag, UTF8.encode(u.clientFacing.pwd));
    this.#paths.setCredentials(this.spec.localUfrag, this.spec.client);
    this.#host.wantTicks(this);
  }

  get needsTicks(): boolean {
    return this.leg.connecting || this.#paths.validating;
  }

  onClientStun(msg: StunMessage, ufrag: string | undefined, from: PeerAddress, port: ClientPort): void {
    if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) {
      if (!this.#paths.onResponse(msg, port.bind(from, this))) drop.stun_unexpected.inc();
      return;
    }
    if (msg.type !== BINDING_REQUEST) {
      drop.stun_unexpected.inc();
      return;
    }
    const key = ufrag === undefined ? undefined : this.#keys.get(ufrag);
    if (key === undefined) {
      drop.check_bad_username.inc();
      return;
    }
    // Before the client's ICE restart completes, its old checks carry the old pair of ufrags.
    const clientUfrag = ufrag === this.spec.previousFacing?.ufrag
      ? this.spec.previousClient?.ufrag
      : this.spec.client?.ufrag;
    const verdict = answerClientCheck(msg, from, ufrag!, clientUfrag, key);
    if (!verdict) return;
    port.reply(verdict.response, from);
    if (!verdict.valid) {
      stunChecks.inc({ outcome: "role_conflict" });
      return;
    }
    stunChecks.inc({ outcome: "answered" });
    if (ufrag === this.spec.localUfrag && this.spec.previousFacing) this.#retirePrevious();
    this.#paths.onAuthenticCheck(port.bind(from, this), verdict.nominate);
    if (this.#paths.validating) this.#host.wantTicks(this);
  }

  /** A check under the new credentials authenticated (RFC 8445 §9: the restart took): the old ones go. */
  #retirePrevious(): void {
    const old = retirePrevious(this.spec)!;
    this.#keys.delete(old);
    log("info", "client_ice_restart_done", { session: this.id });
    this.#host.retireUfrag(this, old);
  }

  onClientData(data: Uint8Array, path: ClientPath): void {
    if (this.#closed) return;
    if (!this.leg.send(data)) {
      if (this.#pending.length < TIMING.pendingQueueLimit) this.#pending.push(data.slice());
      else drop.janus_leg_not_ready.inc();
      return;
    }
    this.#packetsToJanus++;
    this.#bytesToJanus += data.length;
    const f = FORWARDED.to_janus[path.transport];
    f.packets.inc();
    f.bytes.inc(data.length);
  }

  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void {
    if (this.#closed) return;
    if (data.length > 0 && classifyPacket(data[0]) === "stun") {
      try {
        this.leg.onStun(parseStun(data), from);
      } catch (e) {
        if (!(e instanceof StunError)) throw e;
        drop.upstream_stun_malformed.inc();
      }
      return;
    }
    // A private upstream socket hears any source; only Janus's own addresses may send media.
    if (!this.opts.sharedUpstream && !this.leg.knows(from)) {
      drop.upstream_unknown_source.inc();
      return;
    }
    if (!this.#paths.send(data)) return;
    this.#packetsToClient++;
    this.#bytesToClient += data.length;
    const f = FORWARDED.to_client[this.#paths.selected!.transport];
    f.packets.inc();
    f.bytes.inc(data.length);
  }

  #flushPending(): void {
    const queued = this.#pending;
    this.#pending = [];
    for (const p of queued) this.leg.send(p);
  }

  onPathClosed(path: ClientPath): void {
    this.#paths.closed(path);
  }

  tick(now: number): void {
    this.leg.tick(now);
    this.#paths.tick(now);
  }

  maintain(now: number): EndReason | undefined {
    if (this.#paths.maintain(now)) return "consent_expired";
    this.leg.maintain(now);
    return undefined;
  }

  maintenanceDueAt(now: number): number {
    return Math.min(this.#paths.maintenanceDueAt(), this.leg.maintenanceDueAt(now));
  }

  close(reason: EndReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.leg.close();
    if (!this.opts.sharedUpstream) this.opts.upstream.close();
    this.#paths.closeAll();
    this.#pending = [];
    this.#host.onClose(this, reason);
  }

  view(now: number): SessionView {
    return {
      id: this.id,
      mode: "half",
      shard: this.#host.shard,
      ageMs: now - this.#createdAt,
      paths: this.#paths.view(now),
      janus: this.leg.selected?.text,
      janusTransport: this.leg.selected ? "udp" : undefined,
      packetsToJanus: this.#packetsToJanus,
      bytesToJanus: this.#bytesToJanus,
      packetsToClient: this.#packetsToClient,
      bytesToClient: this.#bytesToClient,
    };
  }
}
