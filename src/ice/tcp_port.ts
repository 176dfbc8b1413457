// The one TCP port of a `proto: tcp` service: ICE-TCP (RFC 6544, RFC 4571 framing), HTTP, WebSocket
// and TLS on the same port. Deno cannot hand an accepted socket to Deno.serve or start server-side TLS
// on it, so HTTP and TLS connections are piped into loopback listeners owned by this port; the real
// client address travels with the pipe. ICE-TCP is handled in place.
import type { ListenerService } from "../config/types.ts";
import type { HttpHandler } from "../http/server.ts";
import { readTls, type TlsFiles } from "../http/server.ts";
import type { MediaPlane } from "./media_plane.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, MediaSession } from "./session.ts";
import type { PeerAddress } from "../io/types.ts";
import { classifyStream } from "./tcp_classify.ts";
import { FrameDecoder, FramingError, MAX_ICE_TCP_FRAME } from "./framing.ts";
import { BINDING_REQUEST, classifyPacket, parseStun, StunError } from "../stun/message.ts";
import { localUfragOf } from "./client_check.ts";
import { DeadlineError, FramedWriter, readWithDeadline } from "../io/tcp.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

/** A connection that sends nothing classifiable within this long is closed. */
export const CLASSIFY_TIMEOUT_MS = 10_000;
/** An ICE-TCP connection without a valid STUN check within this long is closed. */
export const FIRST_CHECK_TIMEOUT_MS = 30_000;

let nextConnectionId = 1;

export class TcpPort {
  #listener?: Deno.Listener;
  #httpServer?: Deno.HttpServer;
  #httpPort = 0;
  #tlsListener?: Deno.TlsListener;
  #tlsPort = 0;
  /** Loopback pipe source port -> the real client. */
  readonly #pipes = new Map<number, { remoteHost: string; tls: boolean }>();
  readonly #conns = new Set<Deno.Conn>();
  #stopped = false;

  constructor(
    readonly listener: ListenerService,
    readonly plane: MediaPlane | undefined,
    readonly http: HttpHandler | undefined,
  ) {}

  get hasTls(): boolean {
    return this.#tlsListener !== undefined;
  }

  get openConnections(): number {
    return this.#conns.size;
  }

  async start(): Promise<void> {
    const { host, port } = this.listener.net.addr;
    if (this.http) {
      const handler = this.http;
      this.#httpServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req, info) => {
        const pipe = this.#pipes.get((info.remoteAddr as Deno.NetAddr).port);
        return handler(req, pipe ?? { remoteHost: "127.0.0.1", tls: false });
      });
      this.#httpPort = (this.#httpServer.addr as Deno.NetAddr).port;
    }
    const tls = await readTls(this.listener);
    if (tls) this.#startTls(tls);
    this.#listener = Deno.listen({ hostname: host || "0.0.0.0", port, transport: "tcp" });
    this.#acceptLoop(this.#listener, false);
  }

  #startTls(tls: TlsFiles): void {
    const old = this.#tlsListener;
    this.#tlsListener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key });
    this.#tlsPort = (this.#tlsListener.addr as Deno.NetAddr).port;
    this.#acceptLoop(this.#tlsListener, true);
    try {
      old?.close(); // connections already accepted keep their certificate
    } catch { /* closed */ }
  }

  async reloadTls(): Promise<void> {
    const tls = await readTls(this.listener);
    if (tls) this.#startTls(tls);
  }

  async #acceptLoop(listener: Deno.Listener, insideTls: boolean): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      // Inside TLS the client is the one whose bytes came through the pipe.
      const remote = insideTls
        ? this.#pipes.get((conn.remoteAddr as Deno.NetAddr).port)?.remoteHost ?? "127.0.0.1"
        : (conn.remoteAddr as Deno.NetAddr).hostname;
      const remotePort = insideTls ? 0 : (conn.remoteAddr as Deno.NetAddr).port;
      this.#conns.add(conn);
      this.#serveConnection(conn, remote, remotePort, insideTls)
        .catch((e) => log("warn", "tcp_connection_error", { listener: this.listener.name, error: e }))
        .finally(() => {
          this.#conns.delete(conn);
          try {
            conn.close();
          } catch { /* already closed */ }
        });
    }
  }

  async #serveConnection(
    conn: Deno.Conn,
    remoteHost: string,
    remotePort: number,
    insideTls: boolean,
  ): Promise<void> {
    const deadline = Date.now() + CLASSIFY_TIMEOUT_MS;
    const buf = new Uint8Array(4096);
    let have = 0;
    let kind = classifyStream(buf.subarray(0, 0));
    while (kind === "more") {
      let n: number | null;
      try {
        n = await readWithDeadline(conn, buf.subarray(have), deadline);
      } catch (e) {
        if (e instanceof DeadlineError) counters.inc("tcp_closed_unclassified");
        return;
      }
      if (n === null) return;
      have += n;
      kind = classifyStream(buf.subarray(0, have));
      if (kind === "more" && have >= 16) kind = "reject";
    }
    const prefix = buf.slice(0, have);
    if (kind === "tls" && !insideTls) {
      if (!this.#tlsListener) {
        counters.inc("tcp_refused_tls_without_certificate");
        return;
      }
      return await this.#pipe(conn, prefix, this.#tlsPort, remoteHost, true);
    }
    if (kind === "http") {
      if (!this.http) {
        counters.inc("tcp_refused_http_disabled");
        return;
      }
      return await this.#pipe(conn, prefix, this.#httpPort, remoteHost, insideTls);
    }
    if (kind === "ice" && this.plane && this.listener.net.enableIce) {
      const peer = this.plane.opts.backend.address(remoteHost, remotePort);
      return await new IceTcpConnection(conn, peer, this.plane).run(prefix);
    }
    counters.inc("tcp_refused_unknown_protocol");
  }

  async #pipe(
    conn: Deno.Conn,
    prefix: Uint8Array,
    port: number,
    remoteHost: string,
    tls: boolean,
  ): Promise<void> {
    const inner = await Deno.connect({ hostname: "127.0.0.1", port });
    const key = (inner.localAddr as Deno.NetAddr).port;
    this.#pipes.set(key, { remoteHost, tls });
    try {
      await inner.write(prefix);
      await Promise.allSettled([
        conn.readable.pipeTo(inner.writable),
        inner.readable.pipeTo(conn.writable),
      ]);
    } finally {
      this.#pipes.delete(key);
      try {
        inner.close();
      } catch { /* closed by pipeTo */ }
    }
  }

  stop(): void {
    this.#stopped = true;
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
    this.#httpServer?.shutdown();
  }
}

/** One ICE-TCP connection from a client: framed STUN routed by ufrag, then media by the bound path. */
class IceTcpConnection implements ClientPort {
  readonly #decoder = new FrameDecoder(MAX_ICE_TCP_FRAME);
  readonly #writer: FramedWriter;
  #session?: MediaSession;
  #path?: ClientPath;
  #closed = false;

  constructor(readonly conn: Deno.Conn, readonly peer: PeerAddress, readonly plane: MediaPlane) {
    this.#writer = new FramedWriter(conn, (reason) => this.#close(reason));
  }

  async run(prefix: Uint8Array): Promise<void> {
    const firstCheckBy = Date.now() + FIRST_CHECK_TIMEOUT_MS;
    const buf = new Uint8Array(65536);
    try {
      this.#feed(prefix);
      while (!this.#closed) {
        const n = this.#path
          ? await this.conn.read(buf)
          : await readWithDeadline(this.conn, buf, firstCheckBy);
        if (n === null) break;
        this.#feed(buf.subarray(0, n));
      }
    } catch (e) {
      if (e instanceof DeadlineError) counters.inc("tcp_closed_no_valid_check");
      else if (e instanceof FramingError) {
        counters.inc("tcp_closed_bad_framing");
        log("info", "ice_tcp_bad_framing", {
          peer: this.peer.key,
          ufrag: this.#session?.localUfrag,
          reason: e.message,
        });
      }
    } finally {
      this.#close("connection ended");
    }
  }

  #feed(bytes: Uint8Array): void {
    this.#decoder.push(bytes, (frame) => this.#onFrame(frame));
  }

  #onFrame(frame: Uint8Array): void {
    if (frame.length > 0 && classifyPacket(frame[0]) === "stun") {
      let msg;
      try {
        msg = parseStun(frame);
      } catch (e) {
        if (!(e instanceof StunError)) throw e;
        counters.inc("stun_drop_malformed");
        return;
      }
      const ufrag = msg.type === BINDING_REQUEST ? localUfragOf(msg) : undefined;
      let session = this.#session;
      if (ufrag !== undefined) {
        const route = this.plane.route(ufrag, msg);
        if (route === undefined) return; // counted by the router
        if ("shard" in route) {
          // A TCP connection cannot move to another shard; the client's UDP path to the owner serves.
          counters.inc("tcp_drop_session_on_other_shard");
          return;
        }
        session = route.session;
      } else if (!session) {
        counters.inc("stun_drop_unbound");
        return;
      }
      session.onClientStun(msg, this.peer, this);
      return;
    }
    if (!this.#path || !this.#session) {
      counters.inc("tcp_drop_before_check");
      return;
    }
    this.#session.onClientData(frame, this.#path);
  }

  bind(_from: PeerAddress, session: MediaSession): ClientPath {
    if (this.#path && this.#session === session) return this.#path;
    if (this.#path && this.#session) this.#session.onPathClosed(this.#path);
    const id = nextConnectionId++;
    this.#session = session;
    this.#path = {
      key: `tcp/${id}/${this.peer.key}`,
      transport: "tcp",
      remote: this.peer,
      send: (data: Uint8Array) => this.#writer.sendFrame(data),
      close: () => this.#close("session closed"),
    };
    return this.#path;
  }

  reply(data: Uint8Array): void {
    this.#writer.sendFrame(data);
  }

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close();
    try {
      this.conn.close();
    } catch { /* closed */ }
    // A closed TCP connection frees its path at once.
    if (this.#path && this.#session) this.#session.onPathClosed(this.#path);
    log("debug", "ice_tcp_closed", { peer: this.peer.key, ufrag: this.#session?.localUfrag, reason });
  }
}
