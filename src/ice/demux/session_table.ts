// The session table of one shard: every session signalling has negotiated (dormant until claimed, live
// once this shard owns it), found by the keys the data plane meets: a client-facing ufrag in a check's
// USERNAME, the session id in control messages, a Janus address on the shared upstream socket. Entries
// change only on events (open, update, claim, close, end), never on a packet alone.
import type { AddressKey, PeerAddress } from "../../io/address.ts";
import type { MediaSession } from "../session/media_session.ts";
import { checkPasswords, type SessionSpec } from "../negotiation/spec.ts";
import { upstreamConflicts } from "../../telemetry/catalog.ts";
import { log } from "../../telemetry/log.ts";

export interface SessionEntry {
  spec: SessionSpec;
  /** Client-facing ufrag -> its password, encoded once (what a claiming check must be signed with). */
  keys: Map<string, Uint8Array>;
  /** The live session, once this shard has claimed it. */
  session?: MediaSession;
}

export class SessionTable {
  readonly #byUfrag = new Map<string, SessionEntry>();
  readonly #byId = new Map<string, SessionEntry>();
  readonly #byUpstream = new Map<AddressKey, { peer: PeerAddress; session: MediaSession }>();
  readonly #upstreamOf = new WeakMap<MediaSession, Set<AddressKey>>();
  #live = 0;

  /** Sessions negotiated and known here, claimed or not. */
  get size(): number {
    return this.#byId.size;
  }

  /** Sessions this shard owns. */
  get liveCount(): number {
    return this.#live;
  }

  get upstreamCount(): number {
    return this.#byUpstream.size;
  }

  byUfrag(ufrag: string): SessionEntry | undefined {
    return this.#byUfrag.get(ufrag);
  }

  byId(id: string): SessionEntry | undefined {
    return this.#byId.get(id);
  }

  byUpstream(addr: PeerAddress): MediaSession | undefined {
    return this.#byUpstream.get(addr.key)?.session;
  }

  *live(): IterableIterator<MediaSession> {
    for (const e of this.#byId.values()) if (e.session) yield e.session;
  }

  entries(): IterableIterator<SessionEntry> {
    return this.#byId.values();
  }

  /** A new spec; false when its id or a ufrag is already here. */
  open(spec: SessionSpec): boolean {
    if (this.#byId.has(spec.id)) return false;
    const keys = new Map(checkPasswords(spec).map(([u, pwd]) => [u, new TextEncoder().encode(pwd)]));
    if ([...keys.keys()].some((u) => this.#byUfrag.has(u))) return false;
    const e: SessionEntry = { spec, keys };
    this.#byId.set(spec.id, e);
    for (const u of keys.keys()) this.#byUfrag.set(u, e);
    return true;
  }

  /** The spec's credentials changed (an update already applied to it): index the new ufrags. */
  rekey(e: SessionEntry): void {
    const wanted = new Map(checkPasswords(e.spec).map(([u, pwd]) => [u, new TextEncoder().encode(pwd)]));
    for (const u of e.keys.keys()) if (!wanted.has(u) && this.#byUfrag.get(u) === e) this.#byUfrag.delete(u);
    for (const u of wanted.keys()) if (!this.#byUfrag.has(u)) this.#byUfrag.set(u, e);
    e.keys = wanted;
  }

  /** A ufrag of the entry stopped working (an ICE restart completed). */
  retire(e: SessionEntry, ufrag: string): void {
    e.keys.delete(ufrag);
    if (this.#byUfrag.get(ufrag) === e) this.#byUfrag.delete(ufrag);
  }

  goLive(e: SessionEntry, s: MediaSession): void {
    e.session = s;
    this.#live++;
  }

  /** The live session closed; the entry stays when it was closed from here (the spec ends separately). */
  closed(e: SessionEntry): void {
    if (e.session) this.#live--;
    const s = e.session;
    e.session = undefined;
    if (!s) return;
    for (const addr of this.#upstreamOf.get(s) ?? []) {
      if (this.#byUpstream.get(addr)?.session === s) this.#byUpstream.delete(addr);
    }
    this.#upstreamOf.delete(s);
  }

  /** Forgets the entry entirely (its spec ended). */
  remove(e: SessionEntry): void {
    if (this.#byId.get(e.spec.id) === e) this.#byId.delete(e.spec.id);
    for (const u of e.keys.keys()) if (this.#byUfrag.get(u) === e) this.#byUfrag.delete(u);
  }

  /** Routes packets from a Janus address on the shared upstream socket to a session. Refused (false)
   * when another live session already owns the address: never another client's data. */
  routeUpstream(addr: PeerAddress, s: MediaSession): boolean {
    const other = this.#byUpstream.get(addr.key)?.session;
    if (other && other !== s) {
      upstreamConflicts.inc();
      log("warn", "upstream_address_conflict", { addr: addr.text, owner: other.id, refused: s.id });
      return false;
    }
    this.#byUpstream.set(addr.key, { peer: addr, session: s });
    let set = this.#upstreamOf.get(s);
    if (!set) this.#upstreamOf.set(s, set = new Set());
    set.add(addr.key);
    return true;
  }

  /** True when every address is free on the shared upstream socket. */
  canShareUpstream(addrs: PeerAddress[]): boolean {
    return addrs.every((a) => !this.#byUpstream.has(a.key));
  }

  /** Janus addresses routed on the shared upstream socket (tests, status). */
  upstreamAddresses(): PeerAddress[] {
    return [...this.#byUpstream.values()].map((v) => v.peer);
  }
}
