// One shared UDP ICE port (a `proto: udp` service) as one shard sees it: the demux of RFC 8445 on a
// single socket, as in Pion's udp_mux. The first packet of a tuple must be a STUN Binding request whose
// USERNAME names a live session; only after the session has verified it is the tuple bound. When
// several shards share the port (SO_REUSEPORT), a tuple whose session another shard owns is handed to
// that shard. Everything else from an unbound tuple is dropped and counted.
import { BINDING_REQUEST, classifyPacket, parseStun, StunError } from "../stun/message.ts";
import type { DatagramBackend, DatagramSocket, PeerAddress } from "../io/types.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, MediaSession, SessionRouter } from "./session.ts";
import { localUfragOf } from "./client_check.ts";
import { counters } from "../metrics.ts";

interface BoundPath {
  path: ClientPath;
  session: MediaSession;
}

interface HandedOff {
  shard: number;
  ufrag: string;
}

/** Tuples remembered as belonging to another shard's session; beyond this, new ones are not kept. */
const MAX_HANDED_OFF = 65_536;

export interface ShardRouter extends SessionRouter {
  /** Hands a client packet to the shard that owns its session. */
  handoff(shard: number, port: string, data: Uint8Array, from: PeerAddress): void;
}

export class SharedUdpPort implements ClientPort {
  readonly socket: DatagramSocket;
  readonly #bound = new Map<PeerAddress, BoundPath>();
  readonly #handedOff = new Map<PeerAddress, HandedOff>();

  constructor(
    readonly name: string,
    backend: DatagramBackend,
    host: string,
    port: number,
    readonly router: ShardRouter,
    reusePort = false,
  ) {
    this.socket = backend.bind({ host, port, reusePort }, (data, from) => this.receive(data, from));
  }

  get boundCount(): number {
    return this.#bound.size;
  }

  /** A datagram from a client: from this shard's socket, or handed over by another shard. */
  receive(data: Uint8Array, from: PeerAddress): void {
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
      const ufrag = msg.type === BINDING_REQUEST ? localUfragOf(msg) : undefined;
      let session = bound?.session;
      if (ufrag !== undefined) {
        const route = this.router.route(ufrag, msg);
        if (route === undefined) return; // counted by the router
        if ("shard" in route) return this.#handOff(route.shard, ufrag, data, from);
        session = route.session;
      } else if (session === undefined) {
        const other = this.#handedOff.get(from);
        if (other) return this.#handOff(other.shard, other.ufrag, data, from);
        counters.inc("stun_drop_unbound");
        return;
      }
      session.onClientStun(msg, from, this);
      return;
    }
    if (bound !== undefined) return bound.session.onClientData(data, bound.path);
    const other = this.#handedOff.get(from);
    if (other) return this.#handOff(other.shard, other.ufrag, data, from);
    counters.inc("udp_drop_unknown_tuple");
  }

  #handOff(shard: number, ufrag: string, data: Uint8Array, from: PeerAddress): void {
    if (!this.#handedOff.has(from) && this.#handedOff.size < MAX_HANDED_OFF) {
      this.#handedOff.set(from, { shard, ufrag });
    }
    counters.inc("handoff_packets_out");
    this.router.handoff(shard, this.name, data, from);
  }

  /** A session has ended: tuples handed off for it are forgotten. */
  forget(ufrag: string): void {
    for (const [from, h] of this.#handedOff) if (h.ufrag === ufrag) this.#handedOff.delete(from);
  }

  bind(from: PeerAddress, session: MediaSession): ClientPath {
    const existing = this.#bound.get(from);
    if (existing?.session === session) return existing.path;
    if (existing) existing.session.onPathClosed(existing.path); // the tuple moved to another session
    this.#handedOff.delete(from);
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
