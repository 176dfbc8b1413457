// The media plane of one shard: its sockets on the shared ports, its upstream sockets, and its session
// table. A spec stays dormant until a client's authentic check arrives here and this shard wins the
// claim; only then is the live session built and its Janus leg started. Teardown of every live session
// goes through #onClosed. Time comes from an injected clock, and the plane drives every session's timers
// from one tick (tests drive it by hand).
import type { StunMessage } from "../../stun/message.ts";
import type { Candidate } from "../../sdp/candidate.ts";
import type { DatagramBackend, DatagramSocket } from "../../io/types.ts";
import { anyAddress, type Family, type PeerAddress, peerAddress } from "../../io/address.ts";
import { type Clock, systemClock } from "../../io/clock.ts";
import { everyOnEventLoop, type PeriodicTask, type PeriodicWork } from "../../io/periodic.ts";
import type { LiveState, MediaSession, SessionHost, SessionView } from "../session/media_session.ts";
import { type SessionEntry, SessionTable } from "../demux/session_table.ts";
import type { CheckRoute } from "../demux/demux.ts";
import { type ShardRouter, SharedUdpPort } from "../demux/udp_port.ts";
import { type FrameSink, IceTcpConnection, TcpClientPort, type TcpRelay } from "../demux/ice_tcp.ts";
import { type ClaimBoard, type ClaimTicket, STALE } from "./claims.ts";
import {
  applySpecUpdate,
  type SessionEnded,
  type SessionSpec,
  type SpecSink,
  type SpecUpdate,
} from "../negotiation/spec.ts";
import { authenticCheck } from "../session/client_check.ts";
import { HalfSession } from "../session/half_session.ts";
import { type ConnectIceTcp, FullSession } from "../session/full_session.ts";
import { TIMING } from "../timing.ts";
import { DueSchedule } from "../due_schedule.ts";
import {
  connectionsClosed,
  drop,
  type EndReason,
  handoffPackets,
  iceSetup,
  internalErrors,
  sessionsActive,
  sessionsClaimed,
  upstreamSockets,
} from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";

export interface MediaPlaneOptions {
  backend: DatagramBackend;
  /** This shard's index: 0 is the main thread. */
  shard: number;
  claims: ClaimBoard;
  consentTimeoutMs: number;
  /** Tr of every Janus leg (options.janus_keepalive). */
  janusKeepaliveMs: number;
  /** Bind the shared ports with SO_REUSEPORT (several shards on one port). */
  reusePort: boolean;
  /** A session this shard owned has ended on its own (consent, failure). */
  onEnded: SessionEnded;
  /** Hands a client packet to the shard that owns its session. */
  handoff: (shard: number, port: string, data: Uint8Array, from: PeerAddress) => void;
  /** Opens the Janus-side connection of a full-proxy session over ICE-TCP. */
  connectIceTcp?: ConnectIceTcp;
  clock?: Clock;
  /** Run the plane's own timer (false in tests that call tick() and maintain() themselves). */
  autoTick?: boolean;
  /** The IPv4 upstream socket's port: kept across restarts so Janus sees xRTC's legs where they were
   * (0: any). Shared with a process taking over (SO_REUSEPORT) when `reuseUpstream`. */
  upstreamPort?: number;
  reuseUpstream?: boolean;
  /** A live session's resumable state changed (written to the state directory). */
  onLiveState?: (id: string, state: LiveState) => void;
  /** The shard a session's first authentic check claims it for: this one by default. The main thread
   * claims for a worker when worker shards serve the UDP ports, so that a session whose first check came
   * over ICE-TCP lives where its UDP packets arrive; its connection is then relayed (`tcpRelay`). */
  claimFor?: (ticket: ClaimTicket) => number;
  /** Hands ICE-TCP connections this thread accepted to the shard that owns their session. */
  tcpRelay?: TcpRelay;
  /** A worker shard: writes to, and closes of, connections the main thread holds for it. */
  relayBack?: {
    send(connection: number, data: Uint8Array): void;
    close(connection: number, reason: string): void;
  };
}

/** At most this many relayed connections per shard: the main thread's own TCP limits keep far below. */
const MAX_RELAYED_TCP = 65_536;

export interface PlaneStats {
  shard: number;
  /** Live sessions this shard owns. */
  sessions: number;
  /** Negotiated sessions it knows, claimed or not. */
  specs: number;
  /** Client addresses bound on its UDP sockets. */
  boundTuples: number;
  /** Janus addresses its sessions' legs are routed by. */
  upstreamRoutes: number;
}

const IN = handoffPackets.with({ direction: "in" });
const SESSION_TIMER_ERRORS = internalErrors.with({ where: "session_timer" });

export class MediaPlane implements SpecSink, ShardRouter {
  readonly table = new SessionTable();
  readonly ports: SharedUdpPort[] = [];
  readonly #upstreams = new Map<Family, DatagramSocket>();
  readonly #ticking = new Set<MediaSession>();
  readonly #clock: Clock;
  /** The check-pacing and maintenance tasks, each running only while it has something to do: a plane
   * without sessions (the main thread's, when media runs on workers) never wakes its thread, and one
   * whose sessions have nothing due wakes when the first of them has. */
  #ticks?: PeriodicTask;
  #maintenanceTask?: PeriodicTask;
  #autoTick: boolean;
  /** When each live session next needs maintain(). */
  readonly #maintenance = new DueSchedule<SessionEntry>(TIMING.maintenanceTickMs);
  /** ICE-TCP connections the main thread holds for sessions of this shard, by connection id. */
  readonly #relayedTcp = new Map<number, TcpClientPort>();

  constructor(readonly opts: MediaPlaneOptions) {
    this.#clock = opts.clock ?? systemClock;
    // The IPv4 upstream socket exists from the start (tests and the status page read its port).
    this.#upstream(4);
    this.#autoTick = opts.autoTick !== false;
    sessionsActive.collectWith((set) => {
      const counts = new Map<string, number>();
      for (const s of this.table.live()) {
        const k = `${s.mode}/${s.transport ?? "none"}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      for (const mode of ["half", "full"] as const) {
        for (const transport of ["udp", "tcp", "none"] as const) {
          set({ mode, transport }, counts.get(`${mode}/${transport}`) ?? 0);
        }
      }
    });
  }

  get shard(): number {
    return this.opts.shard;
  }

  /** The IPv4 upstream socket, shared by the sessions of this shard. */
  get upstream(): DatagramSocket {
    return this.#upstream(4)!;
  }

  /** The shared upstream socket of a family, bound on first use; undefined when the family is unusable. */
  #upstream(family: Family): DatagramSocket | undefined {
    let s = this.#upstreams.get(family);
    if (s) return s;
    const onPacket = (data: Uint8Array, from: PeerAddress) => {
      const session = this.table.byUpstream(from);
      if (session === undefined) return drop.upstream_unknown_source.inc();
      session.onUpstreamPacket(data, from);
    };
    const wanted = family === 4 ? this.opts.upstreamPort ?? 0 : 0;
    const reusePort = this.opts.reuseUpstream;
    try {
      try {
        s = this.opts.backend.bind({ host: anyAddress(family), port: wanted, reusePort }, onPacket);
      } catch (e) {
        if (wanted === 0) throw e;
        log("warn", "upstream_port_unavailable", { port: wanted, error: e });
        s = this.opts.backend.bind({ host: anyAddress(family), port: 0, reusePort }, onPacket);
      }
    } catch (e) {
      log("warn", "upstream_socket_unavailable", { family, error: e });
      return undefined;
    }
    this.#upstreams.set(family, s);
    return s;
  }

  addUdpPort(name: string, host: string, port: number): SharedUdpPort {
    const p = new SharedUdpPort({
      name,
      backend: this.opts.backend,
      host,
      port,
      router: this,
      reusePort: this.opts.reusePort,
    });
    this.ports.push(p);
    return p;
  }

  /** A reload removed a `proto: udp` service: its socket closes, its bound addresses go. */
  removeUdpPort(name: string): void {
    const i = this.ports.findIndex((p) => p.name === name);
    if (i < 0) return;
    this.ports[i].close();
    this.ports.splice(i, 1);
  }

  /** Serves an ICE-TCP connection a TCP port classified (shard 0 only). */
  serveIceTcp(conn: Deno.Conn, peer: PeerAddress, prefix: Uint8Array): Promise<void> {
    return new IceTcpConnection(conn, peer, this, "tcp", this.opts.tcpRelay).run(prefix);
  }

  /** The main thread relays an ICE-TCP connection to this shard: its first frame was an authentic check
   * for a session this shard owns. */
  relayedTcpOpen(connection: number, peer: PeerAddress, portName: string): void {
    const back = this.opts.relayBack;
    if (!back || this.#relayedTcp.has(connection)) return;
    if (this.#relayedTcp.size >= MAX_RELAYED_TCP) {
      connectionsClosed.inc({ reason: "total_limit" });
      return back.close(connection, "too many relayed connections");
    }
    const sink: FrameSink = {
      sendFrame: (data) => back.send(connection, data),
      close: (reason) => {
        const port = this.#relayedTcp.get(connection);
        if (!port) return;
        this.#relayedTcp.delete(connection);
        back.close(connection, reason);
        port.ended();
      },
    };
    this.#relayedTcp.set(connection, new TcpClientPort(connection, peer, this, portName, sink));
  }

  relayedTcpFrame(connection: number, frame: Uint8Array): void {
    const port = this.#relayedTcp.get(connection);
    try {
      port?.onFrame(frame);
    } catch (error) {
      // As on the main thread, where a frame's exception ends its connection: never the worker.
      drop.handler_error.inc();
      log("error", "packet_handler_error", { connection, ...port?.served, error });
      port?.sink.close("handler error");
    }
  }

  /** The connection ended on the main thread. */
  relayedTcpClosed(connection: number): void {
    const port = this.#relayedTcp.get(connection);
    this.#relayedTcp.delete(connection);
    port?.ended();
  }

  stats(): PlaneStats {
    return {
      shard: this.opts.shard,
      sessions: this.table.liveCount,
      specs: this.table.size,
      boundTuples: this.ports.reduce((n, p) => n + p.boundCount, 0),
      upstreamRoutes: this.table.upstreamCount,
    };
  }

  views(): SessionView[] {
    const now = this.#clock.now();
    return [...this.table.live()].map((s) => s.view(now));
  }

  // ---- SpecSink: driven by signalling ----

  open(spec: SessionSpec): void {
    if (!this.table.open(spec)) log("warn", "spec_refused_duplicate", { session: spec.id });
  }

  update(id: string, u: SpecUpdate): void {
    const e = this.table.byId(id);
    if (!e) return;
    applySpecUpdate(e.spec, u);
    if (u.kind === "restart") this.table.rekey(e);
    e.session?.applyUpdate(u);
    if (e.session) this.#wantTicks(e.session);
  }

  /** A session this shard owned in the process before, resumed live at once (its check came then). */
  restore(spec: SessionSpec, live: LiveState): void {
    if (!this.table.open(spec)) return;
    const e = this.table.byId(spec.id)!;
    if (this.opts.claims.claim(spec.ticket, this.opts.shard) !== this.opts.shard) return;
    try {
      this.#goLive(e, live);
    } catch (error) {
      // A record that read back but cannot be resumed (an address of a port no longer configured, say)
      // ends like any failed session: the claim is released and Janus is told, never a stuck slot.
      log("warn", "session_not_restored", { session: spec.id, error });
      this.table.remove(e);
      for (const p of this.ports) p.forget(e.keys.keys());
      this.opts.onEnded(spec.id, "janus_leg_failed");
    }
  }

  end(id: string, reason: EndReason): void {
    const e = this.table.byId(id);
    if (!e) return;
    this.table.remove(e); // first: a session closed from here is not reported back
    e.session?.close(reason);
    for (const p of this.ports) p.forget(e.keys.keys());
  }

  // ---- SessionRouter: the shared ports ask where a client's check goes ----

  route(ufrag: string, msg: StunMessage): CheckRoute {
    const e = this.table.byUfrag(ufrag);
    if (!e) {
      drop.unknown_ufrag.inc();
      return undefined;
    }
    if (e.session) return { session: e.session };
    // Only an authentic check may claim: knowing a ufrag is not enough to move a session.
    const spec = e.spec;
    const clientUfrag = spec.mode === "half" && ufrag === spec.previousFacing?.ufrag
      ? spec.previousClient?.ufrag
      : spec.client?.ufrag;
    if (!authenticCheck(msg, ufrag, clientUfrag, e.keys.get(ufrag)!)) return undefined;
    const ticket = e.spec.ticket;
    const owner = this.opts.claims.claim(ticket, this.opts.claimFor?.(ticket) ?? this.opts.shard);
    if (owner === STALE) {
      drop.session_ended.inc();
      return undefined;
    }
    if (owner !== this.opts.shard) return { shard: owner };
    return { session: this.#goLive(e) };
  }

  handoff(shard: number, port: string, data: Uint8Array, from: PeerAddress): void {
    this.opts.handoff(shard, port, data, from);
  }

  /** A packet another shard received for a session this one owns. */
  inject(port: string, data: Uint8Array, from: PeerAddress): void {
    const p = this.ports.find((x) => x.name === port);
    // The main thread serves no UDP port beside workers (shards.ts): a session it claimed over ICE-TCP
    // keeps that path; its UDP packets stop here.
    if (!p) return drop.port_not_on_owner_shard.inc();
    IN.inc();
    p.receive(data, from);
  }

  #host(e: SessionEntry): SessionHost {
    return {
      shard: this.opts.shard,
      consentTimeoutMs: this.opts.consentTimeoutMs,
      janusKeepaliveMs: this.opts.janusKeepaliveMs,
      now: () => this.#clock.now(),
      routeUpstream: (addr, s) => this.table.routeUpstream(addr, s),
      retireUfrag: (_s, ufrag) => {
        this.table.retire(e, ufrag);
        for (const p of this.ports) p.forget([ufrag]);
      },
      wantTicks: (s) => this.#wantTicks(s),
      maintainSoon: () => {
        if (!e.session) return;
        this.#maintenance.expedite(e, this.#clock.now());
        this.#maintainWithin(TIMING.maintenanceTickMs);
      },
      liveStateChanged: (s) => this.opts.onLiveState?.(e.spec.id, s.liveState()),
      port: (name) => this.ports.find((p) => p.name === name),
      onClose: (s, reason) => this.#onClosed(e, s, reason),
    };
  }

  /** The Janus leg over ICE-TCP is a connection on this thread's event loop: it is held while open. */
  readonly #connectIceTcpHeld: ConnectIceTcp = (remote, onPacket, onClose) => {
    const release = this.opts.backend.holdEventLoop?.();
    return this.opts.connectIceTcp!(remote, onPacket, () => {
      release?.();
      onClose();
    });
  };

  #goLive(e: SessionEntry, restore?: LiveState): MediaSession {
    const spec = e.spec;
    const now = this.#clock.now();
    const up = this.#upstreamFor(spec.janusCandidates);
    const host = this.#host(e);
    const session: MediaSession = spec.mode === "full"
      ? new FullSession({
        spec,
        host,
        upstream: up.socket,
        connectIceTcp: this.opts.connectIceTcp && this.#connectIceTcpHeld,
        restore,
      })
      : new HalfSession({ spec, host, upstream: up.socket, sharedUpstream: up.shared, restore });
    up.owner.session = session;
    this.table.goLive(e, session);
    this.#wantTicks(session);
    this.#maintenance.schedule(e, now);
    this.#maintainWithin(TIMING.maintenanceTickMs);
    if (restore) {
      log("info", "session_restored", { session: spec.id, shard: this.opts.shard });
      return session;
    }
    sessionsClaimed.inc();
    if (spec.answeredAt > 0) {
      iceSetup.observe({ phase: "answer_to_first_check" }, Math.max(0, now - spec.answeredAt) / 1000);
    }
    log("info", "session_claimed", { session: spec.id, shard: this.opts.shard });
    return session;
  }

  /** The shared upstream socket of Janus's family, unless a live session already owns one of these Janus
   * addresses (a server serving many sessions on one port): then a socket of the session's own, so that
   * packets are never delivered to another client's session. */
  #upstreamFor(
    janusCandidates: Candidate[],
  ): { socket: DatagramSocket; shared: boolean; owner: { session?: MediaSession } } {
    const owner: { session?: MediaSession } = {};
    const addrs = janusCandidates.filter((c) => c.transport.toLowerCase() === "udp")
      .map((c) => peerAddress(c.address, c.port)).filter((a): a is PeerAddress => a !== undefined);
    const family: Family = addrs.length > 0 && addrs.every((a) => a.family === 6) ? 6 : 4;
    const shared = this.#upstream(family) ?? this.upstream;
    if (this.table.canShareUpstream(addrs)) return { socket: shared, shared: true, owner };
    upstreamSockets.inc();
    const socket = this.opts.backend.bind(
      { host: anyAddress(family), port: 0 },
      (data, from) => owner.session?.onUpstreamPacket(data, from),
    );
    return { socket, shared: false, owner };
  }

  #onClosed(e: SessionEntry, s: MediaSession, reason: EndReason): void {
    this.#ticking.delete(s);
    this.#maintenance.remove(e);
    this.table.closed(e);
    if (this.table.byId(e.spec.id) === e) {
      this.table.remove(e);
      for (const p of this.ports) p.forget(e.keys.keys());
      log("info", "session_ended", { session: e.spec.id, reason });
      this.opts.onEnded(e.spec.id, reason);
    }
  }

  #wantTicks(s: MediaSession): void {
    this.#ticking.add(s);
    if (this.#autoTick && this.#ticks === undefined) {
      this.#ticks = this.#every(TIMING.checkIntervalMs, () => this.tick(this.#clock.now()));
    }
  }

  /** Maintenance runs within `delayMs` (a session was filed to be due now). */
  #maintainWithin(delayMs: number): void {
    if (!this.#autoTick) return;
    if (this.#maintenanceTask) this.#maintenanceTask.runWithin(delayMs);
    else this.#maintenanceTask = this.#every(TIMING.maintenanceTickMs, () => this.#onMaintenanceDue());
  }

  /** Periodic work on this plane's thread: from the backend's own wait where it has one (a worker's
   * media never waits for an event-loop turn to be maintained), else a timer. */
  #every(ms: number, work: PeriodicWork): PeriodicTask {
    return this.opts.backend.every?.(ms, work) ?? everyOnEventLoop(ms, work);
  }

  /** The maintenance task: maintains the sessions that are due; returns how long until the next one is. */
  #onMaintenanceDue(): number | void {
    const now = this.#clock.now();
    // A bounded batch per tick, so sessions that fall due together never hold media up in one burst.
    const quota = Math.ceil(this.#maintenance.size * TIMING.maintenanceTickMs / TIMING.maintenanceSpreadMs);
    if (quota > 0) this.maintain(now, quota);
    if (this.#maintenance.size > 0) return this.#maintenance.nextDueAt() - now;
    this.#maintenanceTask?.stop();
    this.#maintenanceTask = undefined;
  }

  /** Check pacing and retransmissions of the sessions that need them. */
  tick(now: number): void {
    for (const s of this.#ticking) {
      if (!this.#guarded(s, "tick", () => s.tick(now))) continue;
      if (!s.needsTicks) this.#ticking.delete(s);
    }
    if (this.#ticking.size === 0 && this.#ticks !== undefined) {
      this.#ticks.stop();
      this.#ticks = undefined;
    }
  }

  /** Maintains up to `quota` of the live sessions whose maintenance is due (consent, keepalives), each
   * then filed for its next due time. */
  maintain(now: number, quota = Infinity): void {
    for (const e of this.#maintenance.takeDue(now, quota)) {
      const s = e.session;
      if (!s) continue;
      let reason: EndReason | undefined;
      if (!this.#guarded(s, "maintain", () => reason = s.maintain(now))) continue;
      if (reason) s.close(reason);
      else if (e.session === s) {
        this.#maintenance.schedule(
          e,
          Math.min(s.maintenanceDueAt(now), now + TIMING.maintenanceMaxIntervalMs),
        );
      }
    }
  }

  /** Runs one session's timer work; an exception ends that session (internal_error) and no other: the
   * sessions after it in the same pass are still served and filed again. False when it threw. */
  #guarded(s: MediaSession, what: "tick" | "maintain", work: () => void): boolean {
    try {
      work();
      return true;
    } catch (error) {
      SESSION_TIMER_ERRORS.inc();
      this.#ticking.delete(s);
      log("error", "session_timer_error", { session: s.id, what, error });
      try {
        s.close("internal_error");
      } catch (e) {
        log("error", "session_close_error", { session: s.id, error: e });
      }
      return false;
    }
  }

  /** Closes every session of this shard and its sockets (shutdown). */
  shutdown(reason: EndReason = "shutdown"): void {
    this.#ticks?.stop();
    this.#maintenanceTask?.stop();
    this.#autoTick = false;
    for (const e of [...this.table.entries()]) this.end(e.spec.id, reason);
    for (const id of [...this.#relayedTcp.keys()]) this.relayedTcpClosed(id);
    for (const p of this.ports) p.close();
    for (const s of this.#upstreams.values()) s.close();
  }
}
