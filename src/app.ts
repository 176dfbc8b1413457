// Wiring and lifecycle: the media-plane shards, the negotiator, signalling with its Janus backends, the
// front door's listeners, the admin listener, and the state directory. start() is the one startup path;
// the returned Xrtc reloads (SIGHUP), drains (the first SIGTERM), hands over to a new process (an upgrade)
// and stops. A reload reconciles what is running with the new configuration; live sessions are not touched.
import { type Config, type ListenerService, mediaOnWorkerThread } from "./config/types.ts";
import { canonicalIp, formatHostPort } from "./io/address.ts";
import type { DatagramBackend } from "./io/types.ts";
import { createBackend, type IoBackendChoice } from "./io/backend.ts";
import { raiseDescriptorLimit } from "./io/rlimit.ts";
import { ClaimBoard } from "./ice/shards/claims.ts";
import { type HandleIce, makeClientCandidates, Negotiator } from "./ice/negotiation/negotiator.ts";
import type { MediaPlane } from "./ice/shards/media_plane.ts";
import { ShardSet, type UdpPortSpec } from "./ice/shards/shards.ts";
import type { LiveState } from "./ice/session/media_session.ts";
import { JanusSignalling } from "./signalling/janus.ts";
import { Upstreams } from "./signalling/upstreams.ts";
import type { HandleEntry, JanusSessionEntry, RegistryChange } from "./signalling/sessions.ts";
import { janusRequest } from "./signalling/janus_client.ts";
import { ClusterDirectory } from "./cluster/cluster.ts";
import { type HandlerDeps, makeHttpHandler } from "./http/server.ts";
import { WhipFront } from "./whip/whip.ts";
import { ConnectionLimiter } from "./front/connections.ts";
import { TcpPort } from "./front/tcp_port.ts";
import { HttpListener } from "./front/http_listener.ts";
import { AdminListener, type ReadinessCheck } from "./admin/admin.ts";
import { buildStatus } from "./admin/status.ts";
import { StateJournal } from "./state/journal.ts";
import type { HandleRecord, JanusSessionRecord } from "./state/records.ts";
import { type Held, planRestore } from "./state/reconcile.ts";
import {
  buildInfo,
  configGeneration,
  configLastReload,
  configLastReloadSuccess,
  draining,
  registry,
  shardUp,
  stateRecordsSkipped,
  stateRestored,
} from "./telemetry/catalog.ts";
import { exposition, mergeShards } from "./telemetry/exposition.ts";
import { installProcessCollectors, installThreadCollectors, startLagMonitor } from "./telemetry/process.ts";
import { log, setLogLevel } from "./telemetry/log.ts";

export const VERSION = "0.3.0";

export interface StartOptions {
  /** Overrides options.io_backend. */
  ioBackend?: IoBackendChoice;
  /** Printed when each listener is up ("xrtc: <name> listening on <url>") and for notices. */
  announce?: (line: string) => void;
  /** A shard worker died after starting; xRTC cannot serve all its clients any more. */
  onFatal?: (reason: string) => void;
  /** An upgrade: another process still serves these sessions and writes their records. This one
   * restores what is on disk now but records nothing until restoreFromState() catches up, after the
   * other has exited. */
  takeover?: boolean;
}

/** What a reload did: applied, or refused; and what it could not apply to a running process. */
export interface ReloadResult {
  generation: number;
  applied: string[];
  notApplied: string[];
}

export interface Xrtc {
  readonly config: Config;
  /** Sessions and SDP (main thread); undefined when no service has ICE enabled. */
  readonly negotiator?: Negotiator;
  /** Every shard of the media plane. */
  readonly shards?: ShardSet;
  /** Shard 0, the main thread's media plane (with the TCP ports). */
  readonly plane?: MediaPlane;
  readonly signalling: JanusSignalling;
  /** The WHIP front-end (RFC 9725). */
  readonly whip: WhipFront;
  readonly backend: DatagramBackend;
  readonly upstreams: Upstreams;
  readonly limiter: ConnectionLimiter;
  /** The admin listener's address, when there is one. */
  readonly adminAddr?: Deno.NetAddr;
  readonly generation: number;
  metricsText(): Promise<string>;
  status(): Promise<unknown>;
  reloadTls(): Promise<void>;
  /** Applies a validated configuration (a reload, nginx-style): live sessions are not touched. */
  reload(next: Config): Promise<ReloadResult>;
  /** A reload refused for errors in the file: recorded for /status and the metrics. */
  refusedReload(errors: string[]): void;
  /** Draining: no new Janus sessions; resolves when the last ICE session has ended or at the timeout. */
  drain(timeoutMs?: number): Promise<"drained" | "timeout">;
  /** Sessions restored from the state directory at start (or on catching up after a takeover). */
  restoreFromState(): number;
  /** An upgrade: stop accepting, keep the session records for the process taking over, stop. */
  handover(): Promise<void>;
  /** Stops at once. The session records stay (a restart resumes the calls still alive). */
  stop(): Promise<void>;
}

/** How often the allocator's free memory is returned to the OS (FFI backend): session set-up bursts leave
 * glibc's arenas holding freed memory, which otherwise counts as RSS for good. */
const MEMORY_RELEASE_INTERVAL_MS = 10_000;
/** How often Janus sessions are checked for idleness and reclaim windows. */
const REGISTRY_SWEEP_MS = 1_000;
/** A draining node logs its progress this often. */
const DRAIN_PROGRESS_MS = 5_000;
/** The state directory's record of each shard's upstream port. */
const UPSTREAM_PORTS_KEY = "upstream_ports";

/** The upstream ports the process before used (Janus knows xRTC by them); none when unreadable. */
function recordedUpstreamPorts(journal: StateJournal | undefined): number[] {
  try {
    const v: unknown = JSON.parse(journal?.meta(UPSTREAM_PORTS_KEY) ?? "[]");
    return Array.isArray(v) ? v.map((p) => Number.isInteger(p) && p > 0 && p < 65536 ? p : 0) : [];
  } catch {
    return [];
  }
}

/** Resolves candidate_ips entries that are host names (RFC 8839: candidates carry addresses). */
export async function resolveCandidateIps(names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) {
    const ip = canonicalIp(n);
    if (ip) {
      out.push(ip);
      continue;
    }
    const found = [
      ...(await Deno.resolveDns(n, "A").catch(() => [] as string[])),
      ...(await Deno.resolveDns(n, "AAAA").catch(() => [] as string[])),
    ];
    if (found.length === 0) throw new Error(`candidate host "${n}" does not resolve`);
    out.push(...found.map((f) => canonicalIp(f) ?? f));
  }
  return [...new Set(out)];
}

async function iceServicesOf(config: Config) {
  const out: Array<{ proto: "udp" | "tcp"; ips: string[]; port: number }> = [];
  for (const l of config.listeners) {
    if ((l.proto === "udp" || l.proto === "tcp") && l.net.enableIce) {
      out.push({ proto: l.proto, ips: await resolveCandidateIps(l.net.candidateIps), port: l.net.addr.port });
    }
  }
  return out;
}

const udpPortsOf = (config: Config): UdpPortSpec[] =>
  config.listeners.filter((l) => l.proto === "udp" && l.net.enableIce)
    .map((l) => ({ name: l.name, host: l.net.addr.host, port: l.net.addr.port }));

/** What a listener is bound to: a change of any of these replaces it rather than updating it. */
const bindingOf = (l: ListenerService) =>
  `${l.proto} ${l.net.addr.host}:${l.net.addr.port} ice=${l.net.enableIce} http=${l.enableHttp}`;

export async function start(initial: Config, opts: StartOptions = {}): Promise<Xrtc> {
  let config = initial;
  const announce = opts.announce ?? (() => {});
  setLogLevel(config.options.logLevel);
  const workers = config.options.workers;
  const { backend, fallback } = await createBackend(opts.ioBackend ?? config.options.ioBackend, {
    gso: config.options.udpGso,
    gro: config.options.udpGro,
  });
  if (fallback) announce(`xrtc: notice: io_backend auto: using the deno backend (${fallback})`);
  const mediaOnWorkers = workers <= 1 && mediaOnWorkerThread(config.options, backend.name);
  // Worker shards each open their own FFI backend and bind the public ports with SO_REUSEPORT.
  if ((workers > 1 || mediaOnWorkers) && backend.name !== "ffi") {
    await backend.close();
    const asked = workers > 1 ? `options.workers: ${workers}` : "options.media_thread: worker";
    throw new Error(`${asked} needs the ffi backend (SO_REUSEPORT), not ${backend.name}`);
  }
  installProcessCollectors();
  installThreadCollectors();
  const stopLag = startLagMonitor();
  const iceServices = await iceServicesOf(config);

  // The state directory: the record of live sessions, and the upstream ports Janus knows xRTC by.
  const journal = config.options.stateDir ? StateJournal.open(config.options.stateDir) : undefined;
  const upstreamPorts = recordedUpstreamPorts(journal);
  /** The live state each handle's session reported last (kept with its record). */
  const liveStates = new Map<string, LiveState>();
  let recording = false;

  let negotiator: Negotiator | undefined;
  let shards: ShardSet | undefined;
  const handleRecord = (h: HandleEntry): HandleRecord => ({
    v: 1,
    session: h.session.id,
    id: h.id,
    plugin: h.plugin,
    janusLocal: h.ice.janusLocal,
    janusCandidates: h.ice.janusCandidates,
    spec: h.ice.spec,
    live: h.ice.spec ? liveStates.get(h.key) : undefined,
  });
  const record = (c: RegistryChange) => {
    if (!journal || !recording) return;
    if (c.kind === "session") journal.putSession(sessionRecord(c.session));
    else if (c.kind === "session_gone") journal.deleteSession(c.id);
    else if (c.kind === "handle") journal.putHandle(handleRecord(c.handle));
    else journal.deleteHandle(c.key);
  };
  const recordHandle = (h: HandleIce) => {
    if (!h.spec) liveStates.delete(h.key);
    const entry = signalling.sessions.byKey(h.key);
    if (entry && journal && recording) journal.putHandle(handleRecord(entry));
  };

  const reusePorts = journal !== undefined; // a process taking over binds the same ports beside this one
  if (iceServices.length) {
    const claims = ClaimBoard.create(config.options.maxSessions);
    try {
      shards = await ShardSet.start({
        backend,
        shards: workers,
        mediaOnWorkers,
        udpPorts: udpPortsOf(config),
        consentTimeoutMs: config.options.consentTimeoutMs,
        janusKeepaliveMs: config.options.janusKeepaliveMs,
        claims,
        reusePorts,
        upstreamPorts,
        reuseUpstream: reusePorts,
        onEnded: (id, reason) => {
          negotiator?.ended(id, reason);
          if (reason !== "shutdown") signalling.iceSessionEnded(id);
        },
        onShardFailed: (shard, error) => opts.onFatal?.(`shard ${shard} failed: ${error}`),
        onLiveState: (id, state) => {
          liveStates.set(id, state);
          const entry = signalling.sessions.byKey(id);
          if (entry?.ice.spec && journal && recording) journal.putHandle(handleRecord(entry));
        },
      });
    } catch (e) {
      journal?.close();
      await backend.close();
      stopLag();
      throw e;
    }
    negotiator = new Negotiator({
      sink: shards,
      claims,
      clientCandidates: makeClientCandidates(iceServices),
      consentTimeoutMs: config.options.consentTimeoutMs,
      maxSessions: config.options.maxSessions,
      onExpired: (id) => signalling.iceSessionEnded(id),
      onSpecChange: recordHandle,
    });
  }
  const janusClient = Deno.createHttpClient({ poolIdleTimeout: 30_000 });
  // Several nodes: the sessions this node holds go into the cluster's directory.
  const cluster = config.cluster
    ? new ClusterDirectory(config.cluster, () => signalling.sessions.sessions())
    : undefined;
  const signalling = new JanusSignalling(negotiator, {
    limits: config.options.limits,
    timers: config.options.janus,
    tellJanus: (b, path, request) => void janusRequest(b, path, { janus: request }, janusClient),
    onChange: (c) => {
      record(c);
      cluster?.onRegistryChange(c);
    },
  });
  const upstreams = new Upstreams(config, janusClient, (b) => {
    if (!b.up) signalling.sessions.backendDown(b);
  });
  const plane = shards?.local;

  const sessionRecord = (s: JanusSessionEntry): JanusSessionRecord => ({
    v: 1,
    id: s.id,
    upstream: s.backend.pool.name,
    backend: s.backend.name,
    protocol: s.protocol,
    mode: s.mode,
    client: s.client,
    createdAt: s.createdAt,
    whip: s.whipResource,
  });

  /** Makes this process's sessions what the records say (reconciles; the same at a start and when
   * catching up after a takeover): sessions and handles the records no longer have are dropped without
   * telling Janus (the process before ended them), new ones restored, and a handle whose negotiation
   * changed meanwhile (an ICE restart, a renegotiation) restored again from its record. Then recording
   * starts (after a catch-up, from a full snapshot: records written meanwhile by this process were not
   * its own). Returns the live ICE sessions restored. */
  const restoreFromState = (phase: "start" | "takeover" | "catch_up"): number => {
    if (!journal) return 0;
    const began = performance.now();
    const loaded = journal.load();
    const held: Held = new Map();
    for (const s of signalling.sessions.sessions()) {
      held.set(s.id, new Map([...s.handles.values()].map((h) => [h.id, handleRecord(h)])));
    }
    const plan = planRestore(held, loaded.sessions, loaded.handles);
    let live = 0, skipped = loaded.skipped;
    for (const id of plan.dropSessions) {
      const s = signalling.sessions.get(id);
      if (s) signalling.sessions.removeSession(s, "shutdown");
    }
    for (const { session, id } of plan.dropHandles) {
      const h = signalling.sessions.handle(session, id);
      if (h) signalling.sessions.removeHandle(h, "shutdown");
    }
    for (const r of plan.sessions) {
      const b = upstreams.find(r.upstream, r.backend);
      if (!b) {
        log("warn", "state_session_dropped", {
          janus_session: r.id,
          reason: `no backend ${r.upstream}/${r.backend} now`,
        });
        journal.deleteSession(r.id);
        continue;
      }
      signalling.sessions.restoreSession(r, b);
      stateRestored.inc({ what: "janus_sessions" });
    }
    for (const hr of plan.handles) {
      const s = signalling.sessions.get(hr.session);
      if (!s) continue; // its session was dropped above
      // A record that read back but cannot be applied is skipped like an unreadable one: it never
      // stops the start.
      try {
        const h = signalling.sessions.restoreHandle(s, hr.id, hr.plugin, hr.janusLocal);
        h.ice.janusCandidates = hr.janusCandidates;
        stateRestored.inc({ what: "handles" });
        if (hr.spec && negotiator) {
          if (hr.live) liveStates.set(h.key, hr.live);
          negotiator.restore(h.ice, hr.spec, hr.live);
          if (hr.live) {
            live++;
            stateRestored.inc({ what: "ice_sessions" });
          }
        }
      } catch (e) {
        skipped++;
        stateRecordsSkipped.inc({});
        journal.deleteHandle(`${hr.session}/${hr.id}`);
        log("warn", "state_record_skipped", { janus_session: hr.session, handle: hr.id, error: e });
      }
    }
    log("info", "state_restored", {
      janus_sessions: loaded.sessions.length,
      handles: loaded.handles.length,
      live,
      skipped,
      dropped: plan.dropSessions.length + plan.dropHandles.length - plan.replaced || undefined,
      replaced: plan.replaced || undefined,
      took_ms: Math.round(performance.now() - began),
    });
    // A takeover records from its catch-up on: until then the process before writes the records.
    if (phase === "takeover" || recording) return live;
    recording = true;
    if (phase === "catch_up") {
      for (const s of signalling.sessions.sessions()) {
        journal.putSession(sessionRecord(s));
        for (const h of s.handles.values()) journal.putHandle(handleRecord(h));
      }
    }
    if (shards) journal.setMeta(UPSTREAM_PORTS_KEY, JSON.stringify(shards.upstreamPorts));
    return live;
  };
  restoreFromState(opts.takeover ? "takeover" : "start");
  cluster?.start();
  const clusterDeps = cluster && config.cluster
    ? {
      directory: cluster,
      client: Deno.createHttpClient({ poolIdleTimeout: 30_000, poolMaxIdlePerHost: 64 }),
      forwardTimeoutMs: config.cluster.forwardTimeoutMs,
    }
    : undefined;

  // The one shutdown signal: aborts upstream requests in flight and closes proxied WebSockets.
  const shutdown = new AbortController();
  const whip = new WhipFront({
    signalling,
    pool: (endpoint) => upstreams.poolOf(endpoint),
    endpoint: (tag) => config.listeners.flatMap((l) => l.http.whip).find((e) => e.tag === tag),
    cluster: clusterDeps,
    shutdown: shutdown.signal,
  });
  // The WHIP sessions restored above are served on (an upgrade's new process waits for its catch-up:
  // until then the process before holds them).
  if (!opts.takeover) whip.restore();
  const raised = raiseDescriptorLimit();
  if (raised && raised.after > raised.before) log("info", "descriptor_limit_raised", { ...raised });
  const limiter = new ConnectionLimiter(
    config.options.limits.maxConnections,
    config.options.limits.maxConnectionsPerAddress,
  );
  const warnClamped = () => {
    if (limiter.clamped) {
      announce(
        `xrtc: warning: options.limits.max_connections ${limiter.clamped.configured} needs more descriptors than this process may open; using ${limiter.clamped.allowed}`,
      );
    }
  };
  warnClamped();
  const depsOf = (c: Config): HandlerDeps => ({
    pools: (route) => upstreams.poolOf(route),
    whip: (req, url, client, endpoint, http) => whip.handle(req, url, client, endpoint, http),
    signalling,
    shutdown: shutdown.signal,
    trustedProxies: c.options.limits.trustedProxies,
    inFlightPerWebSocket: c.options.limits.inFlightPerWebSocket,
    cluster: clusterDeps,
  });
  const httpListeners = new Map<string, HttpListener>();
  const tcpPorts = new Map<string, TcpPort>();
  let admin: AdminListener | undefined;
  let adminAddr: Deno.NetAddr | undefined;
  let generation = 1;
  let lastReload: { at: string; ok: boolean; errors: string[] } | undefined;
  configGeneration.set({}, generation);

  const startListener = async (l: ListenerService, c: Config) => {
    const where = formatHostPort(l.net.addr.host || "0.0.0.0", l.net.addr.port);
    if (l.proto === "udp") {
      if (!plane || !l.net.enableIce) return;
      const sharded = workers > 1
        ? `, ${workers} worker threads`
        : mediaOnWorkers
        ? ", on a worker thread"
        : "";
      announce(`xrtc: ${l.name} listening on udp://${where} (ice, ${backend.name} backend${sharded})`);
    } else if (l.proto === "tcp") {
      const handler = l.enableHttp ? makeHttpHandler(l, depsOf(c)) : undefined;
      const port = new TcpPort(l, plane, handler, limiter, reusePorts);
      await port.start();
      tcpPorts.set(l.name, port);
      const what = [l.net.enableIce ? "ice-tcp" : "", l.enableHttp ? "http" : "", port.hasTls ? "tls" : ""]
        .filter(Boolean).join(", ");
      announce(`xrtc: ${l.name} listening on tcp://${where} (${what})`);
    } else {
      const h = new HttpListener(l, makeHttpHandler(l, depsOf(c)), limiter);
      await h.start();
      httpListeners.set(l.name, h);
      announce(`xrtc: ${l.name} listening on ${h.tls ? "https" : "http"}://${where}`);
    }
  };
  const stopListener = async (name: string) => {
    await httpListeners.get(name)?.stop();
    await tcpPorts.get(name)?.stop();
    httpListeners.delete(name);
    tcpPorts.delete(name);
  };

  const collect = async (sessions: boolean) => {
    const reports = await shards?.reports(sessions) ?? [];
    shardUp.collectWith((set) => {
      for (const r of reports) set({ shard: String(r.shard) }, r.up ? 1 : 0);
    });
    // Shard 0's metrics are read last, so the gauges above are current.
    const perShard = reports.length
      ? reports.map((r) => ({
        shard: r.shard,
        metrics: r.shard === 0 ? registry.snapshot() : r.report.metrics,
      }))
      : [{ shard: 0, metrics: registry.snapshot() }];
    return { reports, metrics: mergeShards(perShard) };
  };
  const metricsText = async (): Promise<string> => exposition((await collect(false)).metrics);
  const startedAt = Date.now();
  const status = async (): Promise<unknown> => {
    const { reports, metrics } = await collect(true);
    return buildStatus({
      version: VERSION,
      startedAt,
      ioBackend: backend.name,
      draining: signalling.draining,
      config: { generation, lastReload },
      shards: reports,
      metrics,
      janus: signalling.sessions,
      pools: upstreams.all(),
      negotiated: negotiator?.sessionCount ?? 0,
      cluster: cluster?.status(),
    });
  };
  const startAdmin = (c: Config) => {
    if (!c.admin) return;
    admin = new AdminListener(c.admin, {
      metricsText,
      readiness: (): ReadinessCheck[] => [
        { name: "listeners", ok: httpListeners.size + tcpPorts.size > 0 || (plane?.ports.length ?? 0) > 0 },
        {
          name: "janus",
          ok: upstreams.anyUp,
          detail: upstreams.all().flatMap((p) =>
            p.backends.map((b) => `${b.name} ${b.up && b.answered ? "up" : "down"}`)
          ).join(", "),
        },
        { name: "draining", ok: !signalling.draining },
      ],
      status,
    });
    adminAddr = admin.start();
    announce(
      `xrtc: ${c.admin.name} listening on http://${
        formatHostPort(adminAddr.hostname, adminAddr.port)
      } (admin)`,
    );
  };

  const registrySweeper = setInterval(() => signalling.sessions.sweep(), REGISTRY_SWEEP_MS);
  const releaser = backend.releaseFreeMemory
    ? setInterval(() => backend.releaseFreeMemory!(), MEMORY_RELEASE_INTERVAL_MS)
    : undefined;
  let stopped = false;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    // The records stay for the next process: nothing of the teardown below is written.
    recording = false;
    journal?.close();
    // The directory keeps this node's entries: a restart (or the process taking over) serves them on.
    cluster?.stop();
    clusterDeps?.client.close();
    clearInterval(registrySweeper);
    clearInterval(releaser);
    shutdown.abort();
    await admin?.stop();
    await Promise.all([...httpListeners.values()].map((h) => h.stop()));
    await Promise.all([...tcpPorts.values()].map((t) => t.stop()));
    whip.close();
    signalling.sessions.close();
    negotiator?.close();
    await shards?.stop();
    upstreams.stop();
    stopLag();
    await backend.close();
  };

  try {
    for (const l of config.listeners) await startListener(l, config);
    startAdmin(config);
  } catch (e) {
    await stopAll();
    throw e;
  }
  upstreams.startProbes();
  buildInfo.set({
    version: VERSION,
    deno: Deno.version.deno,
    io_backend: backend.name,
    shards: String(workers),
  }, 1);
  log("info", "started", {
    listeners: config.listeners.length,
    backend: backend.name,
    shards: workers,
    state: config.options.stateDir || undefined,
  });

  /** Reloads run one after another: two SIGHUPs in a row never apply the same listener twice. */
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (next: Config): Promise<ReloadResult> => {
    const run = reloading.then(() => applyReload(next));
    reloading = run.catch(() => {});
    return run;
  };
  const applyReload = async (next: Config): Promise<ReloadResult> => {
    const applied: string[] = [];
    const notApplied: string[] = [];
    const o = config.options, n = next.options;
    // Fixed for the life of the process.
    if (n.ioBackend !== o.ioBackend) notApplied.push("options.io_backend (the sockets are opened once)");
    if (n.workers !== o.workers) notApplied.push("options.workers (the shards are started once)");
    if (n.mediaThread !== o.mediaThread) {
      notApplied.push("options.media_thread (the shards are started once)");
    }
    if (n.maxSessions !== o.maxSessions) {
      notApplied.push("options.max_sessions (the claim board is sized once)");
    }
    if (n.consentTimeoutMs !== o.consentTimeoutMs) {
      notApplied.push("options.consent_timeout (the shards read it at start)");
    }
    if (n.janusKeepaliveMs !== o.janusKeepaliveMs) {
      notApplied.push("options.janus_keepalive (the shards read it at start)");
    }
    if (n.udpGso !== o.udpGso) notApplied.push("options.udp_gso (set on the sockets when they open)");
    if (n.udpGro !== o.udpGro) notApplied.push("options.udp_gro (set on the sockets when they open)");
    if (n.stateDir !== o.stateDir) notApplied.push("options.state_dir (opened once)");
    if (JSON.stringify(next.cluster) !== JSON.stringify(config.cluster)) {
      notApplied.push("cluster (the node joins its cluster once)");
    }
    // Everything else, reconciled.
    setLogLevel(n.logLevel);
    limiter.update(n.limits.maxConnections, n.limits.maxConnectionsPerAddress);
    warnClamped();
    signalling.update(n.limits, n.janus);
    upstreams.reconcile(next);
    applied.push("log level", "limits", "janus timers", "upstreams");
    if (negotiator) {
      try {
        negotiator.clientCandidates = makeClientCandidates(await iceServicesOf(next));
        applied.push("candidate_ips (for new sessions)");
      } catch (e) {
        notApplied.push(`candidate_ips: ${e instanceof Error ? e.message : e}`);
      }
    }
    const message = (e: unknown) => e instanceof Error ? e.message : String(e);
    const running = (l: ListenerService) =>
      l.proto === "udp"
        ? (plane?.ports.some((p) => p.name === l.name) ?? false)
        : tcpPorts.has(l.name) || httpListeners.has(l.name);
    const before = new Map(config.listeners.map((l) => [l.name, l]));
    for (const l of next.listeners) {
      const old = before.get(l.name);
      before.delete(l.name);
      // Each listener on its own: one that fails (a certificate mid-rotation, an address in use) is
      // reported and the others still apply.
      try {
        if (old && bindingOf(old) === bindingOf(l) && running(old)) {
          if (l.proto === "tcp") {
            await tcpPorts.get(l.name)?.update(
              l,
              l.enableHttp ? makeHttpHandler(l, depsOf(next)) : undefined,
            );
          } else if (l.proto === "http") {
            await httpListeners.get(l.name)?.update(l, makeHttpHandler(l, depsOf(next)));
          }
          continue;
        }
        if (l.proto === "udp" && l.net.enableIce && !shards) {
          notApplied.push(
            `services.${l.name}: the first ICE port of a process needs a restart (the media plane starts once)`,
          );
          continue;
        }
        if (old && running(old)) await removeListener(old);
        if (l.proto === "udp" && l.net.enableIce && shards) {
          shards.addUdpPort({ name: l.name, host: l.net.addr.host, port: l.net.addr.port });
        }
        await startListener(l, next);
        applied.push(`services.${l.name} (${old ? "replaced" : "added"})`);
      } catch (e) {
        notApplied.push(`services.${l.name}: ${message(e)}`);
      }
    }
    for (const old of before.values()) {
      try {
        await removeListener(old);
        applied.push(`services.${old.name} (removed)`);
      } catch (e) {
        notApplied.push(`services.${old.name} (removing): ${message(e)}`);
      }
    }
    applied.push("routes", "certificates");
    if (JSON.stringify(next.admin) !== JSON.stringify(config.admin)) {
      // The new admin listener first (it binds beside the old one, SO_REUSEPORT): if it cannot start, the
      // old one stays.
      try {
        const old = admin;
        admin = undefined;
        adminAddr = undefined;
        try {
          startAdmin(next);
        } catch (e) {
          admin = old;
          adminAddr = old
            ? { hostname: old.admin.addr.host, port: old.admin.addr.port, transport: "tcp" }
            : undefined;
          throw e;
        }
        await old?.stop();
        applied.push("admin listener");
      } catch (e) {
        notApplied.push(`admin listener: ${message(e)}`);
      }
    }
    config = next;
    generation++;
    configGeneration.set({}, generation);
    lastReload = { at: new Date().toISOString(), ok: true, errors: [] };
    configLastReload.set({}, Date.now() / 1000);
    configLastReloadSuccess.set({}, 1);
    return { generation, applied, notApplied };
  };
  const removeListener = async (l: ListenerService) => {
    if (l.proto === "udp") shards?.removeUdpPort(l.name);
    await stopListener(l.name);
  };

  return {
    get config() {
      return config;
    },
    negotiator,
    shards,
    plane,
    signalling,
    whip,
    backend,
    upstreams,
    limiter,
    get adminAddr() {
      return adminAddr;
    },
    get generation() {
      return generation;
    },
    metricsText,
    status,
    async reloadTls() {
      for (const h of httpListeners.values()) {
        await h.reloadTls().catch((e) =>
          log("error", "tls_reload_failed", { listener: h.listener.name, error: e })
        );
      }
      for (const t of tcpPorts.values()) {
        await t.reloadTls().catch((e) =>
          log("error", "tls_reload_failed", { listener: t.listener.name, error: e })
        );
      }
    },
    reload,
    refusedReload(errors: string[]) {
      lastReload = { at: new Date().toISOString(), ok: false, errors };
      configLastReload.set({}, Date.now() / 1000);
      configLastReloadSuccess.set({}, 0);
    },
    drain(timeoutMs = config.options.drainTimeoutMs) {
      signalling.draining = true;
      draining.set({}, 1);
      const started = Date.now();
      return new Promise((resolve) => {
        let lastLog = 0;
        const check = () => {
          const ice = negotiator?.committed ?? 0;
          const now = Date.now();
          if (ice === 0) {
            clearInterval(timer);
            log("info", "drained", { after_ms: now - started });
            return resolve("drained");
          }
          if (now - started >= timeoutMs) {
            clearInterval(timer);
            log("warn", "drain_timeout", { ice_sessions: ice, janus_sessions: signalling.sessions.size });
            return resolve("timeout");
          }
          if (now - lastLog >= DRAIN_PROGRESS_MS) {
            lastLog = now;
            log("info", "draining", {
              ice_sessions: ice,
              janus_sessions: signalling.sessions.size,
              left_ms: timeoutMs - (now - started),
            });
          }
        };
        const timer = setInterval(check, 100);
        check();
      });
    },
    restoreFromState: () => {
      const live = restoreFromState("catch_up");
      whip.restore();
      return live;
    },
    async handover() {
      log("info", "handover", {
        ice_sessions: negotiator?.sessionCount ?? 0,
        janus_sessions: signalling.sessions.size,
      });
      await stopAll();
    },
    stop: stopAll,
  };
}
