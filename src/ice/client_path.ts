// A validated client transport address of a session: a UDP tuple on a shared port, or an ICE-TCP
// connection. Made once when bound, so the per-packet path allocates nothing.
import type { PeerAddress } from "../io/types.ts";

export interface ClientPath {
  /** Unique across every shared port: "udp/<local>/<remote>" or "tcp/<connection id>". */
  readonly key: string;
  readonly transport: "udp" | "tcp";
  readonly remote: PeerAddress;
  send(data: Uint8Array): void;
  /** Detaches the path from its session; a TCP path closes its connection. */
  close(): void;
}
