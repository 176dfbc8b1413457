// What signalling hands the media plane: one spec per negotiated ICE session, plain data so it can be
// posted to every shard. A spec is dormant until a client's authentic check claims it on one shard,
// which then builds the live session (and only then starts the Janus leg).
import type { Candidate } from "../sdp/candidate.ts";
import type { IceCredentials } from "./credentials.ts";
import type { ClaimTicket } from "./claims.ts";

interface SpecBase {
  /** The Janus handle key: the session's id in logs. */
  id: string;
  /** xRTC's client-facing ufrag, unique on the node: the demux key on every shared port. */
  localUfrag: string;
  ticket: ClaimTicket;
  /** The client's own ufrag, when known from its offer or answer. */
  clientUfrag?: string;
  /** Janus's candidates from its SDP and trickles. */
  janusCandidates: Candidate[];
}

/** Half proxy: ICE terminated on both sides. */
export interface HalfSpec extends SpecBase {
  mode: "half";
  /** Credentials xRTC gave the client. */
  clientFacing: IceCredentials;
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
  client?: IceCredentials;
  icetcp: boolean;
}

export type SessionSpec = HalfSpec | FullSpec;

/** A change to a negotiated session without an ICE restart. */
export type SpecUpdate =
  | { kind: "client"; credentials: IceCredentials }
  | { kind: "janusCandidate"; candidate: Candidate };

/** The password a client signs its checks to xRTC with (RFC 8445 §7.2.2). */
export function checkPassword(spec: SessionSpec): string {
  return spec.mode === "half" ? spec.clientFacing.pwd : spec.janus.pwd;
}

/** Applies an update to a spec in place. */
export function applySpecUpdate(spec: SessionSpec, u: SpecUpdate): void {
  if (u.kind === "client") {
    spec.clientUfrag = u.credentials.ufrag;
    if (spec.mode === "full") spec.client = u.credentials;
  } else if (spec.janusCandidates.length < MAX_JANUS_CANDIDATES) {
    spec.janusCandidates.push(u.candidate);
  }
}

/** Janus announces a handful of candidates; more than this per session is not kept. */
export const MAX_JANUS_CANDIDATES = 32;

/** Where the media plane reports sessions it ended (consent expiry, failure) back to signalling. */
export type SessionEnded = (localUfrag: string, reason: string) => void;

/** What signalling drives: one shard's media plane, or every shard's. */
export interface SpecSink {
  open(spec: SessionSpec): void;
  update(localUfrag: string, u: SpecUpdate): void;
  end(localUfrag: string, reason: string): void;
}
