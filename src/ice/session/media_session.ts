// What a live ICE session offers the shared ports and the media plane, and what they offer it. Half and
// full sessions implement the same interface, so the plane never needs to know which one it holds.
import type { StunMessage } from "../../stun/message.ts";
import type { Candidate } from "../../sdp/candidate.ts";
import type { PeerAddress } from "../../io/address.ts";
import type { EndReason } from "../../telemetry/catalog.ts";
import type { ClientPath } from "./client_path.ts";
import type { SpecUpdate } from "../negotiation/spec.ts";

/** What a shared port (UDP socket or TCP connection) offers a session handling a client's packet. */
export interface ClientPort {
  /** The path of this source for `session`. A free source is bound to the session at once; a source
   * bound to another session moves only when this session validates the path (ClientPath.adopt). */
  bind(from: PeerAddress, session: MediaSession): ClientPath;
  /** Sends a packet to a source that may not be bound (STUN responses). */
  reply(data: Uint8Array, to: PeerAddress): void;
}

/** A session as the status page shows it: no credentials, ever. */
export interface SessionView {
  id: string;
  mode: "half" | "full";
  shard: number;
  ageMs: number;
  paths: Array<
    {
      key: string;
      transport: "udp" | "tcp";
      remote: string;
      validated: boolean;
      selected: boolean;
      consentAgeMs: number;
    }
  >;
  janus?: string;
  janusTransport?: "udp" | "tcp";
  packetsToJanus: number;
  bytesToJanus: number;
  packetsToClient: number;
  bytesToClient: number;
}

export interface MediaSession {
  readonly id: string;
  readonly mode: "half" | "full";
  /** The transport of the path media goes to the client on, or undefined while there is none. */
  readonly transport: "udp" | "tcp" | undefined;
  /** A client's STUN message; requests were routed here by one of the session's ufrags. */
  onClientStun(msg: StunMessage, ufrag: string | undefined, from: PeerAddress, port: ClientPort): void;
  onClientData(data: Uint8Array, path: ClientPath): void;
  /** A packet from Janus on the upstream socket. */
  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void;
  /** A client path went away (TCP connection closed, tuple taken by another session). */
  onPathClosed(path: ClientPath): void;
  addJanusCandidate(c: Candidate): void;
  /** The spec changed without an ICE restart towards Janus (already applied to the spec). */
  applyUpdate(u: SpecUpdate): void;
  /** Every checkIntervalMs while needsTicks: check pacing, retransmissions. */
  tick(now: number): void;
  /** True while the session has checks to pace or retransmit (the plane ticks only those). */
  readonly needsTicks: boolean;
  /** Consent, keepalives, expiries, when due. Returns a reason when the session must end. */
  maintain(now: number): EndReason | undefined;
  /** When maintain() has something to do next (earlier is harmless). A due time that moves earlier is
   * reported through SessionHost.maintainSoon. */
  maintenanceDueAt(now: number): number;
  close(reason: EndReason): void;
  view(now: number): SessionView;
  /** What another process needs to resume this session (written to the state directory). */
  liveState(): LiveState;
}

/** A live session's state that survives a restart of xRTC: the client's UDP addresses (a TCP connection
 * cannot survive the process), and the Janus address its leg uses. */
export interface LiveState {
  /** The shard that owned it. */
  shard: number;
  paths: Array<{ port: string; host: string; remotePort: number; validated: boolean; selected: boolean }>;
  /** The Janus address media goes to (half: the leg's selected pair; full: the Janus target). */
  janus?: { host: string; port: number };
  /** Half proxy: xRTC's role on the Janus leg, after any role conflict. */
  controlling?: boolean;
}

/** What a session needs from the shard that owns it. */
export interface SessionHost {
  shard: number;
  consentTimeoutMs: number;
  /** Tr of the Janus leg (options.janus_keepalive). */
  janusKeepaliveMs: number;
  now: () => number;
  /** Routes packets from a Janus address on the shared upstream socket to `s`; false when another live
   * session owns the address (never another client's data). */
  routeUpstream(addr: PeerAddress, s: MediaSession): boolean;
  /** A client-facing ufrag stopped working (superseded by an ICE restart). */
  retireUfrag(s: MediaSession, ufrag: string): void;
  /** The session has checks to pace: tick it until needsTicks is false. */
  wantTicks(s: MediaSession): void;
  /** Its maintenance is due sooner than maintenanceDueAt() said last: maintain it at the next tick. */
  maintainSoon(s: MediaSession): void;
  /** Its live state changed (an address validated or selected, the Janus leg connected). */
  liveStateChanged(s: MediaSession): void;
  /** The shared port of this name (a restored session binds its addresses again). */
  port(name: string): ClientPort | undefined;
  onClose(s: MediaSession, reason: EndReason): void;
}
