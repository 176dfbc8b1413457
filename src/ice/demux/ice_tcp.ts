// One ICE-TCP connection from a client (RFC 6544, RFC 4571 framing) on a shared TCP port: the demux
// (demux.ts) per frame. The connection is one client path; it belongs to the session whose authentic
// check bound it, and moves to another session only when that one has validated it.
import type { PeerAddress } from "../../io/address.ts";
import { FrameDecoder, FramingError, MAX_ICE_TCP_FRAME } from "../../io/framing.ts";
import { connectionDeadlines, FramedWriter } from "../../io/tcp.ts";
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

export class IceTcpConnection implements ClientPort {
  readonly #decoder = new FrameDecoder(MAX_ICE_TCP_FRAME);
  readonly #writer: FramedWriter;
  readonly #id = nextConnectionId++;
  #owner?: { path: ClientPath; session: MediaSession };
  /** Transactions of xRTC's own checks on this connection -> the session that sent them. */
  readonly #awaiting = new Map<string, MediaSession>();
  #closed = false;

  constructor(
    readonly conn: Deno.Conn,
    readonly peer: PeerAddress,
    readonly router: SessionRouter,
    readonly portName = "tcp",
  ) {
    this.#writer = new FramedWriter(conn, (reason) => {
      if (reason === "slow_reader") connectionsClosed.inc({ reason: "slow_reader" });
      this.#close(reason);
    });
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
        if (this.#owner && buf.length < BOUND_READ) {
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
        log("info", "ice_tcp_bad_framing", {
          peer: this.peer.text,
          session: this.#owner?.session.id,
          reason: e.message,
        });
      }
    } finally {
      connectionDeadlines.clear(this);
      this.#close("connection ended");
    }
  }

  #feed(bytes: Uint8Array): void {
    this.#decoder.push(bytes, (frame) => this.#onFrame(frame));
  }

  #onFrame(frame: Uint8Array): void {
    const owner = this.#owner;
    const route = routeClientPacket(frame, owner?.session, this.router, (tx) => this.#awaiting.get(tx));
    if (route === "data") return owner!.session.onClientData(frame, owner!.path);
    if (route === "dropped") return;
    if (route === "unbound") return drop.unknown_tuple.inc();
    if (route === "unbound_stun") return drop.stun_from_unbound_tuple.inc();
    // A TCP connection cannot move to another shard; the client's UDP path to the owner serves.
    if (route.to === "shard") return drop.tcp_session_on_other_shard.inc();
    route.session.onClientStun(route.msg, route.ufrag, this.peer, this);
  }

  bind(_from: PeerAddress, session: MediaSession): ClientPath {
    if (this.#owner?.session === session) return this.#owner.path;
    const path: ClientPath = {
      key: `tcp/${this.#id}/${this.peer.text}`,
      transport: "tcp",
      port: this.portName,
      remote: this.peer,
      send: (data: Uint8Array) => this.#writer.sendFrame(data),
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
        if (this.#owner?.path === path) this.#close("session closed");
      },
    };
    if (!this.#owner) path.adopt();
    return path;
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
    const owner = this.#owner;
    this.#owner = undefined;
    owner?.session.onPathClosed(owner.path);
    log("debug", "ice_tcp_closed", { peer: this.peer.text, session: owner?.session.id, reason });
  }
}
