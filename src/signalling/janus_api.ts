// The Janus API's JSON as xRTC reads it: types, ids, request kinds, and Janus-style errors.
import { KINDS, type SignallingKind } from "../telemetry/catalog.ts";

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Janus issues session and handle ids as positive integers (JSON numbers, 53 bits so JavaScript keeps
 * them exact); xRTC keys them by their decimal text. Anything else is not an id Janus issued. */
const ID = /^[1-9][0-9]{0,19}$/;

export function idOf(v: Json | undefined): string | undefined {
  if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return String(v);
  if (typeof v === "string" && ID.test(v)) return v;
  return undefined;
}

/** An id field as the client sent it: absent, an id Janus could have issued, or not one. */
export function idField(v: Json | undefined): { id?: string; bad: boolean } {
  if (v === undefined || v === null) return { bad: false };
  const id = idOf(v);
  return id === undefined ? { bad: true } : { id, bad: false };
}

/** Janus ids are numbers in JSON; keys use their decimal text. */
export function idJson(id: string): Json {
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : id;
}

/** Janus's own error codes (janus/apierror.h), and the HTTP status xRTC answers each refusal with. */
export const JanusError = {
  INVALID_JSON: 454,
  INVALID_REQUEST_PATH: 457,
  SESSION_NOT_FOUND: 458,
  HANDLE_NOT_FOUND: 459,
  INVALID_ELEMENT_TYPE: 467,
  INVALID_SDP: 465,
  /** Not Janus's: xRTC's refusals for limits, in the same shape. */
  TOO_MANY_REQUESTS: 429,
  UNAVAILABLE: 503,
} as const;

export function janusError(
  transaction: Json | undefined,
  code: number,
  reason: string,
  sessionId?: string,
): JsonObject {
  const reply: JsonObject = {
    janus: "error",
    transaction: typeof transaction === "string" ? transaction : "",
    error: { code, reason: `xRTC: ${reason}` },
  };
  if (sessionId) reply.session_id = idJson(sessionId);
  return reply;
}

/** The request verbs Janus dispatches on: every kind xRTC counts except a long-poll and the rest. */
export const JANUS_VERBS: readonly SignallingKind[] = KINDS.filter((k) => k !== "poll" && k !== "other");

const KIND_OF = new Map<string, SignallingKind>(JANUS_VERBS.map((k) => [k, k]));

/** The kind of a request. Janus reads the verb case-insensitively (strcasecmp), so xRTC does too: a
 * "MESSAGE" is a message, whose SDP must be rewritten like any other. */
export function kindOf(janus: Json | undefined): SignallingKind {
  return typeof janus === "string" ? KIND_OF.get(janus.toLowerCase()) ?? "other" : "other";
}

/** A jsep's type, when it is one JSEP has ("offer", "answer"); anything else is not. */
export function jsepType(jsep: JsonObject): "offer" | "answer" | undefined {
  return jsep.type === "offer" || jsep.type === "answer" ? jsep.type : undefined;
}

/** A plugin's error inside an event (plugindata.data.error_code), which refuses what the request asked. */
export function pluginError(msg: JsonObject): boolean {
  const pd = msg.plugindata;
  return isObject(pd) && isObject(pd.data) && pd.data.error_code !== undefined;
}
