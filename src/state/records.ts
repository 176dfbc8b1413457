// What xRTC keeps on disk per live session, so that a restarted process resumes its calls: per Janus
// session its backend, transport, mode and client; per handle xRTC's credentials towards Janus, the ICE
// session's spec (credentials, Janus's candidates) and, once a shard owns it, its live state (the
// client's bound addresses, the Janus address the leg selected, the shard). Nothing else: no SDP, no
// media. Records are JSON with a version; one that does not read back is skipped, never fatal.
import type { IceCredentials } from "../ice/credentials.ts";
import type { RouteMode } from "../ice/negotiation/negotiator.ts";
import type { SessionSpec } from "../ice/negotiation/spec.ts";
import type { LiveState } from "../ice/session/media_session.ts";
import type { Candidate } from "../sdp/candidate.ts";
import type { WhipResource } from "../signalling/sessions.ts";

export const RECORD_VERSION = 1;

export interface JanusSessionRecord {
  v: 1;
  id: string;
  upstream: string;
  backend: string;
  protocol: "http" | "ws";
  mode: RouteMode;
  client: string;
  createdAt: number;
  /** The WHIP resource xRTC holds through this session, if it is one. */
  whip?: WhipResource;
}

export interface HandleRecord {
  v: 1;
  session: string;
  id: string;
  plugin: string;
  janusLocal: IceCredentials;
  janusCandidates: Candidate[];
  spec?: SessionSpec;
  live?: LiveState;
}

/** JSON text of a record; bigints (ICE tie-breakers) as decimal strings. */
export function encodeRecord(r: JanusSessionRecord | HandleRecord): string {
  return JSON.stringify(r, (_k, v) => typeof v === "bigint" ? { $bigint: v.toString() } : v);
}

/** Whether two records of a handle carry the same negotiation (credentials, candidates, spec), whatever
 * their live state and the claim ticket each process gives a spec. */
export function sameNegotiation(a: HandleRecord, b: HandleRecord): boolean {
  const negotiation = (r: HandleRecord) =>
    encodeRecord({
      ...r,
      live: undefined,
      spec: r.spec && { ...r.spec, ticket: { slot: 0, generation: 0 } },
    });
  return negotiation(a) === negotiation(b);
}

function revive(_k: string, v: unknown): unknown {
  if (
    v && typeof v === "object" && "$bigint" in v && typeof (v as { $bigint: unknown }).$bigint === "string"
  ) {
    return BigInt((v as { $bigint: string }).$bigint);
  }
  return v;
}

const isString = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length < 512;
/** A candidate as the media plane reads it (transport, address, port), whatever else it carries. */
const isCandidate = (v: unknown): v is Candidate => {
  const c = v as Candidate;
  return !!c && typeof c === "object" && isString(c.transport) && isString(c.address) &&
    Number.isInteger(c.port) && c.port > 0 && c.port < 65536 && Array.isArray(c.extensions);
};
const isCandidates = (v: unknown): v is Candidate[] => Array.isArray(v) && v.every(isCandidate);
const isCreds = (v: unknown): v is IceCredentials =>
  !!v && typeof v === "object" && isString((v as IceCredentials).ufrag) &&
  isString((v as IceCredentials).pwd);

export function decodeSessionRecord(text: string): JanusSessionRecord | undefined {
  try {
    const r = JSON.parse(text, revive) as JanusSessionRecord;
    const ok = r?.v === RECORD_VERSION && isString(r.id) && isString(r.upstream) && isString(r.backend) &&
      (r.protocol === "http" || r.protocol === "ws") && typeof r.mode?.icedirect === "boolean" &&
      typeof r.client === "string" && typeof r.createdAt === "number";
    if (!ok) return undefined;
    const w = r.whip;
    // A WHIP part that does not read back is dropped; the Janus session is restored all the same.
    if (
      w !== undefined &&
      !(isString(w.endpoint) && isString(w.resource) && isString(w.etag) && isString(w.handle) &&
        (w.mid === undefined || typeof w.mid === "string"))
    ) r.whip = undefined;
    return r;
  } catch {
    return undefined;
  }
}

export function decodeHandleRecord(text: string): HandleRecord | undefined {
  try {
    const r = JSON.parse(text, revive) as HandleRecord;
    if (r?.v !== RECORD_VERSION || !isString(r.session) || !isString(r.id) || typeof r.plugin !== "string") {
      return undefined;
    }
    if (!isCreds(r.janusLocal) || !isCandidates(r.janusCandidates)) return undefined;
    const s = r.spec;
    if (s !== undefined) {
      if (!isString(s.id) || !isString(s.localUfrag) || !isCandidates(s.janusCandidates)) return undefined;
      if (
        s.mode === "half" &&
        !(isCreds(s.clientFacing) && isCreds(s.janusRemote) && typeof s.tieBreaker === "bigint")
      ) return undefined;
      if (s.mode === "full" && !isCreds(s.janus)) return undefined;
      if (s.mode !== "half" && s.mode !== "full") return undefined;
    }
    const l = r.live;
    if (l !== undefined) {
      const isAddr = (host: unknown, port: unknown) =>
        isString(host) && typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536;
      if (!(Number.isInteger(l.shard) && l.shard >= 0 && Array.isArray(l.paths))) return undefined;
      for (const p of l.paths) {
        if (!p || !isString(p.port) || !isAddr(p.host, p.remotePort)) return undefined;
      }
      if (l.janus !== undefined && !isAddr(l.janus.host, l.janus.port)) return undefined;
    }
    return r;
  } catch {
    return undefined;
  }
}
