// SDP (RFC 8866) kept as lines: what is not touched is written back exactly. ICE fields (RFC 8839)
// and DTLS fields (RFC 8122, RFC 5763) are read at session and media level.
import { type Candidate, formatCandidate, parseCandidate } from "./candidate.ts";

export class SdpError extends Error {
  override name = "SdpError";
}

export interface Sdp {
  session: string[];
  media: string[][];
}

export const MAX_SDP_LENGTH = 256 * 1024;

export function parseSdp(text: string): Sdp {
  if (text.length > MAX_SDP_LENGTH) throw new SdpError(`SDP longer than ${MAX_SDP_LENGTH} characters`);
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0 || !lines[0].startsWith("v=")) throw new SdpError("SDP does not start with v=");
  const sdp: Sdp = { session: [], media: [] };
  for (const line of lines) {
    if (!/^[a-z]=/.test(line)) throw new SdpError(`malformed SDP line: ${JSON.stringify(line.slice(0, 80))}`);
    if (line.startsWith("m=")) sdp.media.push([line]);
    else if (sdp.media.length > 0) sdp.media[sdp.media.length - 1].push(line);
    else sdp.session.push(line);
  }
  return sdp;
}

export function serializeSdp(sdp: Sdp): string {
  return [...sdp.session, ...sdp.media.flat()].join("\r\n") + "\r\n";
}

/** The attribute name of an "a=" line, lower-cased: attribute names are matched case-insensitively
 * wherever xRTC reads or rewrites SDP, as Janus matches them (an "a=CANDIDATE:" is a candidate). */
export function attrName(line: string): string | undefined {
  if (!line.startsWith("a=")) return undefined;
  const colon = line.indexOf(":");
  return (colon < 0 ? line.slice(2) : line.slice(2, colon)).toLowerCase();
}

/** The value of the first "a=name:value" (or "" for a flag "a=name") in lines, or undefined. The value
 * is a string of its own: sessions keep their ice-pwd and fingerprint for their lifetime, and a slice of
 * the SDP text would keep the whole text (an offer of several kilobytes) alive with it. */
export function getAttr(lines: readonly string[], name: string): string | undefined {
  for (const l of lines) {
    if (attrName(l) !== name) continue;
    const colon = l.indexOf(":");
    return colon < 0 ? "" : detached(l.slice(colon + 1));
  }
  return undefined;
}

/** A copy of `s` that shares no storage with the text it was cut from. V8 keeps a substring of 13
 * characters or more as a view of its whole parent string; a JSON round trip builds a fresh one. */
function detached(s: string): string {
  return JSON.parse(JSON.stringify(s));
}

export interface IceView {
  ufrag?: string;
  pwd?: string;
  options?: string;
  lite: boolean;
  fingerprint?: string;
  setup?: string;
  mid?: string;
  candidates: Candidate[];
  endOfCandidates: boolean;
}

/** ICE and DTLS parameters of each media section, media level overriding session level. */
export function iceView(sdp: Sdp): IceView[] {
  const s = sdp.session;
  const lite = getAttr(s, "ice-lite") !== undefined;
  return sdp.media.map((m) => {
    const candidates: Candidate[] = [];
    for (const l of m) {
      if (attrName(l) === "candidate") {
        try {
          candidates.push(parseCandidate(l));
        } catch {
          // An unparsable candidate is ignored, as an ICE agent would (RFC 8839 §5.1).
        }
      }
    }
    return {
      ufrag: getAttr(m, "ice-ufrag") ?? getAttr(s, "ice-ufrag"),
      pwd: getAttr(m, "ice-pwd") ?? getAttr(s, "ice-pwd"),
      options: getAttr(m, "ice-options") ?? getAttr(s, "ice-options"),
      lite,
      fingerprint: getAttr(m, "fingerprint") ?? getAttr(s, "fingerprint"),
      setup: getAttr(m, "setup") ?? getAttr(s, "setup"),
      mid: getAttr(m, "mid"),
      candidates,
      endOfCandidates: getAttr(m, "end-of-candidates") !== undefined,
    };
  });
}

/** The one ICE ufrag/pwd of a bundled session (the first media section that has them). */
export function iceCredentials(sdp: Sdp): { ufrag: string; pwd: string } | undefined {
  for (const v of iceView(sdp)) if (v.ufrag && v.pwd) return { ufrag: v.ufrag, pwd: v.pwd };
  return undefined;
}

export interface IceRewrite {
  ufrag: string;
  pwd: string;
  /** Candidates to advertise in every media section that is not rejected (port 0). */
  candidates: Candidate[];
  /** Adds a=end-of-candidates after the candidates. */
  endOfCandidates: boolean;
  /** Sets (true) or removes (false) the session-level a=ice-lite. */
  lite: boolean;
}

/** The ICE attributes (RFC 8839 §5) xRTC replaces; any letter case. */
const ICE_ATTRS = new Set([
  "candidate",
  "end-of-candidates",
  "ice-ufrag",
  "ice-pwd",
  "ice-lite",
  "remote-candidates",
]);
const isIceLine = (l: string) => ICE_ATTRS.has(attrName(l) ?? "");

/** Replaces credentials and candidates at both levels; every other line is kept as it was. */
export function rewriteIce(sdp: Sdp, r: IceRewrite): Sdp {
  const session = sdp.session.filter((l) => !isIceLine(l));
  if (r.lite) {
    // RFC 8839 §5.3: ice-lite is a session-level attribute; place it after the t= line.
    const t = session.findIndex((l) => l.startsWith("t="));
    session.splice(t >= 0 ? t + 1 : session.length, 0, "a=ice-lite");
  }
  const media = sdp.media.map((m) => {
    const kept = m.filter((l) => !isIceLine(l));
    const rejected = /^m=\S+ 0 /.test(m[0]);
    const hadCreds = m.some((l) => attrName(l) === "ice-ufrag");
    const out = [...kept];
    if (hadCreds || !rejected) {
      // Credentials go where the original had them, or after the c= / first a= line.
      let at = out.findIndex((l) => l.startsWith("a="));
      if (at < 0) at = out.length;
      out.splice(at, 0, `a=ice-ufrag:${r.ufrag}`, `a=ice-pwd:${r.pwd}`);
    }
    if (!rejected) {
      for (const c of r.candidates) out.push(`a=${formatCandidate(c)}`);
      if (r.endOfCandidates) out.push("a=end-of-candidates");
    }
    return out;
  });
  return { session, media };
}

/** Removes candidates (and end-of-candidates) only, keeping credentials. */
export function stripCandidates(sdp: Sdp, endOfCandidates: boolean): Sdp {
  const drop = (l: string) => {
    const name = attrName(l);
    return name === "candidate" || name === "end-of-candidates" || name === "remote-candidates";
  };
  return {
    session: sdp.session.filter((l) => !drop(l)),
    media: sdp.media.map((m) => {
      const out = m.filter((l) => !drop(l));
      if (endOfCandidates && !/^m=\S+ 0 /.test(m[0])) out.push("a=end-of-candidates");
      return out;
    }),
  };
}
