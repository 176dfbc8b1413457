// The pure parts of WHIP (RFC 9725): media types, entity tags and If-Match, bearer tokens, the SDP
// fragments of PATCH requests (RFC 8840 trickle-ice-sdpfrag) and of the ICE-restart answer, resource ids.
// No sockets and no state: the WHIP front-end (whip.ts) decides with these.
import type { Candidate } from "../sdp/candidate.ts";
import { formatCandidate } from "../sdp/candidate.ts";

export const SDP_TYPE = "application/sdp";
export const SDPFRAG_TYPE = "application/trickle-ice-sdpfrag";

/** The media type of a Content-Type header, without parameters, lower-cased. */
export function mediaType(header: string | null): string {
  return (header ?? "").split(";")[0].trim().toLowerCase();
}

/** An unguessable resource id (128 random bits, base64url): never a Janus id (RFC 9725 §4.2). */
export function newResourceId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** What a resource id looks like: anything else is not one xRTC issued. */
export const RESOURCE_ID = /^[A-Za-z0-9_-]{22}$/;

/** A fresh strong entity tag, with its quotes. */
export function newEtag(): string {
  return `"${newResourceId()}"`;
}

/** How a PATCH's If-Match relates to the resource's entity tag (RFC 9110 §13.1.1): absent (RFC 9725
 * requires it: 428), "*" (an ICE restart, §4.4), the current tag, or another (412). Weak tags never
 * match (If-Match uses the strong comparison). */
export function ifMatch(header: string | null, etag: string): "missing" | "any" | "match" | "mismatch" {
  if (header === null || header.trim() === "") return "missing";
  const tags = header.split(",").map((t) => t.trim());
  if (tags.includes("*")) return "any";
  return tags.includes(etag) ? "match" : "mismatch";
}

/** The bearer token of an Authorization header (RFC 6750 §2.1), if there is one. */
export function bearerToken(header: string | null): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/** Compares two strings in time that depends only on their lengths. */
export function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** What a trickle-ice-sdpfrag carries (RFC 8840 §9): ICE credentials when it restarts ICE, the media
 * sections it names, and candidates. */
export interface SdpFrag {
  ufrag?: string;
  pwd?: string;
  mids: string[];
  candidates: string[];
  endOfCandidates: boolean;
}

/** Most lines a fragment may have: a fragment names one bundled m-line and its candidates. */
export const MAX_FRAG_LINES = 512;
const ICE_CHAR = /^[A-Za-z0-9+/]+$/;
/** RFC 8866 §9 token characters, at most 64 of them. */
const MID = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}$/;

export class SdpFragError extends Error {
  override name = "SdpFragError";
}

/** Reads an SDP fragment: only `a=` and `m=` lines (RFC 8840 §9 allows session-level ICE attributes,
 * media lines and their mid, candidates). Throws SdpFragError on anything else. */
export function parseSdpFrag(text: string): SdpFrag {
  const lines = text.split(/\r?\n/).filter((l) => l !== "");
  if (lines.length > MAX_FRAG_LINES) throw new SdpFragError(`more than ${MAX_FRAG_LINES} lines`);
  const frag: SdpFrag = { mids: [], candidates: [], endOfCandidates: false };
  for (const line of lines) {
    if (line.startsWith("m=")) continue;
    if (!line.startsWith("a=")) throw new SdpFragError(`not an a= or m= line: ${line.slice(0, 40)}`);
    const colon = line.indexOf(":");
    const name = colon < 0 ? line.slice(2) : line.slice(2, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).trim();
    switch (name) {
      case "ice-ufrag":
        if (!ICE_CHAR.test(value) || value.length < 4 || value.length > 256) {
          throw new SdpFragError("ice-ufrag is not 4 to 256 ice-chars");
        }
        frag.ufrag = value;
        break;
      case "ice-pwd":
        if (!ICE_CHAR.test(value) || value.length < 22 || value.length > 256) {
          throw new SdpFragError("ice-pwd is not 22 to 256 ice-chars");
        }
        frag.pwd = value;
        break;
      case "mid":
        // RFC 5888 §4: an identification-tag is a token (RFC 8866 §9); it is echoed in the answer.
        if (!MID.test(value)) throw new SdpFragError("a=mid is not a token of 1 to 64 characters");
        frag.mids.push(value);
        break;
      case "candidate":
        frag.candidates.push(value);
        break;
      case "end-of-candidates":
        frag.endOfCandidates = true;
        break;
    }
  }
  return frag;
}

/** The answer to an ICE restart (RFC 9725 §4.4.2): xRTC's new credentials, ICE-lite (the half proxy),
 * and for each media section the client's fragment named, xRTC's candidates (RFC 8840 §9). */
export function restartAnswerFrag(
  creds: { ufrag: string; pwd: string },
  mids: string[],
  candidates: Candidate[],
): string {
  const out = ["a=ice-lite", `a=ice-ufrag:${creds.ufrag}`, `a=ice-pwd:${creds.pwd}`];
  for (const mid of mids.length ? mids : ["0"]) {
    out.push("m=audio 9 UDP/TLS/RTP/SAVPF 0", `a=mid:${mid}`);
    for (const c of candidates) out.push(`a=${formatCandidate(c)}`);
    out.push("a=end-of-candidates");
  }
  return out.join("\r\n") + "\r\n";
}

/** The first media section's mid of an SDP (the one a bundled fragment names). */
export function firstMid(sdp: string): string | undefined {
  return /^a=mid:(\S+)/m.exec(sdp)?.[1];
}
