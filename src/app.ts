// Wiring: one media plane, one signalling module, every listener. start() and stop() are the one
// startup and shutdown path of the process (drain on SIGTERM slots in here).
import type { Config, IoBackend } from "./config/types.ts";
import { parseIp } from "./stun/message.ts";
import type { DatagramBackend } from "./io/types.ts";
import { DenoUdpBackend } from "./io/deno_udp.ts";
import { makeClientCandidates, MediaPlane } from "./ice/media_plane.ts";
import { JanusSignalling } from "./signalling/janus.ts";
import { HttpListener, makeHttpHandler } from "./http/server.ts";
import { TcpPort } from "./ice/tcp_port.ts";
import { log } from "./log.ts";

export interface StartOptions {
  /** Overrides options.io_backend. */
  ioBackend?: IoBackend;
  /** Printed when each listener is up ("xrtc: <name> listening on <url>"). */
  announce?: (line: string) => void;
}

export interface Xrtc {
  readonly config: Config;
  readonly plane?: MediaPlane;
  readonly signalling: JanusSignalling;
  readonly backend: DatagramBackend;
  reloadTls(): Promise<void>;
  stop(): Promise<void>;
}

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

export async function createBackend(kind: IoBackend): Promise<DatagramBackend> {
  if (kind === "ffi") {
    const { FfiUdpBackend } = await import("./io/ffi_udp.ts");
    return FfiUdpBackend.open();
  }
  return new DenoUdpBackend();
}

export async function start(config: Config, opts: StartOptions = {}): Promise<Xrtc> {
  const announce = opts.announce ?? (() => {});
  const backend = await createBackend(opts.ioBackend ?? config.options.ioBackend);
  const iceServices: Array<{ proto: "udp" | "tcp"; ips: string[]; port: number }> = [];
  for (const l of config.listeners) {
    if ((l.proto === "udp" || l.proto === "tcp") && l.net.enableIce) {
      iceServices.push({
        proto: l.proto,
        ips: await resolveCandidateIps(l.net.candidateIps),
        port: l.net.addr.port,
      });
    }
  }
  const plane = iceServices.length
    ? new MediaPlane({
      backend,
      clientCandidates: makeClientCandidates(iceServices),
      consentTimeoutMs: config.options.consentTimeoutMs,
      maxSessions: config.options.maxSessions,
    })
    : undefined;
  const signalling = new JanusSignalling(plane);
  // The one shutdown signal: aborts upstream requests in flight and closes proxied WebSockets.
  const shutdown = new AbortController();
  const httpListeners: HttpListener[] = [];
  const tcpPorts: TcpPort[] = [];
  try {
    for (const l of config.listeners) {
      const where = `${l.net.addr.host || "0.0.0.0"}:${l.net.addr.port}`;
      if (l.proto === "udp") {
        if (!plane || !l.net.enableIce) continue;
        plane.addUdpPort(l.name, l.net.addr.host, l.net.addr.port);
        announce(`xrtc: ${l.name} listening on udp://${where} (ice, ${backend.name} backend)`);
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
    plane?.close();
    for (const h of httpListeners) await h.stop();
    for (const t of tcpPorts) t.stop();
    backend.close();
    throw e;
  }
  if (plane) plane.opts.connectIceTcp = TcpPort.connectIceTcp();
  log("info", "started", { listeners: config.listeners.length, backend: backend.name });
  return {
    config,
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
      shutdown.abort();
      plane?.close();
      for (const t of tcpPorts) t.stop();
      await Promise.all(httpListeners.map((h) => h.stop()));
      backend.close();
    },
  };
}
