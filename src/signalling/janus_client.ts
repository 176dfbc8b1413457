// xRTC's own requests to a Janus backend over its HTTP API: telling Janus when xRTC ends something on
// its own (a hangup when a client's ICE session died, a destroy for a session its client abandoned).
// Best effort, with a deadline; every outcome is counted per backend.
import type { BackendState } from "./backends.ts";
import type { JsonObject } from "./janus_api.ts";
import { upstreamRequests } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

const REQUEST_TIMEOUT_MS = 5_000;

export async function janusRequest(
  b: BackendState,
  path: string,
  body: JsonObject,
  client?: Deno.HttpClient,
): Promise<JsonObject | undefined> {
  try {
    const r = await fetch(`${b.backend.httpUrl}/janus${path}`, {
      method: "POST",
      body: JSON.stringify({ ...body, transaction: `xrtc-${crypto.randomUUID()}` }),
      headers: { "content-type": "application/json" },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      client,
    });
    const reply = await r.json() as JsonObject;
    upstreamRequests.inc({ backend: b.name, outcome: reply.janus === "error" ? "janus_error" : "ok" });
    return reply;
  } catch (e) {
    upstreamRequests.inc({ backend: b.name, outcome: "error" });
    log("warn", "janus_request_failed", { backend: b.name, path, request: body.janus, error: e });
    return undefined;
  }
}
