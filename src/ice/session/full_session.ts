// Full proxy (icedirect): ICE runs end to end between client and Janus; xRTC relays every packet.
// The client sees a node-unique ufrag of xRTC's with Janus's password, so ufrags of different Janus
// sessions can never collide on the shared port. Relayed STUN is re-signed: USERNAME swapped back
// to what the receiver expects, XOR-MAPPED-ADDRESS as the receiver would see it without xRTC, then
// MESSAGE-INTEGRITY and FINGERPRINT recomputed. Janus-side targets are only addresses from Janus's
// SDP or trickles, so xRTC never relays to an address Janus did not announce; client-side, media and
// Janus's checks go only to a client address that has answered xRTC's own check (client_paths.ts).
import {
  Attr,
  BINDING_ERROR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  classifyPacket,
  encodeString,
  encodeXorAddress,
  getUsername,
  hasAttribute,
  parseStun,
  plainAttributes,
  StunError,
  type StunMessage,
  transactionKey,
  verifyFingerprint,
  verifyIntegrity,
} from "../../stun/message.ts";
import type { Candidate } from "../../sdp/candidate.ts";
import type { DatagramSocket } from "../../io/types.ts";
import { type PeerAddress, peerAddress } from "../../io/address.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, LiveState, MediaSession, SessionHost, SessionView } from "./media_session.ts";
import type { FullSpec, SpecUpdate } from "../negotiation/spec.ts";
import { ClientPaths } from "./client_paths.ts";
import { TIMING } from "../timing.ts";
import { randomTieBreaker } from "../credentials.ts";
import { drop, type EndReason, FORWARDED, iceSetup, janusLegs, stunChecks } from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";

/** A connection to one of Janus's candidates: the upstream UDP socket, or an ICE-TCP stream. */
export interface JanusTarget {
  readonly remote: PeerAddress;
  readonly transport: "udp" | "tcp";
  send(data: Uint8Array): void;
  close(): void;
}

export type ConnectIceTcp = (
  remote: PeerAddress,
  onPacket: (data: Uint8Array) => void,
  onClose: () => void,
) => JanusTarget;

export interface FullSessionOptions {
  spec: FullSpec;
  host: SessionHost;
  /** The session's state before a restart of xRTC, to resume from. */
  restore?: LiveState;
  upstream: DatagramSocket;
  connectIceTcp?: ConnectIceTcp;
}

interface Transaction {
  at: number;
  /** Where the request came from: a client path, or a Janus target. */
  client?: ClientPath;
  janus?: JanusTarget;
}

const UTF8 = new TextEncoder();

export class FullSession implements MediaSession {
  readonly mode = "full" as const;
  readonly id: string;
  readonly spec: FullSpec;
  readonly #host: SessionHost;
  #clientKey?: Uint8Array;
  readonly #janusKey: Uint8Array;
  readonly #targets: JanusTarget[] = [];
  #janusTarget?: JanusTarget;
  readonly #paths: ClientPaths;
  readonly #transactions = new Map<string, Transaction>();
  readonly #createdAt: number;
  #closed = false;
  #packetsToJanus = 0;
  #bytesToJanus = 0;
  #packetsToClient = 0;
  #bytesToClient = 0;

  constructor(readonly opts: FullSessionOptions) {
    const { spec, host } = opts;
    this.spec = spec;
    this.id = spec.id;
    this.#host = host;
    this.#createdAt = host.now();
    this.#janusKey = UTF8.encode(spec.janus.pwd);
    this.#paths = new ClientPaths({
      id: spec.id,
      localUfrag: spec.localUfrag,
      client: spec.client,
      tieBreaker: randomTieBreaker(),
      consentTimeoutMs: host.consentTimeoutMs,
      now: host.now,
      onChange: () => {
        if (!this.#closed) host.liveStateChanged(this);
      },
    });
    this.#clientKey = spec.client && UTF8.encode(spec.client.pwd);
    for (const c of spec.janusCandidates) this.addJanusCandidate(c);
    if (opts.restore) this.#restore(opts.restore);
  }

  #restore(live: LiveState): void {
    this.#paths.restoreAll(live.paths, (port, from) => this.#host.port(port)?.bind(from, this));
    const janus = live.janus && peerAddress(live.janus.host, live.janus.port);
    this.#janusTarget = janus &&
      this.#targets.find((t) => t.remote.key === janus.key && t.transport === "udp");
  }

  liveState(): LiveState {
    const t = this.#janusTarget?.transport === "udp" ? this.#janusTarget : undefined;
    return {
      shard: this.#host.shard,
      paths: this.#paths.udpPaths(),
      janus: t && { host: t.remote.host, port: t.remote.port },
    };
  }

  get transport(): "udp" | "tcp" | undefined {
    return this.#paths.selected?.transport;
  }

  applyUpdate(u: SpecUpdate): void {
    if (u.kind === "janusCandidate") this.addJanusCandidate(u.candidate);
    this.#clientKey = this.spec.client && UTF8.encode(this.spec.client.pwd);
    this.#paths.setCredentials(this.spec.localUfrag, this.spec.client);
    this.#host.wantTicks(this);
  }

  get needsTicks(): boolean {
    return this.#paths.validating;
  }

  addJanusCandidate(c: Candidate): void {
    if (
      this.#closed || c.component !== 1 || c.port === 0 || this.#targets.length >= TIMING.maxPathsPerSession
    ) return;
    const remote = peerAddress(c.address, c.port);
    if (!remote || this.#targets.some((t) => t.remote.key === remote.key)) return;
    const transport = c.transport.toLowerCase();
    if (this.spec.icetcp) {
      if (transport !== "tcp" || (c.tcpType !== undefined && c.tcpType !== "passive")) return;
      if (!this.opts.connectIceTcp) return;
      let target: JanusTarget | undefined = undefined;
      target = this.opts.connectIceTcp(remote, (data) => this.#fromJanus(data, target!), () => {
        const i = this.#targets.indexOf(target!);
        if (i >= 0) this.#targets.splice(i, 1);
        if (this.#janusTarget === target) {
          log("info", "janus_ice_tcp_closed", { session: this.id, janus: target!.remote.text });
          this.close("janus_leg_failed");
        }
      });
      this.#targets.push(target);
      return;
    }
    if (transport !== "udp") return;
    const upstream = this.opts.upstream;
    if (!this.#host.routeUpstream(remote, this)) return;
    this.#targets.push({ remote, transport: "udp", send: (data) => upstream.send(data, remote), close() {} });
  }

  // ---- client side ----

  onClientStun(msg: StunMessage, ufrag: string | undefined, from: PeerAddress, port: ClientPort): void {
    if (!verifyFingerprint(msg)) {
      drop.check_no_fingerprint.inc();
      return;
    }
    if (msg.type === BINDING_REQUEST) {
      const username = getUsername(msg) ?? "";
      const sep = username.indexOf(":");
      const clientUfrag = username.slice(sep + 1);
      if (
        sep < 0 || ufrag !== this.spec.localUfrag ||
        (this.spec.client && clientUfrag !== this.spec.client.ufrag)
      ) {
        drop.check_bad_username.inc();
        return;
      }
      if (!verifyIntegrity(msg, this.#janusKey)) {
        drop.check_bad_integrity.inc();
        return;
      }
      stunChecks.inc({ outcome: "answered" });
      const path = port.bind(from, this);
      this.#paths.onAuthenticCheck(path, hasAttribute(msg, Attr.USE_CANDIDATE));
      if (this.#paths.validating) this.#host.wantTicks(this);
      const relayed = this.#resign(msg, this.#janusKey, `${this.spec.janus.ufrag}:${clientUfrag}`);
      this.#remember(msg, { at: this.#host.now(), client: path });
      // Until a Janus candidate has answered, the check goes to every announced one.
      const targets = this.#janusTarget ? [this.#janusTarget] : this.#targets;
      for (const t of targets) t.send(relayed);
      return;
    }
    if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) {
      if (this.#paths.onResponse(msg, port.bind(from, this))) return; // xRTC's own validation check
      // A response to a check Janus made: only from a path that is bound to this session.
      const tx = this.#transactions.get(transactionKey(msg.transactionId));
      if (!tx?.janus || !this.#clientKey || !verifyIntegrity(msg, this.#clientKey)) {
        drop.stun_unexpected.inc();
        return;
      }
      this.#transactions.delete(transactionKey(msg.transactionId));
      tx.janus.send(this.#resign(msg, this.#clientKey, undefined, tx.janus.remote));
    }
  }

  onClientData(data: Uint8Array, path: ClientPath): void {
    const t = this.#janusTarget;
    if (t === undefined) {
      drop.janus_leg_not_ready.inc();
      return;
    }
    t.send(data);
    this.#packetsToJanus++;
    this.#bytesToJanus += data.length;
    const f = FORWARDED.to_janus[path.transport];
    f.packets.inc();
    f.bytes.inc(data.length);
  }

  // ---- Janus side ----

  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void {
    const target = this.#targets.find((t) => t.remote.key === from.key);
    if (target) this.#fromJanus(data, target);
    else drop.upstream_unknown_source.inc();
  }

  #fromJanus(data: Uint8Array, target: JanusTarget): void {
    if (this.#closed) return;
    if (data.length === 0 || classifyPacket(data[0]) !== "stun") {
      if (this.#janusTarget === undefined) this.#janusTarget = target;
      if (!this.#paths.send(data)) return;
      this.#packetsToClient++;
      this.#bytesToClient += data.length;
      const f = FORWARDED.to_client[this.#paths.selected!.transport];
      f.packets.inc();
      f.bytes.inc(data.length);
      return;
    }
    let msg: StunMessage;
    try {
      msg = parseStun(data);
    } catch (e) {
      if (!(e instanceof StunError)) throw e;
      drop.upstream_stun_malformed.inc();
      return;
    }
    if (msg.type === BINDING_REQUEST) {
      // Janus checks the client: USERNAME "<client ufrag>:<janus ufrag>", signed with the client's password.
      const path = this.#paths.selected;
      if (!path || !this.#clientKey || !this.spec.client || !verifyIntegrity(msg, this.#clientKey)) {
        drop.janus_check_not_relayed.inc();
        return;
      }
      this.#remember(msg, { at: this.#host.now(), janus: target });
      path.send(this.#resign(msg, this.#clientKey, `${this.spec.client.ufrag}:${this.spec.localUfrag}`));
      return;
    }
    if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) {
      const key = transactionKey(msg.transactionId);
      const tx = this.#transactions.get(key);
      if (!tx?.client || !verifyIntegrity(msg, this.#janusKey)) {
        drop.stun_unexpected.inc();
        return;
      }
      this.#transactions.delete(key);
      if (msg.type === BINDING_SUCCESS && this.#janusTarget !== target) {
        // The first Janus candidate that answers carries the session (RFC 8445 §7.2.5.3: a valid pair).
        const first = this.#janusTarget === undefined;
        this.#janusTarget = target;
        janusLegs.inc({ mode: "full", transport: target.transport });
        if (first) {
          iceSetup.observe(
            { phase: "first_check_to_janus_connected" },
            (this.#host.now() - this.#createdAt) / 1000,
          );
        }
        log("info", "janus_target_selected", {
          session: this.id,
          janus: target.remote.text,
          transport: target.transport,
        });
        this.#host.liveStateChanged(this);
      }
      tx.client.send(this.#resign(msg, this.#janusKey, undefined, tx.client.remote));
    }
  }

  #remember(msg: StunMessage, tx: Transaction): void {
    if (this.#transactions.size >= TIMING.maxRelayedTransactions) {
      this.#expireTransactions(tx.at);
      if (this.#transactions.size >= TIMING.maxRelayedTransactions) {
        this.#transactions.delete(this.#transactions.keys().next().value!);
      }
    }
    this.#transactions.set(transactionKey(msg.transactionId), tx);
  }

  #expireTransactions(now: number): void {
    for (const [k, v] of this.#transactions) {
      if (now - v.at > TIMING.relayedTransactionTtlMs) this.#transactions.delete(k);
    }
  }

  /** Rebuilds a relayed message with USERNAME and/or XOR-MAPPED-ADDRESS replaced, re-signed with `key`. */
  #resign(msg: StunMessage, key: Uint8Array, username?: string, mapped?: PeerAddress): Uint8Array {
    const attributes = plainAttributes(msg).map(([type, value]): [number, Uint8Array] => {
      if (type === Attr.USERNAME && username !== undefined) return [type, encodeString(username)];
      if (type === Attr.XOR_MAPPED_ADDRESS && mapped !== undefined) {
        return [type, encodeXorAddress(mapped, msg.transactionId)];
      }
      return [type, value];
    });
    return buildStun({
      type: msg.type,
      transactionId: msg.transactionId,
      attributes,
      integrityKey: key,
      fingerprint: true,
    });
  }

  onPathClosed(path: ClientPath): void {
    this.#paths.closed(path);
  }

  tick(now: number): void {
    this.#paths.tick(now);
  }

  maintain(now: number): EndReason | undefined {
    if (this.#paths.maintain(now)) return "consent_expired";
    if (this.#transactions.size > 0) this.#expireTransactions(now);
    return undefined;
  }

  /** Relayed transactions expire on the plane's backstop interval; they are bounded meanwhile. */
  maintenanceDueAt(): number {
    return this.#paths.maintenanceDueAt();
  }

  close(reason: EndReason): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#targets) t.close();
    this.#paths.closeAll();
    this.#host.onClose(this, reason);
  }

  view(now: number): SessionView {
    return {
      id: this.id,
      mode: "full",
      shard: this.#host.shard,
      ageMs: now - this.#createdAt,
      paths: this.#paths.view(now),
      janus: this.#janusTarget?.remote.text,
      janusTransport: this.#janusTarget?.transport,
      packetsToJanus: this.#packetsToJanus,
      bytesToJanus: this.#bytesToJanus,
      packetsToClient: this.#packetsToClient,
      bytesToClient: this.#bytesToClient,
    };
  }
}
