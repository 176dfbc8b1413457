// A `proto: http` listener: HTTP (or HTTPS when it has TLS files) on its own port, accepted by the front
// door (limits, deadlines) and bridged into the listener's HTTP handler. A TLS reload takes effect for
// new connections at once; connections already open keep their certificate.
import type { ListenerService } from "../config/types.ts";
import type { HttpHandler } from "../http/server.ts";
import { anyAddress, mustPeer } from "../io/address.ts";
import { acceptLoop, type ConnectionLimiter, countClose, refuseConnection } from "./connections.ts";
import { HttpBridge } from "./http_bridge.ts";
import { readTls } from "./tls.ts";
import { log } from "../telemetry/log.ts";

export class HttpListener {
  #listener?: Deno.Listener;
  readonly #bridge: HttpBridge;
  public listener: ListenerService;
  readonly #conns = new Set<Deno.Conn>();
  #tls = false;
  #open = false;

  constructor(listener: ListenerService, handler: HttpHandler, readonly limits: ConnectionLimiter) {
    this.listener = listener;
    this.#bridge = new HttpBridge(listener.name, handler, listener.http, limits);
  }

  /** A reload that keeps the port: new routes, deadlines and certificates for new connections. */
  async update(listener: ListenerService, handler: HttpHandler): Promise<void> {
    this.listener = listener;
    this.#bridge.handler = handler;
    this.#bridge.timers = listener.http;
    await this.reloadTls();
  }

  get tls(): boolean {
    return this.#tls;
  }

  async start(): Promise<void> {
    this.#bridge.start();
    this.#open = true;
    await this.#listen();
  }

  async #listen(): Promise<void> {
    const { host, port } = this.listener.net.addr;
    const tls = await readTls(this.listener);
    const hostname = host || anyAddress(4);
    const listener: Deno.Listener = tls
      ? Deno.listenTls({
        hostname,
        port,
        cert: tls.cert,
        key: tls.key,
        reusePort: true,
        alpnProtocols: ["http/1.1"],
      })
      : Deno.listen({ hostname, port, reusePort: true });
    const old = this.#listener;
    this.#listener = listener;
    this.#tls = tls !== undefined;
    acceptLoop(
      listener,
      this.listener.name,
      () => this.#open && this.#listener === listener,
      (conn) => this.#accepted(conn, tls !== undefined),
    );
    try {
      old?.close();
    } catch { /* closed */ }
  }

  /** A new listener with the new certificate takes the port (SO_REUSEPORT) before the old one closes,
   * so no connection is refused; a certificate that does not load leaves the old one serving. */
  async reloadTls(): Promise<void> {
    if (!this.listener.net.tlsCrtFile) return;
    await this.#listen();
  }

  #accepted(conn: Deno.Conn, tls: boolean): Promise<void> | undefined {
    const addr = conn.remoteAddr as Deno.NetAddr;
    const peerHost = mustPeer(addr.hostname, addr.port).host;
    const refused = this.limits.acquire(peerHost);
    if (refused) return refuseConnection(conn, refused);
    this.#conns.add(conn);
    const move = this.limits.track(this.listener.name, tls ? "tls" : "http");
    this.#serve(conn, peerHost, tls, move)
      .catch((e) => log("warn", "http_connection_error", { listener: this.listener.name, error: e }))
      .finally(() => {
        move(undefined);
        this.#conns.delete(conn);
        this.limits.release(peerHost);
        try {
          conn.close();
        } catch { /* closed */ }
      });
  }

  async #serve(
    conn: Deno.Conn,
    peerHost: string,
    tls: boolean,
    move: (k: "upgraded" | undefined) => void,
  ): Promise<void> {
    if (tls) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          (conn as Deno.TlsConn).handshake(),
          new Promise((_, reject) =>
            timer = setTimeout(
              () => reject(new Error("handshake deadline")),
              this.listener.http.headerTimeoutMs,
            )
          ),
        ]);
      } catch {
        countClose("tls_handshake");
        return;
      } finally {
        clearTimeout(timer);
      }
    }
    await this.#bridge.serve(conn, new Uint8Array(0), { peerHost, tls }, () => move("upgraded"));
  }

  async stop(): Promise<void> {
    this.#open = false;
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#bridge.stop();
  }
}
