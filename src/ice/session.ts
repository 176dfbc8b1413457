// The session table of one shard: the one place that maps demux keys to the live sessions this shard
// owns. Shared ports look up the first STUN request by xRTC's client-facing ufrag, then bound tuples
// by path; the upstream socket looks up Janus's addresses. /metrics and drain read it from here.
import type { StunMessage } from "../stun/message.ts";
import type { PeerAddress } from "../io/types.ts";
import type { ClientPath } from "./client_path.ts";
import { log } from "../log.ts";
import { counters } from "../metrics.ts";

/** What a shared port (UDP socket or TCP connection) offers a session handling a client's packet. */
export interface ClientPort {
  /** The path for this source, created and routed to `session` on first use. */
  bind(from: PeerAddress, session: MediaSession): ClientPath;
  /** Sends a packet to a source that may not be bound (STUN responses). */
  reply(data: Uint8Array, to: PeerAddress): void;
}

/** Where a client's Binding request goes: a live session of this shard (claimed now, perhaps), or
 * the shard that owns it. Undefined when it must be dropped (counted by the router). */
export type CheckRoute = { session: MediaSession } | { shard: number } | undefined;

export interface SessionRouter {
  /** `ufrag` is xRTC's, from the request's USERNAME. */
  route(ufrag: string, msg: StunMessage): CheckRoute;
}

export interface MediaSession {
  readonly id: string;
  readonly mode: "half" | "full";
  /** xRTC's client-facing ufrag: the demux key on every shared port. */
  readonly localUfrag: string;
  /** The client's own ufrag, once known from its offer or answer (an ICE restart changes it). */
  readonly clientUfrag?: string;
  onClientStun(msg: StunMessage, from: PeerAddress, port: ClientPort): void;
  onClientData(data: Uint8Array, path: ClientPath): void;
  /** A packet from Janus on the upstream socket. */
  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void;
  /** A client path went away (TCP connection closed). */
  onPathClosed(path: ClientPath): void;
  /** Timers: consent, keepalives. Returns a reason when the session must end. */
  maintain(now: number): string | undefined;
  close(reason: string): void;
}

export class SessionTable {
  readonly byUfrag = new Map<string, MediaSession>();
  readonly byUpstream = new Map<PeerAddress, MediaSession>();
  readonly #upstreamOf = new WeakMap<MediaSession, Set<PeerAddress>>();

  get size(): number {
    return this.byUfrag.size;
  }

  add(s: MediaSession): void {
    if (this.byUfrag.has(s.localUfrag)) throw new Error(`ufrag ${s.localUfrag} already in use`);
    this.byUfrag.set(s.localUfrag, s);
  }

  /** Routes packets from a Janus address on the shared upstream socket to a session. Refused (false)
   * when another live session already owns the address: never another client's data. */
  routeUpstream(addr: PeerAddress, s: MediaSession): boolean {
    const other = this.byUpstream.get(addr);
    if (other && other !== s) {
      counters.inc("upstream_address_conflicts");
      log("warn", "upstream_address_conflict", { addr: addr.key, owner: other.id, refused: s.id });
      return false;
    }
    this.byUpstream.set(addr, s);
    let set = this.#upstreamOf.get(s);
    if (!set) this.#upstreamOf.set(s, set = new Set());
    set.add(addr);
    return true;
  }

  /** True when every address is free on the shared upstream socket. */
  canShareUpstream(addrs: PeerAddress[]): boolean {
    return addrs.every((a) => !this.byUpstream.has(a));
  }

  /** Removes every entry of a session. */
  remove(s: MediaSession): void {
    if (this.byUfrag.get(s.localUfrag) === s) this.byUfrag.delete(s.localUfrag);
    for (const addr of this.#upstreamOf.get(s) ?? []) {
      if (this.byUpstream.get(addr) === s) this.byUpstream.delete(addr);
    }
    this.#upstreamOf.delete(s);
  }
}
