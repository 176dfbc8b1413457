// The media plane of one shard: its sockets on the shared ports, its upstream socket, the specs
// signalling has negotiated, and the session table of the sessions it owns. A spec stays dormant until
// a client's authentic check arrives here and this shard wins the claim; only then is the live session
// built and its Janus leg started. Teardown of every live session goes through #onSessionClosed.
import type { StunMessage } from "../stun/message.ts";
import type { Candidate } from "../sdp/candidate.ts";
import type { DatagramBackend, DatagramSocket, PeerAddress } from "../io/types.ts";
import { type CheckRoute, type MediaSession, SessionTable } from "./session.ts";
import { type ClaimBoard, STALE } from "./claims.ts";
import {
  applySpecUpdate,
  checkPassword,
  type SessionEnded,
  type SessionSpec,
  type SpecSink,
  type SpecUpdate,
} from "./spec.ts";
import { authenticCheck } from "./client_check.ts";
import { HalfSession } from "./half_session.ts";
import { type ConnectIceTcp, FullSession } from "./full_session.ts";
import { type ShardRouter, SharedUdpPort } from "./udp_port.ts";
import { TIMING } from "./timing.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

export interface MediaPlaneOptions {
  backend: DatagramBackend;
  /** This shard's index: 0 is the main thread. */
  shard: number;
  claims: ClaimBoard;
  consentTimeoutMs: number;
  /** Bind the shared ports with SO_REUSEPORT (several shards on one port). */
  reusePort: boolean;
  /** A session this shard owned has ended on its own (consent, failure). */
  onEnded: SessionEnded;
  /** Hands a client packet to the shard that owns its session. */
  handoff: (shard: number, port: string, data: Uint8Array, from: PeerAddress) => void;
  /** Opens the Janus-side connection of a full-proxy session over ICE-TCP. */
  connectIceTcp?: ConnectIceTcp;
}

interface SpecEntry {
  spec: SessionSpec;
  /** The password clients sign their checks with, encoded once. */
  key: Uint8Array;
  session?: MediaSession;
}

export class MediaPlane implements SpecSink, ShardRouter {
  readonly table = new SessionTable();
  readonly ports: SharedUdpPort[] = [];
  readonly upstream: DatagramSocket;
  readonly #specs = new Map<string, SpecEntry>();
  readonly #sweeper: ReturnType<typeof setInterval>;
  #sweepCursor: Iterator<MediaSession> = this.table.byUfrag.values();

  constructor(readonly opts: MediaPlaneOptions) {
    this.upstream = opts.backend.bind({ host: "0.0.0.0", port: 0 }, (data, from) => {
      const s = this.table.byUpstream.get(from);
      if (s === undefined) {
        counters.inc("upstream_drop_unknown_source");
        return;
      }
      s.onUpstreamPacket(data, from);
    });
    this.#sweeper = setInterval(() => this.#sweep(), TIMING.sweepIntervalMs / TIMING.sweepSlices);
  }

  get shard(): number {
    return this.opts.shard;
  }

  /** Negotiated sessions this shard knows, claimed or not. */
  get specCount(): number {
    return this.#specs.size;
  }

  addUdpPort(name: string, host: string, port: number): SharedUdpPort {
    const p = new SharedUdpPort(name, this.opts.backend, host, port, this, this.opts.reusePort);
    this.ports.push(p);
    return p;
  }

  // ---- SpecSink: driven by signalling ----

  open(spec: SessionSpec): void {
    if (this.#specs.has(spec.localUfrag)) return;
    this.#specs.set(spec.localUfrag, { spec, key: new TextEncoder().encode(checkPassword(spec)) });
  }

  update(localUfrag: string, u: SpecUpdate): void {
    const e = this.#specs.get(localUfrag);
    if (!e) return;
    applySpecUpdate(e.spec, u);
    const s = e.session;
    if (s === undefined) return;
    if (u.kind === "janusCandidate") addJanusCandidate(s, u.candidate);
    else if (s instanceof FullSession) s.setClientCredentials(u.credentials);
    else if (s instanceof HalfSession) s.clientUfrag = u.credentials.ufrag;
  }

  end(localUfrag: string, reason: string): void {
    const e = this.#specs.get(localUfrag);
    if (!e) return;
    this.#specs.delete(localUfrag); // first: a session closed from here is not reported back
    e.session?.close(reason);
    for (const p of this.ports) p.forget(localUfrag);
  }

  // ---- SessionRouter: the shared ports ask where a client's check goes ----

  route(ufrag: string, msg: StunMessage): CheckRoute {
    const live = this.table.byUfrag.get(ufrag);
    if (live) return { session: live };
    const e = this.#specs.get(ufrag);
    if (!e) {
      counters.inc("stun_drop_unknown_ufrag");
      return undefined;
    }
    // Only an authentic check may claim: knowing a ufrag is not enough to move a session.
    if (!authenticCheck(msg, ufrag, e.spec.clientUfrag, e.key)) return undefined;
    const owner = this.opts.claims.claim(e.spec.ticket, this.opts.shard);
    if (owner === STALE) {
      counters.inc("stun_drop_ended_session");
      return undefined;
    }
    if (owner !== this.opts.shard) return { shard: owner };
    return { session: this.#goLive(e) };
  }

  handoff(shard: number, port: string, data: Uint8Array, from: PeerAddress): void {
    this.opts.handoff(shard, port, data, from);
  }

  /** A packet another shard received for a session this one owns. */
  inject(port: string, data: Uint8Array, host: string, portNumber: number): void {
    const p = this.ports.find((x) => x.name === port);
    if (!p) return;
    counters.inc("handoff_packets_in");
    p.receive(data, this.opts.backend.address(host, portNumber));
  }

  #goLive(e: SpecEntry): MediaSession {
    const spec = e.spec;
    const up = this.#upstreamFor(spec.janusCandidates);
    const common = {
      id: spec.id,
      consentTimeoutMs: this.opts.consentTimeoutMs,
      upstream: up.socket,
      sharedUpstream: up.shared,
      address: (host: string, port: number) => this.opts.backend.address(host, port),
      table: this.table,
      onClose: (s: MediaSession, reason: string) => this.#onSessionClosed(e, s, reason),
    };
    const session: MediaSession = spec.mode === "full"
      ? new FullSession({
        ...common,
        localUfrag: spec.localUfrag,
        janus: spec.janus,
        client: spec.client,
        icetcp: spec.icetcp,
        connectIceTcp: this.opts.connectIceTcp,
      })
      : new HalfSession({
        ...common,
        clientFacing: spec.clientFacing,
        clientUfrag: spec.clientUfrag,
        janusLocal: spec.janusLocal,
        janusRemote: spec.janusRemote,
        janusControlling: spec.janusControlling,
        tieBreaker: spec.tieBreaker,
      });
    up.owner.session = session;
    e.session = session;
    this.table.add(session);
    for (const c of spec.janusCandidates) addJanusCandidate(session, c);
    counters.inc("sessions_claimed");
    log("info", "session_claimed", { session: spec.id, ufrag: spec.localUfrag, shard: this.opts.shard });
    return session;
  }

  /** The shared upstream socket, unless a live session already owns one of these Janus addresses (a
   * server serving many sessions on one port): then a socket of the session's own, so that packets are
   * never delivered to another client's session. */
  #upstreamFor(
    janusCandidates: Candidate[],
  ): { socket: DatagramSocket; shared: boolean; owner: { session?: MediaSession } } {
    const owner: { session?: MediaSession } = {};
    const addrs = janusCandidates.filter((c) => c.transport.toLowerCase() === "udp").map((c) =>
      this.opts.backend.address(c.address, c.port)
    );
    if (this.table.canShareUpstream(addrs)) return { socket: this.upstream, shared: true, owner };
    counters.inc("upstream_private_sockets");
    const socket = this.opts.backend.bind(
      { host: "0.0.0.0", port: 0 },
      (data, from) => owner.session?.onUpstreamPacket(data, from),
    );
    return { socket, shared: false, owner };
  }

  #onSessionClosed(e: SpecEntry, s: MediaSession, reason: string): void {
    this.table.remove(s);
    if (this.#specs.get(s.localUfrag) === e) {
      this.#specs.delete(s.localUfrag);
      this.opts.onEnded(s.localUfrag, reason);
    }
  }

  /** Maintains a slice of the sessions per tick: each is visited about once per sweepIntervalMs. The
   * map iterator survives between ticks (entries added or removed meanwhile are handled by Map). */
  #sweep(): void {
    const now = Date.now();
    const quota = Math.ceil(this.table.size / TIMING.sweepSlices);
    for (let i = 0; i < quota; i++) {
      let next = this.#sweepCursor.next();
      if (next.done) {
        this.#sweepCursor = this.table.byUfrag.values();
        next = this.#sweepCursor.next();
        if (next.done) return;
      }
      const s = next.value;
      const reason = s.maintain(now);
      if (reason) s.close(reason);
    }
  }

  /** Closes every session of this shard and its sockets (shutdown). */
  shutdown(): void {
    clearInterval(this.#sweeper);
    for (const ufrag of [...this.#specs.keys()]) this.end(ufrag, "shutdown");
    for (const p of this.ports) p.close();
    this.upstream.close();
  }
}

function addJanusCandidate(s: MediaSession, c: Candidate): void {
  if (s instanceof HalfSession || s instanceof FullSession) s.addJanusCandidate(c);
}
