// A client transport address of a session, bound after an authentic check: a UDP tuple on a shared port,
// or an ICE-TCP connection. Made once when bound, so the per-packet path allocates nothing.
import type { PeerAddress } from "../../io/address.ts";

export interface ClientPath {
  /** Unique across every shared port: "udp/<local>/<remote>" or "tcp/<connection id>/<remote>". */
  readonly key: string;
  readonly transport: "udp" | "tcp";
  /** The shared port's name (its service in routes.yml). */
  readonly port: string;
  readonly remote: PeerAddress;
  send(data: Uint8Array): void;
  /** The session has validated this path: packets from its address now go to this session, even if
   * another session had the address before (a bound address never moves on a check alone). */
  adopt(): void;
  /** A response with this transaction (a key of transactionKey) from this path's address goes to this
   * path's session, whichever session the address is bound to (`on` false: no longer). */
  awaitResponse(transaction: string, on: boolean): void;
  /** Detaches the path from its session; a TCP path closes its connection. */
  close(): void;
}
