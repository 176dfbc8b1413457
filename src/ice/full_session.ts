// Full proxy (icedirect): ICE runs end to end between client and Janus; xRTC relays every packet.
// The client sees a node-unique ufrag of xRTC's with Janus's password, so ufrags of different Janus
// sessions can never collide on the shared port. Relayed STUN is re-signed: USERNAME swapped back
// to what the receiver expects, XOR-MAPPED-ADDRESS as the receiver would see it without xRTC, then
// MESSAGE-INTEGRITY and FINGERPRINT recomputed. Janus-side targets are only addresses from Janus's
// SDP or trickles, so xRTC never relays to an address Janus did not announce.
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
} from "../stun/message.ts";
import type { Candidate } from "../sdp/candidate.ts";
import type { DatagramSocket, PeerAddress } from "../io/types.ts";
import type { ClientPath } from "./client_path.ts";
import type { ClientPort, MediaSession, SessionTable } from "./session.ts";
import type { IceCredentials } from "./credentials.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

/** A connection to one of Janus's candidates: the shared upstream UDP socket, or an ICE-TCP stream. */
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
  id: string;
  localUfrag: string;
  janus: IceCredentials;
  client?: IceCredentials;
  icetcp: boolean;
  consentTimeoutMs: number;
  upstream: DatagramSocket;
  address: (host: string, port: number) => PeerAddress;
  table: SessionTable;
  connectIceTcp?: ConnectIceTcp;
  onClose: (s: FullSession, reason: string) => void;
}

/** Relayed transactions remembered for routing the response back (bounded). */
const MAX_TRANSACTIONS = 256;
const TRANSACTION_TTL_MS = 10_000;

interface Transaction {
  at: number;
  /** Where the request came from: a client path, or a Janus target. */
  client?: ClientPath;
  janus?: JanusTarget;
}

export class FullSession implements MediaSession {
  readonly mode = "full" as const;
  readonly id: string;
  readonly localUfrag: string;
  clientUfrag?: string;
  #clientKey?: Uint8Array;
  readonly #janusKey: Uint8Array;
  readonly #targets: JanusTarget[] = [];
  #janusTarget?: JanusTarget;
  readonly #paths = new Set<ClientPath>();
  #selected?: ClientPath;
  readonly #transactions = new Map<string, Transaction>();
  #lastValidFromClient = Date.now();
  #closed = false;

  constructor(readonly opts: FullSessionOptions) {
    this.id = opts.id;
    this.localUfrag = opts.localUfrag;
    this.#janusKey = new TextEncoder().encode(opts.janus.pwd);
    if (opts.client) this.setClientCredentials(opts.client);
  }

  setClientCredentials(c: IceCredentials): void {
    this.clientUfrag = c.ufrag;
    this.#clientKey = new TextEncoder().encode(c.pwd);
  }

  addJanusCandidate(c: Candidate): void {
    if (this.#closed || c.component !== 1 || c.port === 0 || c.address.endsWith(".local")) return;
    const remote = this.opts.address(c.address, c.port);
    if (this.#targets.some((t) => t.remote === remote)) return;
    const transport = c.transport.toLowerCase();
    if (this.opts.icetcp) {
      if (transport !== "tcp" || (c.tcpType !== undefined && c.tcpType !== "passive")) return;
      if (!this.opts.connectIceTcp) return;
      let target: JanusTarget | undefined = undefined;
      target = this.opts.connectIceTcp(remote, (data) => this.#fromJanus(data, target!), () => {
        const i = this.#targets.indexOf(target!);
        if (i >= 0) this.#targets.splice(i, 1);
        if (this.#janusTarget === target) this.close("janus ICE-TCP connection closed");
      });
      this.#targets.push(target);
      return;
    }
    if (transport !== "udp") return;
    const upstream = this.opts.upstream;
    const target: JanusTarget = {
      remote,
      transport: "udp",
      send: (data) => upstream.send(data, remote),
      close() {},
    };
    this.#targets.push(target);
    this.opts.table.routeUpstream(remote, this);
  }

  // ---- client side ----

  onClientStun(msg: StunMessage, from: PeerAddress, port: ClientPort): void {
    if (!verifyFingerprint(msg)) {
      counters.inc("stun_drop_no_fingerprint");
      return;
    }
    if (msg.type === BINDING_REQUEST) {
      const username = getUsername(msg) ?? "";
      const sep = username.indexOf(":");
      const clientUfrag = username.slice(sep + 1);
      if (sep < 0 || (this.clientUfrag !== undefined && clientUfrag !== this.clientUfrag)) {
        counters.inc("stun_drop_bad_username");
        return;
      }
      if (!verifyIntegrity(msg, this.#janusKey)) {
        counters.inc("stun_drop_bad_integrity");
        return;
      }
      const path = port.bind(from, this);
      this.#paths.add(path);
      this.#lastValidFromClient = Date.now();
      if (hasAttribute(msg, Attr.USE_CANDIDATE) || this.#selected === undefined) this.#selected = path;
      const relayed = this.#resign(msg, this.#janusKey, `${this.opts.janus.ufrag}:${clientUfrag}`);
      this.#remember(msg, { at: Date.now(), client: path });
      // Until a Janus candidate has answered, the check goes to every announced one.
      const targets = this.#janusTarget ? [this.#janusTarget] : this.#targets;
      for (const t of targets) t.send(relayed);
      return;
    }
    if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) {
      // A response to a check Janus made: only from a path that is bound to this session.
      const tx = this.#transactions.get(transactionKey(msg.transactionId));
      if (!tx?.janus || !this.#clientKey || !verifyIntegrity(msg, this.#clientKey)) {
        counters.inc("stun_drop_unmatched_response");
        return;
      }
      this.#transactions.delete(transactionKey(msg.transactionId));
      this.#lastValidFromClient = Date.now();
      tx.janus.send(this.#resign(msg, this.#clientKey, undefined, tx.janus.remote));
    }
  }

  onClientData(data: Uint8Array, path: ClientPath): void {
    const t = this.#janusTarget;
    if (t === undefined) {
      counters.inc("media_drop_janus_leg_not_ready");
      return;
    }
    if (this.#selected === undefined) this.#selected = path;
    t.send(data);
  }

  // ---- Janus side ----

  onUpstreamPacket(data: Uint8Array, from: PeerAddress): void {
    const target = this.#targets.find((t) => t.remote === from);
    if (target) this.#fromJanus(data, target);
    else counters.inc("upstream_drop_unknown_source");
  }

  #fromJanus(data: Uint8Array, target: JanusTarget): void {
    if (this.#closed) return;
    if (data.length === 0 || classifyPacket(data[0]) !== "stun") {
      if (this.#janusTarget === undefined) this.#janusTarget = target;
      this.#selected?.send(data) ?? counters.inc("media_drop_no_client_path");
      return;
    }
    let msg: StunMessage;
    try {
      msg = parseStun(data);
    } catch (e) {
      if (!(e instanceof StunError)) throw e;
      counters.inc("stun_drop_malformed_upstream");
      return;
    }
    if (msg.type === BINDING_REQUEST) {
      // Janus checks the client: USERNAME "<client ufrag>:<janus ufrag>", signed with the client's password.
      const path = this.#selected;
      if (!path || !this.#clientKey || !verifyIntegrity(msg, this.#clientKey)) {
        counters.inc("janus_check_not_relayed");
        return;
      }
      this.#remember(msg, { at: Date.now(), janus: target });
      path.send(this.#resign(msg, this.#clientKey, `${this.clientUfrag}:${this.localUfrag}`));
      return;
    }
    if (msg.type === BINDING_SUCCESS || msg.type === BINDING_ERROR) {
      const key = transactionKey(msg.transactionId);
      const tx = this.#transactions.get(key);
      if (!tx?.client || !verifyIntegrity(msg, this.#janusKey)) {
        counters.inc("stun_drop_unmatched_response");
        return;
      }
      this.#transactions.delete(key);
      if (msg.type === BINDING_SUCCESS && this.#janusTarget !== target) {
        // The first Janus candidate that answers carries the session (RFC 8445 §7.2.5.3: a valid pair).
        this.#janusTarget = target;
        counters.inc(`full_proxy_janus_leg_${target.transport}`);
        log("info", "janus_target_selected", {
          session: this.id,
          ufrag: this.localUfrag,
          janus: target.remote.key,
          transport: target.transport,
        });
      }
      tx.client.send(this.#resign(msg, this.#janusKey, undefined, tx.client.remote));
    }
  }

  #remember(msg: StunMessage, tx: Transaction): void {
    if (this.#transactions.size >= MAX_TRANSACTIONS) {
      const now = Date.now();
      for (const [k, v] of this.#transactions) {
        if (now - v.at > TRANSACTION_TTL_MS) this.#transactions.delete(k);
      }
      if (this.#transactions.size >= MAX_TRANSACTIONS) {
        this.#transactions.delete(this.#transactions.keys().next().value!);
      }
    }
    this.#transactions.set(transactionKey(msg.transactionId), tx);
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
    this.#paths.delete(path);
    if (this.#selected === path) this.#selected = [...this.#paths].pop();
  }

  maintain(now: number): string | undefined {
    if (now - this.#lastValidFromClient > this.opts.consentTimeoutMs) return "client consent expired";
    if (this.#transactions.size > 0) {
      for (const [k, v] of this.#transactions) {
        if (now - v.at > TRANSACTION_TTL_MS) this.#transactions.delete(k);
      }
    }
    return undefined;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#targets) t.close();
    for (const p of this.#paths) p.close();
    this.#paths.clear();
    this.opts.onClose(this, reason);
  }
}
