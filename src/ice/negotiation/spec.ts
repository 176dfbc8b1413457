// What signalling hands the media plane: one spec per negotiated ICE session, plain data so it can be
// posted to every shard (and written to the state store). A spec is dormant until a client's authentic
// check claims it on one shard, which then builds the live session (and only then starts the Janus leg).
import type { Candidate } from "../../sdp/candidate.ts";
import type { IceCredentials } from "../credentials.ts";
import type { ClaimTicket } from "../shards/claims.ts";
import { MAX_JANUS_CANDIDATES } from "../timing.ts";
import type { EndReason } from "../../telemetry/catalog.ts";
import type { LiveState } from "../session/media_session.ts";

interface SpecBase {
  /** "<janus session>/<janus handle>": the session's id in every table, message and log. */
  id: string;
  /** xRTC's client-facing ufrag, unique on the node: the demux key on every shared port. */
  localUfrag: string;
  ticket: ClaimTicket;
  /** The client's own credentials, once known from its offer or answer: xRTC validates a client
   * address with a check signed with the client's password before sending it media. */
  client?: IceCredentials;
  /** Janus's candidates from its SDP and trickles. */
  janusCandidates: Candidate[];
  /** When the answer carrying xRTC's candidates went to the client (set-up time). */
  answeredAt: number;
}

/** Half proxy: ICE terminated on both sides. */
export interface HalfSpec extends SpecBase {
  mode: "half";
  /** Credentials xRTC gave the client (its ufrag is localUfrag). */
  clientFacing: IceCredentials;
  /** The credentials before the client's last ICE restart (xRTC's and the client's): they keep working
   * until a check under the new ones authenticates, so media pauses only for the client's own checks. */
  previousFacing?: IceCredentials;
  previousClient?: IceCredentials;
  /** xRTC's credentials towards Janus, and Janus's. */
  janusLocal: IceCredentials;
  janusRemote: IceCredentials;
  /** xRTC controls the Janus leg when it made the offer to Janus, or Janus is ICE-lite. */
  janusControlling: boolean;
  tieBreaker: bigint;
}

/** Full proxy (icedirect): the client checks Janus's password through xRTC's ufrag. */
export interface FullSpec extends SpecBase {
  mode: "full";
  janus: IceCredentials;
  icetcp: boolean;
}

export type SessionSpec = HalfSpec | FullSpec;

/** A change to a negotiated session that keeps its Janus leg. */
export type SpecUpdate =
  /** The client's credentials (its answer to Janus's offer; a renegotiation in the full proxy). */
  | { kind: "client"; credentials: IceCredentials }
  | { kind: "janusCandidate"; candidate: Candidate }
  /** Half proxy, the client restarted ICE: new client-facing credentials, the old ones kept. */
  | { kind: "restart"; clientFacing: IceCredentials; client: IceCredentials };

/** The password a client signs its checks to xRTC with (RFC 8445 §7.2.2), per client-facing ufrag. */
export function checkPasswords(spec: SessionSpec): Array<[ufrag: string, pwd: string]> {
  if (spec.mode === "full") return [[spec.localUfrag, spec.janus.pwd]];
  const out: Array<[string, string]> = [[spec.clientFacing.ufrag, spec.clientFacing.pwd]];
  if (spec.previousFacing) out.push([spec.previousFacing.ufrag, spec.previousFacing.pwd]);
  return out;
}

/** Applies an update to a spec in place: the negotiator and every shard change their copy this way. */
export function applySpecUpdate(spec: SessionSpec, u: SpecUpdate): void {
  switch (u.kind) {
    case "client":
      spec.client = u.credentials;
      return;
    case "janusCandidate":
      if (spec.janusCandidates.length < MAX_JANUS_CANDIDATES) spec.janusCandidates.push(u.candidate);
      return;
    case "restart":
      if (spec.mode !== "half") return;
      spec.previousFacing = spec.clientFacing;
      spec.previousClient = spec.client;
      spec.clientFacing = u.clientFacing;
      spec.localUfrag = u.clientFacing.ufrag;
      spec.client = u.client;
      return;
  }
}

/** A check under the new credentials authenticated: the previous ones stop working. */
export function retirePrevious(spec: SessionSpec): string | undefined {
  if (spec.mode !== "half" || !spec.previousFacing) return undefined;
  const old = spec.previousFacing.ufrag;
  spec.previousFacing = undefined;
  spec.previousClient = undefined;
  return old;
}

/** Where the media plane reports sessions it ended (consent expiry, failure) back to signalling. */
export type SessionEnded = (id: string, reason: EndReason) => void;

/** What signalling drives: one shard's media plane, or every shard's. */
export interface SpecSink {
  open(spec: SessionSpec): void;
  /** A session of the process before a restart: live again at once on the shard that owned it. */
  restore(spec: SessionSpec, live: LiveState): void;
  update(id: string, u: SpecUpdate): void;
  end(id: string, reason: EndReason): void;
}
