// The client side of a session, the same for the half and the full proxy: the client's transport
// addresses (paths), which of them media goes to, and consent.
// - A path is bound by an authentic check from it (the client knows the password xRTC gave it). Data
//   from it may go to Janus at once.
// - Media goes to a path only after it has proved it wants it: xRTC sends its own Binding request there,
//   signed with the client's password, and the path must answer authentically. A check with a forged
//   source address cannot complete that round trip, so it cannot redirect media to a third party.
// - Consent is per path (RFC 7675): a path that has sent no authentic check for the consent timeout gets
//   no more media and is dropped; the session ends when no path is left.
// - Media follows the most recently nominated validated path (RFC 8445 §8.1.1); before any nomination,
//   the most recently checked validated one.
import { type PeerAddress, peerAddress } from "../../io/address.ts";
import type { StunMessage } from "../../stun/message.ts";
import { randomTransactionId, transactionKey } from "../../stun/message.ts";
import { drop, pathValidations } from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";
import type { IceCredentials } from "../credentials.ts";
import { TIMING } from "../timing.ts";
import type { ClientPath } from "./client_path.ts";
import type { LiveState } from "./media_session.ts";
import { authenticResponse, validationCheck } from "./client_check.ts";

interface PathState {
  path: ClientPath;
  lastCheckAt: number;
  nominatedAt: number;
  validated: boolean;
  /** A validation in flight: its transaction, transmissions so far, and when the next is due. */
  validation?: { tid: Uint8Array; key: string; attempts: number; nextAt: number };
  failedAt?: number;
}

export interface PathView {
  key: string;
  transport: "udp" | "tcp";
  remote: string;
  validated: boolean;
  selected: boolean;
  consentAgeMs: number;
}

export interface ClientPathsOptions {
  /** The session's id, for logs. */
  id: string;
  /** xRTC's client-facing ufrag, and the client's credentials when known. */
  localUfrag: string;
  client?: IceCredentials;
  /** xRTC's tie-breaker in its own checks (it is controlled towards clients). */
  tieBreaker: bigint;
  consentTimeoutMs: number;
  now: () => number;
  /** An address was validated or selected, or went away (the live state to keep on disk changed). */
  onChange?: () => void;
}

export class ClientPaths {
  readonly #paths = new Map<string, PathState>();
  readonly #byTransaction = new Map<string, PathState>();
  #selected?: PathState;
  #localUfrag: string;
  #client?: { ufrag: string; key: Uint8Array };
  /** Packets for the client held while its first path is validated (one round trip). */
  #waiting: Uint8Array[] = [];
  /** The last authentic check from any path: the session's own consent. */
  #lastCheckAt: number;

  readonly id: string;
  readonly tieBreaker: bigint;
  readonly consentTimeoutMs: number;
  readonly now: () => number;
  readonly #onChange?: () => void;

  constructor(o: ClientPathsOptions) {
    this.id = o.id;
    this.#onChange = o.onChange;
    this.tieBreaker = o.tieBreaker;
    this.consentTimeoutMs = o.consentTimeoutMs;
    this.now = o.now;
    this.#localUfrag = o.localUfrag;
    this.#lastCheckAt = o.now();
    this.setCredentials(o.localUfrag, o.client);
  }

  get selected(): ClientPath | undefined {
    return this.#selected?.path;
  }

  get size(): number {
    return this.#paths.size;
  }

  /** True while a validation check is in flight (it needs retransmitting). */
  get validating(): boolean {
    return this.#byTransaction.size > 0;
  }

  has(path: ClientPath): boolean {
    return this.#paths.get(path.key)?.path === path;
  }

  /** The ufrag xRTC signs its checks as, and the client's credentials (they change with an ICE restart).
   * Paths waiting for credentials start their validation now. */
  setCredentials(localUfrag: string, client: IceCredentials | undefined): void {
    this.#localUfrag = localUfrag;
    this.#client = client && { ufrag: client.ufrag, key: new TextEncoder().encode(client.pwd) };
    const now = this.now();
    for (const st of this.#paths.values()) if (!st.validated) this.#validate(st, now);
  }

  /** An authentic check arrived from `path`. */
  onAuthenticCheck(path: ClientPath, nominate: boolean): void {
    const now = this.now();
    let st = this.#paths.get(path.key);
    if (!st) {
      if (this.#paths.size >= TIMING.maxPathsPerSession) this.#evictOne();
      st = { path, lastCheckAt: now, nominatedAt: 0, validated: false };
      this.#paths.set(path.key, st);
      log("info", "client_path_bound", { session: this.id, path: path.key });
    }
    st.lastCheckAt = this.#lastCheckAt = now;
    if (nominate) st.nominatedAt = now;
    if (!st.validated) this.#validate(st, now);
    this.#reselect();
  }

  /** A STUN response from a client path: true when it answered one of xRTC's validation checks. */
  onResponse(msg: StunMessage, path: ClientPath): boolean {
    const key = transactionKey(msg.transactionId);
    const st = this.#byTransaction.get(key);
    if (!st) return false;
    if (
      st.path.remote.key !== path.remote.key || !this.#client || !authenticResponse(msg, this.#client.key)
    ) {
      drop.stun_unexpected.inc();
      return true;
    }
    this.#byTransaction.delete(key);
    st.path.awaitResponse(key, false);
    st.validation = undefined;
    if (!st.validated) {
      st.validated = true;
      st.path.adopt();
      pathValidations.inc({ outcome: "validated" });
      log("info", "client_path_validated", { session: this.id, path: st.path.key });
      this.#reselect();
      this.#onChange?.();
    }
    return true;
  }

  /** Media for the client: to the selected path, held briefly while a first path validates. */
  send(data: Uint8Array): boolean {
    const s = this.#selected;
    if (s) {
      s.path.send(data);
      return true;
    }
    if (this.#byTransaction.size > 0 && this.#waiting.length < TIMING.toClientQueueLimit) {
      this.#waiting.push(data.slice());
      return false;
    }
    drop.no_client_path.inc();
    return false;
  }

  /** Retransmits validation checks that are due; gives up on those that went unanswered. */
  tick(now: number): void {
    if (this.#byTransaction.size === 0) return;
    for (const st of this.#paths.values()) {
      const v = st.validation;
      if (!v || now < v.nextAt) continue;
      if (v.attempts >= TIMING.validationAttempts) {
        this.#byTransaction.delete(v.key);
        st.path.awaitResponse(v.key, false);
        st.validation = undefined;
        st.failedAt = now;
        pathValidations.inc({ outcome: "failed" });
        log("info", "client_path_validation_failed", { session: this.id, path: st.path.key });
        if (this.#byTransaction.size === 0 && !this.#selected) this.#waiting = [];
        continue;
      }
      this.#transmit(st, v, now);
    }
  }

  /** Consent per path (RFC 7675): paths silent for the consent timeout are dropped. Returns true when the
   * session has lost consent: no authentic check from any path for the consent timeout. */
  maintain(now: number): boolean {
    for (const st of this.#paths.values()) { // removing the entry being visited is safe in a Map
      if (now - st.lastCheckAt > this.consentTimeoutMs) {
        log("info", "client_path_consent_expired", { session: this.id, path: st.path.key });
        this.#remove(st);
        st.path.close();
      }
    }
    return now - this.#lastCheckAt > this.consentTimeoutMs;
  }

  /** When maintain() may next find a path, or the session, past its consent (a check since only makes
   * that later). */
  maintenanceDueAt(): number {
    let oldest = this.#lastCheckAt;
    for (const st of this.#paths.values()) if (st.lastCheckAt < oldest) oldest = st.lastCheckAt;
    return oldest + this.consentTimeoutMs + 1;
  }

  /** A path went away (TCP closed, tuple taken by another session). */
  closed(path: ClientPath): void {
    const st = this.#paths.get(path.key);
    if (st?.path === path) this.#remove(st);
  }

  closeAll(): void {
    for (const st of [...this.#paths.values()]) {
      this.#remove(st);
      st.path.close();
    }
    this.#waiting = [];
  }

  /** A path of the session before a restart of xRTC: it answered xRTC's check then, so it is trusted
   * as it was (validated, selected), with fresh consent. */
  restore(path: ClientPath, validated: boolean, selected: boolean): void {
    const now = this.now();
    const st: PathState = { path, lastCheckAt: now, nominatedAt: selected ? now : 0, validated };
    this.#paths.set(path.key, st);
    if (validated) path.adopt();
    this.#reselect();
  }

  /** The client addresses of a live state recorded before a restart, bound again on their ports
   * (`bind` gives the path of an address on a port of this shard, if the port is still there). */
  restoreAll(
    paths: LiveState["paths"],
    bind: (port: string, from: PeerAddress) => ClientPath | undefined,
  ): void {
    for (const p of paths) {
      const from = peerAddress(p.host, p.remotePort);
      const path = from && bind(p.port, from);
      if (path) this.restore(path, p.validated, p.selected);
    }
  }

  /** The UDP paths, for the live state kept on disk (a TCP connection cannot outlive the process). */
  udpPaths(): Array<
    { port: string; host: string; remotePort: number; validated: boolean; selected: boolean }
  > {
    return [...this.#paths.values()].filter((st) => st.path.transport === "udp").map((st) => ({
      port: st.path.port,
      host: st.path.remote.host,
      remotePort: st.path.remote.port,
      validated: st.validated,
      selected: st === this.#selected,
    }));
  }

  view(now: number): PathView[] {
    return [...this.#paths.values()].map((st) => ({
      key: st.path.key,
      transport: st.path.transport,
      remote: st.path.remote.text,
      validated: st.validated,
      selected: st === this.#selected,
      consentAgeMs: now - st.lastCheckAt,
    }));
  }

  #validate(st: PathState, now: number): void {
    if (st.validation || !this.#client) return;
    if (st.failedAt !== undefined && now - st.failedAt < TIMING.validationBackoffMs) return;
    const tid = randomTransactionId();
    st.validation = { tid, key: transactionKey(tid), attempts: 0, nextAt: now };
    this.#byTransaction.set(st.validation.key, st);
    st.path.awaitResponse(st.validation.key, true);
    this.#transmit(st, st.validation, now);
  }

  #transmit(st: PathState, v: NonNullable<PathState["validation"]>, now: number): void {
    const c = this.#client;
    if (!c) return;
    v.attempts++;
    v.nextAt = now + TIMING.validationRetransmitMs * v.attempts;
    st.path.send(validationCheck(c.ufrag, this.#localUfrag, c.key, this.tieBreaker, v.tid));
  }

  #remove(st: PathState): void {
    this.#paths.delete(st.path.key);
    if (st.validation) {
      this.#byTransaction.delete(st.validation.key);
      st.path.awaitResponse(st.validation.key, false);
    }
    if (this.#selected === st) this.#selected = undefined;
    this.#reselect();
    // After the path is gone: the live state written to disk must not bring it back at a restart.
    this.#onChange?.();
  }

  /** Room for a new path: the one silent for longest goes, never the selected one. */
  #evictOne(): void {
    let oldest: PathState | undefined;
    for (const st of this.#paths.values()) {
      if (st !== this.#selected && (!oldest || st.lastCheckAt < oldest.lastCheckAt)) oldest = st;
    }
    if (oldest) {
      this.#remove(oldest);
      oldest.path.close();
    }
  }

  #reselect(): void {
    let best: PathState | undefined;
    for (const st of this.#paths.values()) {
      if (!st.validated) continue;
      if (
        !best || st.nominatedAt > best.nominatedAt ||
        (st.nominatedAt === best.nominatedAt && st.lastCheckAt > best.lastCheckAt)
      ) best = st;
    }
    if (best === this.#selected) return;
    this.#selected = best;
    this.#onChange?.();
    if (!best) return;
    log("info", "client_path_selected", { session: this.id, path: best.path.key });
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const p of waiting) best.path.send(p);
  }
}
