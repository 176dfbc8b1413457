// The media plane: shared ports, the upstream socket, the session table and its sweeper. Signalling
// hands it each offer and answer; it returns the SDP each side must see and creates, renews and
// releases sessions. Teardown of every session goes through #closeSession.
import type { Candidate } from "../sdp/candidate.ts";
import { candidatePriority } from "../sdp/candidate.ts";
import { iceCredentials, iceView, rewriteIce, type Sdp, stripCandidates } from "../sdp/sdp.ts";
import type { DatagramBackend, DatagramSocket } from "../io/types.ts";
import { type IceCredentials, randomCredentials, randomTieBreaker } from "./credentials.ts";
import { type MediaSession, SessionTable } from "./session.ts";
import { HalfSession } from "./half_session.ts";
import { FullSession } from "./full_session.ts";
import { SharedUdpPort } from "./udp_port.ts";
import { TIMING } from "./timing.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

export class SessionLimitError extends Error {
  override name = "SessionLimitError";
}

export class SdpRejected extends Error {
  override name = "SdpRejected";
}

export interface RouteMode {
  icedirect: boolean;
  icetcp: boolean;
}

/** Per Janus handle (one PeerConnection): what has been negotiated so far. */
interface HandleState {
  key: string;
  janusSession: string;
  mode: RouteMode;
  /** Client's credentials from its offer, waiting for Janus's answer. */
  clientOffer?: IceCredentials;
  /** xRTC's credentials towards Janus, stable across renegotiations. */
  janusLocal: IceCredentials;
  session?: MediaSession;
  /** Janus's credentials in the live session. */
  janusRemote?: IceCredentials;
  clientFacing?: IceCredentials;
  /** Janus's trickled candidates, kept for the session (they may arrive before the answer). */
  janusCandidates: Candidate[];
}

/** Janus trickles a handful of candidates; more than this per handle is not kept. */
const MAX_TRICKLED_CANDIDATES = 32;

export interface MediaPlaneOptions {
  backend: DatagramBackend;
  /** The candidates clients see: every enabled udp and tcp service × its candidate IPs. */
  clientCandidates: Candidate[];
  consentTimeoutMs: number;
  maxSessions: number;
  /** Opens the Janus-side connection of a full-proxy session over ICE-TCP (set by the TCP module). */
  connectIceTcp?: FullSession["opts"]["connectIceTcp"];
}

export class MediaPlane {
  readonly table = new SessionTable();
  readonly ports: SharedUdpPort[] = [];
  readonly upstream: DatagramSocket;
  readonly #handles = new Map<string, HandleState>();
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(readonly opts: MediaPlaneOptions) {
    this.upstream = opts.backend.bind({ host: "0.0.0.0", port: 0 }, (data, from) => {
      const s = this.table.byUpstream.get(from);
      if (s === undefined) {
        counters.inc("upstream_drop_unknown_source");
        return;
      }
      s.onUpstreamPacket(data, from);
    });
    this.#sweeper = setInterval(() => this.#sweep(), TIMING.sweepIntervalMs);
  }

  addUdpPort(name: string, host: string, port: number): SharedUdpPort {
    const p = new SharedUdpPort(name, this.opts.backend, host, port, this.table);
    this.ports.push(p);
    return p;
  }

  #handle(key: string, janusSession: string, mode: RouteMode): HandleState {
    let h = this.#handles.get(key);
    if (!h) {
      h = { key, janusSession, mode, janusLocal: randomCredentials(), janusCandidates: [] };
      this.#handles.set(key, h);
    }
    h.mode = mode;
    return h;
  }

  #checkCapacity(h: HandleState): void {
    if (!h.session && this.table.size >= this.opts.maxSessions) {
      counters.inc("sessions_refused_limit");
      throw new SessionLimitError(`xRTC is at its limit of ${this.opts.maxSessions} sessions`);
    }
  }

  /** The client offers (echotest, publisher): returns the offer Janus must see. */
  clientOffer(key: string, janusSession: string, mode: RouteMode, sdp: Sdp): Sdp {
    const creds = iceCredentials(sdp);
    if (!creds) throw new SdpRejected("the offer has no ice-ufrag/ice-pwd");
    const h = this.#handle(key, janusSession, mode);
    this.#checkCapacity(h);
    if (h.session && h.clientFacing && h.session.clientUfrag !== creds.ufrag) {
      this.#closeSession(h, "ICE restart by the client");
    }
    h.clientOffer = creds;
    if (mode.icedirect) return stripCandidates(sdp, true);
    return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
  }

  /** Janus answers the client's offer: returns the answer the client must see. */
  janusAnswer(key: string, sdp: Sdp): Sdp {
    const h = this.#handles.get(key);
    const janus = iceCredentials(sdp);
    if (!h || !h.clientOffer || !janus) {
      counters.inc("sdp_unmatched_answers");
      throw new SdpRejected("an answer from Janus without a recorded offer, or without ICE credentials");
    }
    const client = h.clientOffer;
    h.clientOffer = undefined;
    const view = iceView(sdp);
    return this.#establish(
      h,
      client,
      janus,
      view[0]?.lite ?? false,
      true,
      view.flatMap((v) => v.candidates),
      sdp,
    );
  }

  /** Janus offers (streaming, subscriber): returns the offer the client must see. */
  janusOffer(key: string, janusSession: string, mode: RouteMode, sdp: Sdp): Sdp {
    const janus = iceCredentials(sdp);
    if (!janus) throw new SdpRejected("Janus's offer has no ice-ufrag/ice-pwd");
    const h = this.#handle(key, janusSession, mode);
    this.#checkCapacity(h);
    const view = iceView(sdp);
    return this.#establish(
      h,
      undefined,
      janus,
      view[0]?.lite ?? false,
      false,
      view.flatMap((v) => v.candidates),
      sdp,
    );
  }

  /** The client answers Janus's offer: returns the answer Janus must see. */
  clientAnswer(key: string, sdp: Sdp): Sdp {
    const h = this.#handles.get(key);
    const creds = iceCredentials(sdp);
    if (!h || !h.session || !creds) {
      counters.inc("sdp_unmatched_answers");
      throw new SdpRejected("an answer without a recorded offer from Janus, or without ICE credentials");
    }
    if (h.session instanceof HalfSession) {
      h.session.clientUfrag = creds.ufrag;
      return rewriteIce(sdp, { ...h.janusLocal, candidates: [], endOfCandidates: true, lite: false });
    }
    if (h.session instanceof FullSession) h.session.setClientCredentials(creds);
    return stripCandidates(sdp, true);
  }

  /** A candidate Janus trickled (full_trickle, or Janus's offers): given to the session, never to the client. */
  janusCandidate(key: string, candidate: Candidate): void {
    const h = this.#handles.get(key);
    if (!h) {
      counters.inc("janus_candidates_unmatched");
      return;
    }
    if (h.janusCandidates.length < MAX_TRICKLED_CANDIDATES) h.janusCandidates.push(candidate);
    if (h.session) addJanusCandidate(h.session, candidate);
  }

  #establish(
    h: HandleState,
    client: IceCredentials | undefined,
    janus: IceCredentials,
    janusLite: boolean,
    xrtcOffered: boolean,
    janusCandidates: Candidate[],
    sdp: Sdp,
  ): Sdp {
    // Renegotiation without an ICE restart keeps the session and the credentials the client has.
    const same = h.session && h.janusRemote?.ufrag === janus.ufrag && h.janusRemote.pwd === janus.pwd &&
      (client === undefined || h.session.clientUfrag === client.ufrag);
    if (!same) {
      if (h.session) {
        this.#closeSession(h, "ICE restart");
        h.janusCandidates = [];
      }
      const ufrag = this.table.allocateUfrag();
      h.janusRemote = janus;
      const up = this.#upstreamFor([...janusCandidates, ...h.janusCandidates]);
      const common = {
        id: h.key,
        consentTimeoutMs: this.opts.consentTimeoutMs,
        upstream: up.socket,
        sharedUpstream: up.shared,
        address: (host: string, port: number) => this.opts.backend.address(host, port),
        table: this.table,
        onClose: (s: MediaSession, reason: string) => this.#onSessionClosed(h, s, reason),
      };
      if (h.mode.icedirect) {
        // Full proxy: the client checks Janus's password through xRTC's node-unique ufrag.
        h.clientFacing = { ufrag, pwd: janus.pwd };
        h.session = new FullSession({
          ...common,
          localUfrag: ufrag,
          janus,
          client,
          icetcp: h.mode.icetcp,
          connectIceTcp: this.opts.connectIceTcp,
        });
      } else {
        h.clientFacing = randomCredentials(ufrag);
        h.session = new HalfSession({
          ...common,
          clientFacing: h.clientFacing,
          clientUfrag: client?.ufrag,
          janusLocal: h.janusLocal,
          janusRemote: janus,
          janusControlling: xrtcOffered || janusLite,
          tieBreaker: randomTieBreaker(),
        });
      }
      up.owner.session = h.session;
      this.table.add(h.session);
    }
    const s = h.session!;
    for (const c of [...janusCandidates, ...h.janusCandidates]) addJanusCandidate(s, c);
    if (client && s instanceof FullSession) s.setClientCredentials(client);
    return rewriteIce(sdp, {
      ufrag: h.clientFacing!.ufrag,
      pwd: h.clientFacing!.pwd,
      candidates: this.opts.clientCandidates,
      endOfCandidates: true,
      // Half proxy: xRTC is ICE-lite to clients. Full proxy: Janus's own ICE runs end to end.
      lite: h.mode.icedirect ? janusLite : true,
    });
  }

  /** The shared upstream socket, unless a live session already owns one of these Janus addresses (a
   * server serving many sessions on one port): then a socket of the session's own, so that packets are
   * never delivered to another client's session. */
  #upstreamFor(
    janusCandidates: Candidate[],
  ): { socket: DatagramSocket; shared: boolean; owner: { session?: MediaSession } } {
    const owner: { session?: MediaSession } = {};
    const addrs = janusCandidates.filter((c) => c.transport.toLowerCase() === "udp").map((c) =>
      this.opts.backend.address(c.address, c.port)
    );
    if (this.table.canShareUpstream(addrs)) return { socket: this.upstream, shared: true, owner };
    counters.inc("upstream_private_sockets");
    const socket = this.opts.backend.bind(
      { host: "0.0.0.0", port: 0 },
      (data, from) => owner.session?.onUpstreamPacket(data, from),
    );
    return { socket, shared: false, owner };
  }

  #closeSession(h: HandleState, reason: string): void {
    const s = h.session;
    if (s) s.close(reason); // calls #onSessionClosed
  }

  #onSessionClosed(h: HandleState, s: MediaSession, reason: string): void {
    this.table.remove(s);
    if (h.session === s) {
      h.session = undefined;
      h.janusRemote = undefined;
      h.clientFacing = undefined;
    }
    counters.inc("sessions_closed");
    log("info", "session_close", { session: s.id, ufrag: s.localUfrag, reason });
  }

  /** hangup, detach: the handle's PeerConnection is gone. */
  release(key: string, reason: string): void {
    const h = this.#handles.get(key);
    if (!h) return;
    this.#closeSession(h, reason);
    this.#handles.delete(key);
  }

  /** destroy, timeout: everything of a Janus session. */
  releaseJanusSession(janusSession: string, reason: string): void {
    for (const h of [...this.#handles.values()]) {
      if (h.janusSession === janusSession) this.release(h.key, reason);
    }
  }

  get handleCount(): number {
    return this.#handles.size;
  }

  sessionFor(key: string): MediaSession | undefined {
    return this.#handles.get(key)?.session;
  }

  #sweep(): void {
    const now = Date.now();
    for (const s of [...this.table.byUfrag.values()]) {
      const reason = s.maintain(now);
      if (reason) s.close(reason);
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const h of [...this.#handles.values()]) this.release(h.key, "shutdown");
    for (const p of this.ports) p.close();
    this.upstream.close();
  }
}

function addJanusCandidate(s: MediaSession, c: Candidate): void {
  if (s instanceof HalfSession || s instanceof FullSession) s.addJanusCandidate(c);
}

/** xRTC's candidates as clients see them (RFC 8839 §5.1): UDP first, then passive TCP (RFC 6544). */
export function makeClientCandidates(
  services: Array<{ proto: "udp" | "tcp"; ips: string[]; port: number }>,
): Candidate[] {
  const out: Candidate[] = [];
  let n = 0;
  for (const svc of services) {
    for (const ip of svc.ips) {
      n++;
      const udp = svc.proto === "udp";
      out.push({
        foundation: `xrtc${n}`,
        component: 1,
        transport: udp ? "udp" : "tcp",
        priority: candidatePriority(udp ? 126 : 100, 65535 - n, 1),
        address: ip,
        port: svc.port,
        type: "host",
        tcpType: udp ? undefined : "passive",
        extensions: [],
      });
    }
  }
  return out;
}
