// Where a Janus session lives when several xRTC nodes serve one cluster: the node that created it holds
// its state and its ICE sessions (the client received that node's candidates), so every request for it
// is served there. Signalling asks the directory (the cluster's, on Redis) about sessions it does not
// hold, and forwards such requests to their node.

/** The answer about a Janus session this node does not hold. */
export type Owner =
  /** Another node holds it: requests go to its signalling URL. */
  | { where: "node"; node: string; url: string }
  /** No node holds it (it never existed, or it ended): Janus's own "no such session". */
  | { where: "unknown" }
  /** A node held it but has not refreshed its entry: it may be restarting. Retry shortly. */
  | { where: "node_gone"; node: string }
  /** The directory cannot be asked now (Redis unreachable). Retry shortly. */
  | { where: "unreachable"; reason: string };

export interface SessionDirectory {
  /** This node's name. */
  readonly node: string;
  locate(sessionId: string): Promise<Owner>;
  /** Where a WHIP resource this node does not hold lives (its PATCH and DELETE may land anywhere). */
  locateWhip(resource: string): Promise<Owner>;
  /** Resolves once the session's entry is written, or deleted when this node no longer holds it (or at
   * the directory's deadline): a create's reply waits for it, so the client's next request, on whichever
   * node, finds the session. */
  published(sessionId: string): Promise<void>;
}

/** Set on a request one node forwards to another: the receiving node serves it or refuses it, and
 * never forwards it again (no loops). The value is the forwarding node's name. */
export const FORWARDED_BY = "x-xrtc-forwarded-by";
