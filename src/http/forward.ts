// Requests for a Janus session another xRTC node holds go to that node: the load balancer in front may
// send any request of a session to any node, but the session's state and its ICE sessions (the client
// received that node's candidates) are on the node that created it. An HTTP request is forwarded whole
// (a long-poll too); a WebSocket message is sent as the equivalent HTTP request and its reply returned on
// the WebSocket. A forwarded request carries FORWARDED_BY, so it is never forwarded again.
import { FORWARDED_BY, type Owner, type SessionDirectory } from "../signalling/directory.ts";
import { fetchHeaders } from "./fetch_headers.ts";
import { clusterForwarded } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

export interface ClusterDeps {
  directory: SessionDirectory & { forget(key: string): void };
  client: Deno.HttpClient;
  /** Deadline for the other node's response headers (longer than Janus's long-poll). */
  forwardTimeoutMs: number;
}

export type ForwardResult = { response: Response } | { error: string };

/** One request to the node that holds a session (or a WHIP resource), with a deadline for its response
 * headers. `key` is what the directory located: a Janus session id, or "whip:<resource>". */
export async function forwardToNode(
  owner: Extract<Owner, { where: "node" }>,
  pathAndQuery: string,
  init: { method: string; headers: Headers; body: BodyInit | null },
  protocol: "http" | "ws" | "whip",
  key: string,
  deps: ClusterDeps,
  signal?: AbortSignal,
): Promise<ForwardResult> {
  const headers = new Headers(init.headers);
  headers.set(FORWARDED_BY, deps.directory.node);
  const r = await fetchHeaders(
    owner.url + pathAndQuery,
    { ...init, headers },
    deps.forwardTimeoutMs,
    deps.client,
    signal,
  );
  if ("response" in r) {
    clusterForwarded.inc({ protocol, outcome: "ok" });
    return r;
  }
  if (!signal?.aborted) {
    clusterForwarded.inc({ protocol, outcome: "failed" });
    deps.directory.forget(key);
    log("warn", "cluster_forward_failed", { located: key, node: owner.node, error: r.error });
  }
  return { error: r.error };
}
