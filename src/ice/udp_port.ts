// One shared UDP ICE port (a `proto: udp` service): the demux of RFC 8445 on a single socket, as in
// Pion's udp_mux. The first packet of a tuple must be a STUN Binding request whose USERNAME names a
// live session; only after the session has verified it is the tuple bound. Everything else from an
// unbound tuple is dropped and counted.
import { classifyPacket, parseStun, StunError } from "../stun/message.ts";
import type { DatagramBackend, DatagramSocket, PeerAddress } from "../io/types.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, MediaSession, SessionTable } from "./session.ts";
import { localUfragOf } from "./client_check.ts";
import { counters } from "../metrics.ts";

interface BoundPath {
  path: ClientPath;
  session: MediaSession;
}

export class SharedUdpPort implements ClientPort {
  readonly socket: DatagramSocket;
  readonly #bound = new Map<PeerAddress, BoundPath>();

  constructor(
    readonly name: string,
    backend: DatagramBackend,
    host: string,
    port: number,
    readonly table: SessionTable,
    reusePort = false,
  ) {
    this.socket = backend.bind({ host, port, reusePort }, (data, from) => this.#onPacket(data, from));
  }

  get boundCount(): number {
    return this.#bound.size;
  }

  #onPacket(data: Uint8Array, from: PeerAddress): void {
    if (data.length === 0) {
      counters.inc("udp_drop_empty");
      return;
    }
    const bound = this.#bound.get(from);
    if (classifyPacket(data[0]) === "stun") {
      let msg;
      try {
        msg = parseStun(data);
      } catch (e) {
        if (!(e instanceof StunError)) throw e;
        counters.inc("stun_drop_malformed");
        return;
      }
      // Requests are routed by ufrag: a bound tuple may start checks for a new session (ICE restart).
      const ufrag = msg.type === 0x0001 ? localUfragOf(msg) : undefined;
      const session = ufrag !== undefined ? this.table.byUfrag.get(ufrag) : bound?.session;
      if (session === undefined) {
        counters.inc(ufrag === undefined ? "stun_drop_unbound" : "stun_drop_unknown_ufrag");
        return;
      }
      session.onClientStun(msg, from, this);
      return;
    }
    if (bound === undefined) {
      counters.inc("udp_drop_unknown_tuple");
      return;
    }
    bound.session.onClientData(data, bound.path);
  }

  bind(from: PeerAddress, session: MediaSession): ClientPath {
    const existing = this.#bound.get(from);
    if (existing?.session === session) return existing.path;
    if (existing) existing.session.onPathClosed(existing.path); // the tuple moved to another session
    const socket = this.socket;
    const bound = this.#bound;
    const path: ClientPath = {
      key: `udp/${socket.localAddress.key}/${from.key}`,
      transport: "udp",
      remote: from,
      send: (data: Uint8Array) => socket.send(data, from),
      close: () => {
        if (bound.get(from)?.path === path) bound.delete(from);
      },
    };
    this.#bound.set(from, { path, session });
    return path;
  }

  reply(data: Uint8Array, to: PeerAddress): void {
    this.socket.send(data, to);
  }

  close(): void {
    this.socket.close();
  }
}
