// One shared UDP ICE port (a `proto: udp` service) as one shard sees it: the demux (demux.ts) on a single
// socket, as in pion's udp_mux. An address is bound to a session by the session, after an authentic
// check; it moves to another session only when that session has validated it. When several shards share
// the port (SO_REUSEPORT), an address whose session another shard owns is handed to that shard.
import type { DatagramBackend, DatagramSocket } from "../../io/types.ts";
import type { AddressKey, PeerAddress } from "../../io/address.ts";
import type { ClientPath } from "../session/client_path.ts";
import type { ClientPort, MediaSession } from "../session/media_session.ts";
import { routeClientPacket, type SessionRouter } from "./demux.ts";
import { drop, handoffPackets, shardPackets } from "../../telemetry/catalog.ts";

interface Owner {
  path: ClientPath;
  session: MediaSession;
}

interface HandedOff {
  shard: number;
  ufrag: string;
}

/** Addresses remembered as belonging to another shard's session; beyond this, new ones are not kept. */
const MAX_HANDED_OFF = 65_536;

export interface ShardRouter extends SessionRouter {
  /** Hands a client packet to the shard that owns its session. */
  handoff(shard: number, port: string, data: Uint8Array, from: PeerAddress): void;
}

export interface SharedUdpPortOptions {
  name: string;
  backend: DatagramBackend;
  host: string;
  port: number;
  router: ShardRouter;
  reusePort: boolean;
}

const OUT = handoffPackets.with({ direction: "out" });
const RECEIVED = shardPackets.with({});

export class SharedUdpPort implements ClientPort {
  readonly name: string;
  readonly socket: DatagramSocket;
  readonly router: ShardRouter;
  readonly #owners = new Map<AddressKey, Owner>();
  readonly #handedOff = new Map<AddressKey, HandedOff>();
  /** Transactions of xRTC's own checks to client addresses -> the session that sent them (bounded by
   * the sessions' paths: one check in flight per path). */
  readonly #awaiting = new Map<string, MediaSession>();
  readonly #awaitingOf = (tx: string) => this.#awaiting.get(tx);

  constructor(o: SharedUdpPortOptions) {
    this.name = o.name;
    this.router = o.router;
    this.socket = o.backend.bind({ host: o.host, port: o.port, reusePort: o.reusePort }, (data, from) => {
      RECEIVED.inc();
      this.receive(data, from);
    });
  }

  get boundCount(): number {
    return this.#owners.size;
  }

  /** A datagram from a client: from this shard's socket, or handed over by another shard. */
  receive(data: Uint8Array, from: PeerAddress): void {
    const owner = this.#owners.get(from.key);
    const route = routeClientPacket(
      data,
      owner?.session,
      this.router,
      this.#awaiting.size ? this.#awaitingOf : undefined,
    );
    if (route === "data") return owner!.session.onClientData(data, owner!.path);
    if (route === "dropped") return;
    if (route === "unbound" || route === "unbound_stun") {
      const other = this.#handedOff.get(from.key);
      if (other) return this.#handOff(other.shard, other.ufrag, data, from);
      (route === "unbound" ? drop.unknown_tuple : drop.stun_from_unbound_tuple).inc();
      return;
    }
    if (route.to === "shard") return this.#handOff(route.shard, route.ufrag, data, from);
    route.session.onClientStun(route.msg, route.ufrag, from, this);
  }

  #handOff(shard: number, ufrag: string, data: Uint8Array, from: PeerAddress): void {
    if (!this.#handedOff.has(from.key) && this.#handedOff.size < MAX_HANDED_OFF) {
      this.#handedOff.set(from.key, { shard, ufrag });
    }
    OUT.inc();
    this.router.handoff(shard, this.name, data, from);
  }

  /** A session has ended: addresses handed off for its ufrags are forgotten. */
  forget(ufrags: Iterable<string>): void {
    const gone = new Set(ufrags);
    for (const [from, h] of this.#handedOff) if (gone.has(h.ufrag)) this.#handedOff.delete(from);
  }

  bind(from: PeerAddress, session: MediaSession): ClientPath {
    const owner = this.#owners.get(from.key);
    if (owner?.session === session) return owner.path;
    const socket = this.socket;
    const owners = this.#owners;
    const handedOff = this.#handedOff;
    const awaiting = this.#awaiting;
    const path: ClientPath = {
      key: `udp/${socket.localAddress.text}/${from.text}`,
      transport: "udp",
      port: this.name,
      remote: from,
      send: (data: Uint8Array) => socket.send(data, from),
      adopt: () => {
        const prev = owners.get(from.key);
        if (prev?.path === path) return;
        owners.set(from.key, { path, session });
        handedOff.delete(from.key);
        prev?.session.onPathClosed(prev.path); // the address moved to the session that validated it
      },
      awaitResponse: (tx, on) => {
        if (on) awaiting.set(tx, session);
        else if (awaiting.get(tx) === session) awaiting.delete(tx);
      },
      close: () => {
        if (owners.get(from.key)?.path === path) owners.delete(from.key);
      },
    };
    // A free address is bound at once (its data may go to Janus before validation); a bound one stays
    // with its session until this one validates it.
    if (!owner) path.adopt();
    return path;
  }

  reply(data: Uint8Array, to: PeerAddress): void {
    this.socket.send(data, to);
  }

  close(): void {
    this.socket.close();
  }
}
