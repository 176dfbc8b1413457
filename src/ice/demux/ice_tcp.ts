// One ICE-TCP connection from a client (RFC 6544, RFC 4571 framing) on a shared TCP port: the demux
// (demux.ts) per frame. The connection is one client path; it belongs to the session whose authentic
// check bound it, and moves to another session only when that one has validated it. Connections are
// accepted on the main thread; when a session lives on a worker shard (the shard its UDP packets reach),
// the connection's frames are relayed to that shard and its writes come back (TcpRelay).
import type { PeerAddress } from "../../io/address.ts";
import { FrameDecoder, FramingError, MAX_ICE_TCP_FRAME } from "../../io/framing.ts";
import { connectionDeadlines, FramedWriter, sendWithoutDelay } from "../../io/tcp.ts";
import type { ClientPath } from "../session/client_path.ts";
import type { ClientPort, MediaSession } from "../session/media_session.ts";
import { routeClientPacket, type SessionRouter } from "./demux.ts";
import { TIMING } from "../timing.ts";
import { connectionsClosed, drop } from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";

let nextConnectionId = 1;

/** Read buffer before the connection has a session (a check is about 100 bytes; a longer first frame is
 * put together by the decoder) and after: an unbound connection costs little memory. */
const UNBOUND_READ = 256;
const BOUND_READ = 16 * 1024;

/** Where a connection's frames go out: the connection itself, or the thread that holds it (relayed). */
export interface FrameSink {
  sendFrame(data: Uint8Array): void;
  close(reason: string): void;
}

/** Hands a connection to the shard that owns its session (the main thread's, when worker shards serve
 * the UDP ports): its frames go there from then on, and that shard's writes come back to `sink`. */
export interface TcpRelay {
  relayOpen(shard: number, connection: number, peer: PeerAddress, port: string, sink: FrameSink): void;
  relayFrame(shard: number, connection: number, frame: Uint8Array): void;
  /** The connection ended on the thread that holds it. */
  relayClosed(shard: number, connection: number): void;
}

/** One ICE-TCP connection's demux and path, apart from its socket: frames in, frames out to `sink`. The
 * connection is served by the thread that accepted it (IceTcpConnection) or, relayed, by the shard that
 * owns its session (MediaPlane.relayedTcp*). */
export class TcpClientPort implements ClientPort {
  #owner?: { path: ClientPath; session: MediaSession };
  /** Transactions of xRTC's own checks on this connection -> the session that sent them. */
  readonly #awaiting = new Map<string, MediaSession>();
  /** The shard this connection's frames are relayed to. */
  #relayedTo?: number;
  #ended = false;

  constructor(
    readonly id: number,
    readonly peer: PeerAddress,
    readonly router: SessionRouter,
    readonly portName: string,
    readonly sink: FrameSink,
    readonly relay?: TcpRelay,
  ) {}

  /** An authentic check has bound the connection here or to another shard's session. */
  get proven(): boolean {
    return this.#owner !== undefined || this.#relayedTo !== undefined;
  }

  /** For logs: the session it serves here, or the shard it is relayed to. */
  get served(): { session?: string; shard?: number } {
    return { session: this.#owner?.session.id, shard: this.#relayedTo };
  }

  onFrame(frame: Uint8Array): void {
    if (this.#relayedTo !== undefined) return this.relay!.relayFrame(this.#relayedTo, this.id, frame);
    const owner = this.#owner;
    const route = routeClientPacket(frame, owner?.session, this.router, (tx) => this.#awaiting.get(tx));
    if (route === "data") return owner!.session.onClientData(frame, owner!.path);
    if (route === "dropped") return;
    if (route === "unbound") return drop.unknown_tuple.inc();
    if (route === "unbound_stun") return drop.stun_from_unbound_tuple.inc();
    if (route.to === "shard") {
      // Relayed only from the first authentic check on: a connection serving a session here stays here.
      if (!this.relay || owner) return drop.tcp_session_on_other_shard.inc();
      this.#relayedTo = route.shard;
      this.relay.relayOpen(route.shard, this.id, this.peer, this.portName, this.sink);
      return this.relay.relayFrame(route.shard, this.id, frame);
    }
    route.session.onClientStun(route.msg, route.ufrag, this.peer, this);
  }

  bind(_from: PeerAddress, session: MediaSession): ClientPath {
    if (this.#owner?.session === session) return this.#owner.path;
    const path: ClientPath = {
      key: `tcp/${this.id}/${this.peer.text}`,
      transport: "tcp",
      port: this.portName,
      remote: this.peer,
      send: (data: Uint8Array) => this.sink.sendFrame(data),
      adopt: () => {
        const prev = this.#owner;
        if (prev?.path === path) return;
        this.#owner = { path, session };
        prev?.session.onPathClosed(prev.path);
      },
      awaitResponse: (tx, on) => {
        if (on) this.#awaiting.set(tx, session);
        else if (this.#awaiting.get(tx) === session) this.#awaiting.delete(tx);
      },
      close: () => {
        if (this.#owner?.path === path) this.sink.close("session closed");
      },
    };
    if (!this.#owner) path.adopt();
    return path;
  }

  reply(data: Uint8Array): void {
    this.sink.sendFrame(data);
  }

  /** The connection is gone (or closing): its path is freed at once; a relayed one's shard is told. */
  ended(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#relayedTo !== undefined) this.relay!.relayClosed(this.#relayedTo, this.id);
    const owner = this.#owner;
    this.#owner = undefined;
    this.#awaiting.clear();
    owner?.session.onPathClosed(owner.path);
  }
}

/** A client's ICE-TCP connection on this thread: reads, framing, deadlines, and its TcpClientPort. */
export class IceTcpConnection {
  readonly #decoder = new FrameDecoder(MAX_ICE_TCP_FRAME);
  readonly #writer: FramedWriter;
  readonly #port: TcpClientPort;
  #closed = false;

  constructor(
    readonly conn: Deno.Conn,
    readonly peer: PeerAddress,
    router: SessionRouter,
    portName = "tcp",
    relay?: TcpRelay,
  ) {
    sendWithoutDelay(conn);
    this.#writer = new FramedWriter(conn, (reason) => {
      if (reason === "slow_reader") connectionsClosed.inc({ reason: "slow_reader" });
      this.#close(reason);
    });
    const sink: FrameSink = { sendFrame: (d) => this.#writer.sendFrame(d), close: (r) => this.#close(r) };
    this.#port = new TcpClientPort(nextConnectionId++, peer, router, portName, sink, relay);
  }

  /** Serves the connection until it ends; `prefix` is what classification already read. */
  async run(prefix: Uint8Array): Promise<void> {
    // Without an authentic check by then, the connection goes (one shared timer, not one per read).
    let expired = false;
    connectionDeadlines.set(this, Date.now() + TIMING.iceTcpFirstCheckMs, () => {
      expired = true;
      connectionsClosed.inc({ reason: "no_valid_check" });
      this.#close("no valid check");
    });
    let buf = new Uint8Array(UNBOUND_READ);
    try {
      this.#feed(prefix);
      while (!this.#closed) {
        if (this.#port.proven && buf.length < BOUND_READ) {
          connectionDeadlines.clear(this);
          buf = new Uint8Array(BOUND_READ);
        }
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#feed(buf.subarray(0, n));
      }
    } catch (e) {
      if (!expired && e instanceof FramingError) {
        connectionsClosed.inc({ reason: "bad_framing" });
        log("info", "ice_tcp_bad_framing", { peer: this.peer.text, ...this.#port.served, reason: e.message });
      }
    } finally {
      connectionDeadlines.clear(this);
      this.#close("connection ended");
    }
  }

  #feed(bytes: Uint8Array): void {
    this.#decoder.push(bytes, (frame) => this.#port.onFrame(frame));
  }

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close();
    const served = this.#port.served;
    this.#port.ended();
    log("debug", "ice_tcp_closed", { peer: this.peer.text, ...served, reason });
  }
}
