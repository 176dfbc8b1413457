// Wiring: the media-plane shards, the negotiator, signalling with its Janus backends, the front door's
// listeners and the admin listener. start() and stop() are the one startup and shutdown path.
import type { Config, RouteConfig } from "./config/types.ts";
import { canonicalIp, formatHostPort } from "./io/address.ts";
import type { DatagramBackend } from "./io/types.ts";
import { createBackend, type IoBackendChoice } from "./io/backend.ts";
import { ClaimBoard } from "./ice/shards/claims.ts";
import { makeClientCandidates, Negotiator } from "./ice/negotiation/negotiator.ts";
import type { MediaPlane } from "./ice/shards/media_plane.ts";
import { ShardSet, type UdpPortSpec } from "./ice/shards/shards.ts";
import { JanusSignalling } from "./signalling/janus.ts";
import { BackendPool } from "./signalling/backends.ts";
import { janusRequest } from "./signalling/janus_client.ts";
import { type HandlerDeps, makeHttpHandler } from "./http/server.ts";
import { ConnectionLimiter } from "./front/connections.ts";
import { raiseDescriptorLimit } from "./io/rlimit.ts";
import { TcpPort } from "./front/tcp_port.ts";
import { HttpListener } from "./front/http_listener.ts";
import { AdminListener, type ReadinessCheck } from "./admin/admin.ts";
import { buildStatus } from "./admin/status.ts";
import { buildInfo, registry, shardUp } from "./telemetry/catalog.ts";
import { exposition, mergeShards } from "./telemetry/exposition.ts";
import { installProcessCollectors, startLagMonitor } from "./telemetry/process.ts";
import { log, setLogLevel } from "./telemetry/log.ts";

export const VERSION = "0.2.0";

export interface StartOptions {
  /** Overrides options.io_backend. */
  ioBackend?: IoBackendChoice;
  /** Printed when each listener is up ("xrtc: <name> listening on <url>") and for notices. */
  announce?: (line: string) => void;
  /** A shard worker died after starting; xRTC cannot serve all its clients any more. */
  onFatal?: (reason: string) => void;
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
  readonly backend: DatagramBackend;
  readonly pools: Map<string, BackendPool>;
  readonly limiter: ConnectionLimiter;
  /** The admin listener's address, when there is one. */
  readonly adminAddr?: Deno.NetAddr;
  metricsText(): Promise<string>;
  reloadTls(): Promise<void>;
  stop(): Promise<void>;
}

/** How often the allocator's free memory is returned to the OS (FFI backend): session set-up bursts leave
 * glibc's arenas holding freed memory, which otherwise counts as RSS for good. */
const MEMORY_RELEASE_INTERVAL_MS = 10_000;
/** How often Janus sessions are checked for idleness and reclaim windows. */
const REGISTRY_SWEEP_MS = 1_000;

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

export async function start(config: Config, opts: StartOptions = {}): Promise<Xrtc> {
  const announce = opts.announce ?? (() => {});
  setLogLevel(config.options.logLevel);
  const workers = config.options.workers;
  const { backend, fallback } = await createBackend(opts.ioBackend ?? config.options.ioBackend);
  if (fallback) announce(`xrtc: notice: io_backend auto: using the deno backend (${fallback})`);
  if (workers > 1 && backend.name !== "ffi") {
    await backend.close();
    throw new Error(`options.workers: ${workers} needs the ffi backend (SO_REUSEPORT), not ${backend.name}`);
  }
  installProcessCollectors();
  const stopLag = startLagMonitor();
  const iceServices: Array<{ proto: "udp" | "tcp"; ips: string[]; port: number }> = [];
  const udpPorts: UdpPortSpec[] = [];
  for (const l of config.listeners) {
    if ((l.proto === "udp" || l.proto === "tcp") && l.net.enableIce) {
      iceServices.push({
        proto: l.proto,
        ips: await resolveCandidateIps(l.net.candidateIps),
        port: l.net.addr.port,
      });
      if (l.proto === "udp") udpPorts.push({ name: l.name, host: l.net.addr.host, port: l.net.addr.port });
    }
  }

  // Janus backends: one pool per upstream service, shared by every route that names it.
  const pools = new Map<string, BackendPool>();
  for (const u of config.upstreams.values()) pools.set(u.name, BackendPool.fromService(u));
  const urlPools = new Map<string, BackendPool>();
  const defaultHealth = { intervalMs: 5_000, timeoutMs: 2_000, fall: 2, rise: 1 };
  const poolOf = (route: RouteConfig): BackendPool => {
    if (route.upstreamService !== undefined) return pools.get(route.upstreamService)!;
    let p = urlPools.get(route.upstreamUrl!);
    if (!p) urlPools.set(route.upstreamUrl!, p = BackendPool.fromUrl(route.upstreamUrl!, defaultHealth));
    return p;
  };
  const janusClient = Deno.createHttpClient({ poolIdleTimeout: 30_000 });

  let negotiator: Negotiator | undefined;
  let shards: ShardSet | undefined;
  if (iceServices.length) {
    const claims = ClaimBoard.create(config.options.maxSessions);
    try {
      shards = await ShardSet.start({
        backend,
        shards: workers,
        udpPorts,
        consentTimeoutMs: config.options.consentTimeoutMs,
        claims,
        onEnded: (id, reason) => {
          negotiator?.ended(id, reason);
          if (reason !== "shutdown") signalling.iceSessionEnded(id);
        },
        onShardFailed: (shard, error) => opts.onFatal?.(`shard ${shard} failed: ${error}`),
      });
    } catch (e) {
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
    });
  }
  const signalling = new JanusSignalling(negotiator, {
    limits: config.options.limits,
    timers: config.options.janus,
    tellJanus: (b, path, request) => void janusRequest(b, path, { janus: request }, janusClient),
  });
  for (const p of [...pools.values()]) {
    p.onChange = (b) => {
      if (!b.up) signalling.sessions.backendDown(b);
    };
  }
  const plane = shards?.local;
  // The one shutdown signal: aborts upstream requests in flight and closes proxied WebSockets.
  const shutdown = new AbortController();
  const raised = raiseDescriptorLimit();
  if (raised && raised.after > raised.before) log("info", "descriptor_limit_raised", { ...raised });
  const limiter = new ConnectionLimiter(
    config.options.limits.maxConnections,
    config.options.limits.maxConnectionsPerAddress,
  );
  if (limiter.clamped) {
    announce(
      `xrtc: warning: options.limits.max_connections ${limiter.clamped.configured} needs more descriptors than this process may open; using ${limiter.clamped.allowed}`,
    );
  }
  const deps: HandlerDeps = {
    pools: poolOf,
    signalling,
    shutdown: shutdown.signal,
    trustedProxies: config.options.limits.trustedProxies,
    inFlightPerWebSocket: config.options.limits.inFlightPerWebSocket,
  };
  const httpListeners: HttpListener[] = [];
  const tcpPorts: TcpPort[] = [];
  let admin: AdminListener | undefined;
  let adminAddr: Deno.NetAddr | undefined;
  const registrySweeper = setInterval(() => signalling.sessions.sweep(), REGISTRY_SWEEP_MS);
  const stopAll = async () => {
    clearInterval(registrySweeper);
    shutdown.abort();
    await admin?.stop();
    await Promise.all([...httpListeners.map((h) => h.stop()), ...tcpPorts.map((t) => t.stop())]);
    signalling.sessions.close();
    negotiator?.close();
    await shards?.stop();
    for (const p of [...pools.values(), ...urlPools.values()]) p.stop();
    stopLag();
    await backend.close();
  };
  /** Every shard's report and the process's merged metrics, as /metrics and /status read them. */
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
      config: { generation: 1 },
      shards: reports,
      metrics,
      janus: signalling.sessions,
      pools: [...pools.values(), ...urlPools.values()],
      negotiated: negotiator?.sessionCount ?? 0,
    });
  };

  try {
    for (const l of config.listeners) {
      const where = formatHostPort(l.net.addr.host || "0.0.0.0", l.net.addr.port);
      if (l.proto === "udp") {
        if (!plane || !l.net.enableIce) continue;
        const sharded = workers > 1 ? `, ${workers} shards` : "";
        announce(`xrtc: ${l.name} listening on udp://${where} (ice, ${backend.name} backend${sharded})`);
      } else if (l.proto === "tcp") {
        const handler = l.enableHttp ? makeHttpHandler(l, deps) : undefined;
        const port = new TcpPort(l, plane, handler, limiter);
        await port.start();
        tcpPorts.push(port);
        const what = [l.net.enableIce ? "ice-tcp" : "", l.enableHttp ? "http" : "", port.hasTls ? "tls" : ""]
          .filter(Boolean).join(", ");
        announce(`xrtc: ${l.name} listening on tcp://${where} (${what})`);
      } else {
        const h = new HttpListener(l, makeHttpHandler(l, deps), limiter);
        await h.start();
        httpListeners.push(h);
        announce(`xrtc: ${l.name} listening on ${h.tls ? "https" : "http"}://${where}`);
      }
    }
    if (config.admin) {
      admin = new AdminListener(config.admin, {
        metricsText,
        readiness: (): ReadinessCheck[] => [
          { name: "listeners", ok: true },
          {
            name: "janus",
            ok: [...pools.values(), ...urlPools.values()].some((p) => p.anyUp),
            detail: [...pools.values(), ...urlPools.values()].flatMap((p) =>
              p.backends.map((b) => `${b.name} ${b.up && b.answered ? "up" : "down"}`)
            ).join(", "),
          },
          { name: "draining", ok: !signalling.draining },
        ],
        status,
      });
      adminAddr = admin.start();
      announce(
        `xrtc: ${config.admin.name} listening on http://${
          formatHostPort(adminAddr.hostname, adminAddr.port)
        } (admin)`,
      );
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  for (const p of [...pools.values(), ...urlPools.values()]) p.startProbes(janusClient);
  buildInfo.set({
    version: VERSION,
    deno: Deno.version.deno,
    io_backend: backend.name,
    shards: String(workers),
  }, 1);
  const releaser = backend.releaseFreeMemory
    ? setInterval(() => backend.releaseFreeMemory!(), MEMORY_RELEASE_INTERVAL_MS)
    : undefined;
  log("info", "started", { listeners: config.listeners.length, backend: backend.name, shards: workers });
  return {
    config,
    negotiator,
    shards,
    plane,
    signalling,
    backend,
    pools,
    limiter,
    adminAddr,
    metricsText,
    async reloadTls() {
      for (const h of httpListeners) {
        await h.reloadTls().catch((e) =>
          log("error", "tls_reload_failed", { listener: h.listener.name, error: e })
        );
      }
      for (const t of tcpPorts) {
        await t.reloadTls().catch((e) =>
          log("error", "tls_reload_failed", { listener: t.listener.name, error: e })
        );
      }
    },
    async stop() {
      clearInterval(releaser);
      await stopAll();
    },
  };
}
