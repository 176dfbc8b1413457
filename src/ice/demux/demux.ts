// The demux of a shared ICE port, one function for UDP sockets and ICE-TCP connections alike (RFC 8445
// §2, RFC 7983 first-byte classes): a STUN Binding request is routed by the ufrag in its USERNAME (to a
// session of this shard, claiming it if its check is authentic, or to the shard that owns it); any other
// packet follows the session its source address is bound to; everything else is dropped and counted.
import {
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  classifyPacket,
  parseStun,
  StunError,
  type StunMessage,
  transactionKey,
} from "../../stun/message.ts";
import { drop } from "../../telemetry/catalog.ts";
import type { MediaSession } from "../session/media_session.ts";
import { localUfragOf } from "../session/client_check.ts";

/** Where a client's Binding request goes: a live session of this shard (claimed now, perhaps), or
 * the shard that owns it. Undefined when it must be dropped (counted by the router). */
export type CheckRoute = { session: MediaSession } | { shard: number } | undefined;

export interface SessionRouter {
  /** `ufrag` is xRTC's, from the request's USERNAME. */
  route(ufrag: string, msg: StunMessage): CheckRoute;
}

/** What a port does with a client packet. The frequent answers are constants (no allocation). */
export type ClientRoute =
  /** Media or data from the bound address: to its session. */
  | "data"
  /** Not STUN, from an address not bound here: a hand-off or a drop, the port decides. */
  | "unbound"
  /** STUN other than a routable request, from an address not bound here. */
  | "unbound_stun"
  /** Dropped and counted. */
  | "dropped"
  | { to: "session"; session: MediaSession; msg: StunMessage; ufrag: string | undefined }
  | { to: "shard"; shard: number; ufrag: string };

/** Parses STUN, counting what does not parse under `reason`. */
export function parseStunOrDrop(
  data: Uint8Array,
  reason: "stun_malformed" | "upstream_stun_malformed" = "stun_malformed",
): StunMessage | undefined {
  try {
    return parseStun(data);
  } catch (e) {
    if (!(e instanceof StunError)) throw e;
    drop[reason].inc();
    return undefined;
  }
}

export function routeClientPacket(
  data: Uint8Array,
  bound: MediaSession | undefined,
  router: SessionRouter,
  /** The session awaiting a response to one of its own checks from this address (by transaction). */
  awaiting?: (transaction: string) => MediaSession | undefined,
): ClientRoute {
  if (data.length === 0) {
    drop.empty_datagram.inc();
    return "dropped";
  }
  if (classifyPacket(data[0]) !== "stun") return bound ? "data" : "unbound";
  const msg = parseStunOrDrop(data);
  if (!msg) return "dropped";
  // Requests are routed by ufrag, so a bound address may start checks for another session.
  const ufrag = msg.type === BINDING_REQUEST ? localUfragOf(msg) : undefined;
  if (ufrag !== undefined) {
    const route = router.route(ufrag, msg);
    if (route === undefined) return "dropped";
    if ("shard" in route) return { to: "shard", shard: route.shard, ufrag };
    return { to: "session", session: route.session, msg, ufrag };
  }
  if (awaiting && (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR)) {
    const waiting = awaiting(transactionKey(msg.transactionId));
    if (waiting) return { to: "session", session: waiting, msg, ufrag: undefined };
  }
  if (bound) return { to: "session", session: bound, msg, ufrag: undefined };
  return "unbound_stun";
}
