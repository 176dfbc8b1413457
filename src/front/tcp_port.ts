// The one TCP port of a `proto: tcp` service: ICE-TCP (RFC 6544, RFC 4571 framing), HTTP, WebSocket
// and TLS on the same port, told apart by their first bytes (io/stream_classify.ts). HTTP goes to the
// listener's HTTP bridge; TLS is terminated by a loopback TLS listener owned by this port, whose
// connections are classified again; ICE-TCP goes to the media plane. Every phase has a deadline, and
// connections are counted against the front door's limits.
import type { ListenerService } from "../config/types.ts";
import type { HttpHandler } from "../http/server.ts";
import type { MediaPlane } from "../ice/shards/media_plane.ts";
import { classifyStream } from "../io/stream_classify.ts";
import { connectionDeadlines, DeadlineError } from "../io/tcp.ts";
import { anyAddress, LOOPBACK_V4, mustPeer } from "../io/address.ts";
import {
  acceptLoop,
  type ConnectionLimiter,
  countClose,
  PIPE_DESCRIPTORS,
  refuseConnection,
} from "./connections.ts";
import { HttpBridge } from "./http_bridge.ts";
import { readTls, type TlsFiles } from "./tls.ts";
import { log } from "../telemetry/log.ts";

/** Bytes that classification looks at, at most. */
const CLASSIFY_BYTES = 16;

export class TcpPort {
  #listener?: Deno.TcpListener;
  #tlsListener?: Deno.TlsListener;
  #tlsPort = 0;
  /** Loopback TLS pipe source port -> the real client. */
  readonly #tlsPipes = new Map<number, string>();
  readonly #conns = new Set<Deno.Conn>();
  #open = false;

  #bridge?: HttpBridge;

  constructor(
    public listener: ListenerService,
    readonly plane: MediaPlane | undefined,
    http: HttpHandler | undefined,
    readonly limits: ConnectionLimiter,
    /** Share the port with a process taking over (SO_REUSEPORT). */
    readonly reusePort = false,
  ) {
    if (http) this.#bridge = new HttpBridge(listener.name, http, listener.http, limits);
  }

  /** A reload that keeps the port: new routes, deadlines and certificates for new connections. */
  async update(listener: ListenerService, http: HttpHandler | undefined): Promise<void> {
    this.listener = listener;
    if (http && !this.#bridge) {
      this.#bridge = new HttpBridge(listener.name, http, listener.http, this.limits);
      this.#bridge.start();
    } else if (this.#bridge && http) {
      this.#bridge.handler = http;
      this.#bridge.timers = listener.http;
    } else if (this.#bridge && !http) {
      await this.#bridge.stop();
      this.#bridge = undefined;
    }
    await this.reloadTls();
  }

  get hasTls(): boolean {
    return this.#tlsListener !== undefined;
  }

  get openConnections(): number {
    return this.#conns.size;
  }

  async start(): Promise<void> {
    const { host, port } = this.listener.net.addr;
    this.#bridge?.start();
    const tls = await readTls(this.listener);
    this.#open = true;
    if (tls) this.#startTls(tls);
    this.#listener = Deno.listen({
      hostname: host || anyAddress(4),
      port,
      transport: "tcp",
      reusePort: this.reusePort,
    });
    acceptLoop(this.#listener, this.listener.name, () => this.#open, (conn) => this.#accepted(conn, false));
  }

  #startTls(tls: TlsFiles): void {
    const old = this.#tlsListener;
    const listener = Deno.listenTls({
      hostname: LOOPBACK_V4,
      port: 0,
      cert: tls.cert,
      key: tls.key,
      alpnProtocols: ["http/1.1"],
    });
    this.#tlsListener = listener;
    this.#tlsPort = listener.addr.port;
    acceptLoop(
      listener,
      `${this.listener.name}/tls`,
      () => this.#open && this.#tlsListener === listener,
      (conn) => this.#accepted(conn, true),
    );
    try {
      old?.close(); // connections already accepted keep their certificate
    } catch { /* closed */ }
  }

  async reloadTls(): Promise<void> {
    const tls = await readTls(this.listener);
    if (tls) this.#startTls(tls);
  }

  #accepted(conn: Deno.Conn, insideTls: boolean): Promise<void> | undefined {
    const addr = conn.remoteAddr as Deno.NetAddr;
    // Inside TLS the client is the one whose bytes came through the pipe (already counted).
    const peerHost = insideTls
      ? this.#tlsPipes.get(addr.port) ?? LOOPBACK_V4
      : mustPeer(addr.hostname, addr.port).host;
    if (!insideTls) {
      const refused = this.limits.acquire(peerHost);
      if (refused) return refuseConnection(conn, refused);
    }
    this.#conns.add(conn);
    const move = this.limits.track(this.listener.name, "unclassified");
    this.#serve(conn, peerHost, addr.port, insideTls, move)
      .catch((e) => log("warn", "tcp_connection_error", { listener: this.listener.name, error: e }))
      .finally(() => {
        move(undefined);
        this.#conns.delete(conn);
        if (!insideTls) this.limits.release(peerHost);
        try {
          conn.close();
        } catch { /* already closed */ }
      });
  }

  async #serve(
    conn: Deno.Conn,
    peerHost: string,
    peerPort: number,
    insideTls: boolean,
    move: (kind: "http" | "tls" | "ice" | "upgraded" | undefined) => void,
  ): Promise<void> {
    const deadline = Date.now() + this.listener.http.headerTimeoutMs;
    if (insideTls) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          (conn as Deno.TlsConn).handshake(),
          new Promise((_, reject) =>
            timer = setTimeout(() => reject(new DeadlineError("handshake")), deadline - Date.now())
          ),
        ]);
      } catch {
        countClose("tls_handshake");
        return;
      } finally {
        clearTimeout(timer);
      }
    }
    const buf = new Uint8Array(CLASSIFY_BYTES);
    let have = 0;
    let kind = classifyStream(buf.subarray(0, 0));
    // One shared timer closes connections that say nothing classifiable in time.
    let expired = false;
    connectionDeadlines.set(conn, deadline, () => {
      expired = true;
      countClose("unclassified");
      conn.close();
    });
    try {
      while (kind === "more") {
        const n = await conn.read(buf.subarray(have)).catch(() => null);
        if (n === null || expired) return;
        have += n;
        kind = classifyStream(buf.subarray(0, have));
        if (kind === "more" && have >= CLASSIFY_BYTES) kind = "reject";
      }
    } finally {
      connectionDeadlines.clear(conn);
    }
    const prefix = buf.slice(0, have);
    if (kind === "tls" && !insideTls) {
      if (!this.#tlsListener) return countClose("tls_without_certificate");
      move("tls");
      return await this.#pipeTls(conn, prefix, peerHost);
    }
    if (kind === "http") {
      if (!this.#bridge) return countClose("http_disabled");
      move("http");
      return await this.#bridge.serve(conn, prefix, { peerHost, tls: insideTls }, () => move("upgraded"));
    }
    if (kind === "ice" && this.plane && this.listener.net.enableIce && !insideTls) {
      move("ice");
      return await this.plane.serveIceTcp(conn, mustPeer(peerHost, peerPort), prefix);
    }
    countClose("unknown_protocol");
  }

  /** TLS bytes go to the loopback TLS listener; its side of the pipe is classified again. */
  async #pipeTls(conn: Deno.Conn, prefix: Uint8Array, peerHost: string): Promise<void> {
    if (!this.limits.charge(PIPE_DESCRIPTORS)) return;
    try {
      await this.#pipeTlsCharged(conn, prefix, peerHost);
    } finally {
      this.limits.discharge(PIPE_DESCRIPTORS);
    }
  }

  async #pipeTlsCharged(conn: Deno.Conn, prefix: Uint8Array, peerHost: string): Promise<void> {
    const inner = await Deno.connect({ hostname: LOOPBACK_V4, port: this.#tlsPort });
    const key = inner.localAddr.port;
    this.#tlsPipes.set(key, peerHost);
    try {
      await inner.write(prefix);
      // Either direction ending ends the pipe (a half-open client cannot hold it).
      await Promise.race([
        conn.readable.pipeTo(inner.writable).catch(() => {}),
        inner.readable.pipeTo(conn.writable).catch(() => {}),
      ]);
    } finally {
      this.#tlsPipes.delete(key);
      try {
        inner.close();
      } catch { /* closed by pipeTo */ }
    }
  }

  async stop(): Promise<void> {
    this.#open = false;
    for (const l of [this.#listener, this.#tlsListener]) {
      try {
        l?.close();
      } catch { /* closed */ }
    }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#bridge?.stop();
  }
}
