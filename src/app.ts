// Wiring: the negotiator, the media-plane shards, signalling, every listener. start() and stop() are the one
// startup and shutdown path of the process (drain on SIGTERM slots in here).
import type { Config, IoBackend } from "./config/types.ts";
import { parseIp } from "./stun/message.ts";
import type { DatagramBackend } from "./io/types.ts";
import { createBackend } from "./io/backend.ts";
import { ClaimBoard } from "./ice/claims.ts";
import { makeClientCandidates, Negotiator } from "./ice/negotiator.ts";
import type { MediaPlane } from "./ice/media_plane.ts";
import { ShardSet, type UdpPortSpec } from "./ice/shards.ts";
import { JanusSignalling } from "./signalling/janus.ts";
import { HttpListener, makeHttpHandler } from "./http/server.ts";
import { TcpPort } from "./ice/tcp_port.ts";
import { log } from "./log.ts";

export interface StartOptions {
  /** Overrides options.io_backend. */
  ioBackend?: IoBackend;
  /** Printed when each listener is up ("xrtc: <name> listening on <url>"). */
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
  reloadTls(): Promise<void>;
  stop(): Promise<void>;
}

/** How often the allocator's free memory is returned to the OS (FFI backend): session set-up bursts leave
 * glibc's arenas holding freed memory, which otherwise counts as RSS for good. */
const MEMORY_RELEASE_INTERVAL_MS = 10_000;

/** Resolves candidate_ips entries that are host names (RFC 8839: candidates carry addresses). */
export async function resolveCandidateIps(names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) {
    if (parseIp(n)) {
      out.push(n);
      continue;
    }
    const found = [
      ...(await Deno.resolveDns(n, "A").catch(() => [] as string[])),
      ...(await Deno.resolveDns(n, "AAAA").catch(() => [] as string[])),
    ];
    if (found.length === 0) throw new Error(`candidate host "${n}" does not resolve`);
    out.push(...found);
  }
  return [...new Set(out)];
}

export async function start(config: Config, opts: StartOptions = {}): Promise<Xrtc> {
  const announce = opts.announce ?? (() => {});
  const ioBackend = opts.ioBackend ?? config.options.ioBackend;
  const workers = config.options.workers;
  if (workers > 1 && ioBackend !== "ffi") {
    throw new Error(`options.workers: ${workers} needs the ffi backend (SO_REUSEPORT), not ${ioBackend}`);
  }
  const backend = await createBackend(ioBackend);
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
  let negotiator: Negotiator | undefined;
  let shards: ShardSet | undefined;
  if (iceServices.length) {
    const claims = ClaimBoard.create(config.options.maxSessions);
    try {
      shards = await ShardSet.start({
        backend,
        ioBackend,
        shards: workers,
        udpPorts,
        consentTimeoutMs: config.options.consentTimeoutMs,
        claims,
        onEnded: (ufrag, reason) => negotiator?.ended(ufrag, reason),
        onShardFailed: (shard, error) => opts.onFatal?.(`shard ${shard} failed: ${error}`),
      });
    } catch (e) {
      await backend.close();
      throw e;
    }
    negotiator = new Negotiator({
      sink: shards,
      claims,
      clientCandidates: makeClientCandidates(iceServices),
      consentTimeoutMs: config.options.consentTimeoutMs,
      maxSessions: config.options.maxSessions,
    });
  }
  const plane = shards?.local;
  const signalling = new JanusSignalling(negotiator);
  // The one shutdown signal: aborts upstream requests in flight and closes proxied WebSockets.
  const shutdown = new AbortController();
  const httpListeners: HttpListener[] = [];
  const tcpPorts: TcpPort[] = [];
  try {
    for (const l of config.listeners) {
      const where = `${l.net.addr.host || "0.0.0.0"}:${l.net.addr.port}`;
      if (l.proto === "udp") {
        if (!plane || !l.net.enableIce) continue;
        const sharded = workers > 1 ? `, ${workers} shards` : "";
        announce(`xrtc: ${l.name} listening on udp://${where} (ice, ${backend.name} backend${sharded})`);
      } else if (l.proto === "tcp") {
        const handler = l.enableHttp ? makeHttpHandler(l, config, signalling, shutdown.signal) : undefined;
        const port = new TcpPort(l, plane, handler);
        await port.start();
        tcpPorts.push(port);
        const what = [l.net.enableIce ? "ice-tcp" : "", l.enableHttp ? "http" : "", port.hasTls ? "tls" : ""]
          .filter(Boolean).join(", ");
        announce(`xrtc: ${l.name} listening on tcp://${where} (${what})`);
      } else {
        const h = new HttpListener(l, makeHttpHandler(l, config, signalling, shutdown.signal));
        await h.start();
        httpListeners.push(h);
        announce(`xrtc: ${l.name} listening on ${l.net.tlsCrtFile ? "https" : "http"}://${where}`);
      }
    }
  } catch (e) {
    shutdown.abort();
    negotiator?.close();
    await shards?.stop();
    for (const h of httpListeners) await h.stop();
    for (const t of tcpPorts) t.stop();
    await backend.close();
    throw e;
  }
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
      shutdown.abort();
      negotiator?.close();
      await shards?.stop();
      for (const t of tcpPorts) t.stop();
      await Promise.all(httpListeners.map((h) => h.stop()));
      await backend.close();
    },
  };
}
