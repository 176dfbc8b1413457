// struct sockaddr_in and sockaddr_in6 (Linux, x86_64 layout) for the FFI backend: written for sends
// and binds, read for receives. Peers read from the kernel are cached (PeerReader), so the receive path
// of a known peer allocates nothing.
import { type Family, parseIp, type PeerAddress, peerFromBytes, peerFromIpv4 } from "./address.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCKADDR_IN = 16;
export const SOCKADDR_IN6 = 28;
/** Room for either, aligned. */
export const SOCKADDR_SLOT = 32;

/** Writes `to` at `offset` as the family of the socket it is sent from; returns the sockaddr's length,
 * or 0 when an IPv6 peer cannot be reached from an IPv4 socket. An IPv4 peer on an IPv6 (dual-stack)
 * socket is written v4-mapped (RFC 4291 §2.5.5.2). */
export function writeSockaddr(view: DataView, offset: number, socketFamily: Family, to: PeerAddress): number {
  if (socketFamily === 4) {
    if (to.ipv4 === undefined) return 0;
    view.setUint16(offset, AF_INET, true);
    view.setUint16(offset + 2, to.port, false);
    view.setUint32(offset + 4, to.ipv4, false);
    view.setUint32(offset + 8, 0);
    view.setUint32(offset + 12, 0);
    return SOCKADDR_IN;
  }
  view.setUint16(offset, AF_INET6, true);
  view.setUint16(offset + 2, to.port, false);
  view.setUint32(offset + 4, 0); // flowinfo
  if (to.ipv4 !== undefined) {
    // An IPv4 peer of a dual-stack socket: ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), ten zero bytes first.
    view.setUint32(offset + 8, 0);
    view.setUint32(offset + 12, 0);
    view.setUint32(offset + 16, 0xffff, false);
    view.setUint32(offset + 20, to.ipv4, false);
  } else {
    const bytes = ipv6Bytes(to);
    for (let i = 0; i < 16; i++) view.setUint8(offset + 8 + i, bytes[i]);
  }
  view.setUint32(offset + 24, 0); // scope id
  return SOCKADDR_IN6;
}

const v6BytesCache = new WeakMap<PeerAddress, Uint8Array>();

function ipv6Bytes(a: PeerAddress): Uint8Array {
  let b = v6BytesCache.get(a);
  if (!b) {
    b = parseIp(a.host)?.bytes ?? new Uint8Array(16);
    v6BytesCache.set(a, b);
  }
  return b;
}

/** An IPv6 peer as cached: its address bytes, to check a hash hit against. */
interface V6Entry {
  peer: PeerAddress;
  bytes: Uint8Array;
}

/** Reads the peer at `offset`; undefined for a family that is neither. Peers are cached by a 30-bit hash
 * of address and port, checked against the entry found: a small integer key, where the exact value is a
 * heap number (IPv4: 48 bits) or a string (IPv6) made per lookup, on every datagram. A rare collision
 * only makes a fresh object in place of the other address's (addresses compare by key, not identity). */
export class PeerReader {
  readonly #v4 = new Map<number, PeerAddress>();
  readonly #v6 = new Map<number, V6Entry>();
  constructor(readonly cacheSize = 65_536) {}

  read(view: DataView, offset: number): PeerAddress | undefined {
    const family = view.getUint16(offset, true);
    const port = view.getUint16(offset + 2, false);
    if (family === AF_INET) return this.#ipv4(view.getUint32(offset + 4, false), port);
    if (family !== AF_INET6) return undefined;
    // v4-mapped: the IPv4 peer it is.
    let mapped = view.getUint16(offset + 18, false) === 0xffff;
    for (let i = 8; mapped && i < 18; i += 2) mapped = view.getUint16(offset + i, false) === 0;
    if (mapped) return this.#ipv4(view.getUint32(offset + 20, false), port);
    return this.#ipv6(view, offset + 8, port);
  }

  #ipv4(ip: number, port: number): PeerAddress {
    const h = (Math.imul(ip, HASH_MULTIPLIER) ^ port) & HASH_MASK;
    let p = this.#v4.get(h);
    if (p === undefined || p.ipv4 !== ip || p.port !== port) {
      p = peerFromIpv4(ip, port);
      if (this.#v4.size >= this.cacheSize) this.#v4.clear();
      this.#v4.set(h, p);
    }
    return p;
  }

  /** The 16 address bytes at `at`. */
  #ipv6(view: DataView, at: number, port: number): PeerAddress {
    let h = port;
    for (let i = 0; i < 16; i += 4) h = Math.imul(h ^ view.getUint32(at + i, false), HASH_MULTIPLIER);
    h = (h ^ (h >>> 15)) & HASH_MASK;
    const e = this.#v6.get(h);
    if (e !== undefined && e.peer.port === port && sameBytes(e.bytes, view, at)) return e.peer;
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = view.getUint8(at + i);
    const peer = peerFromBytes(bytes, port);
    v6BytesCache.set(peer, bytes); // a send to it writes these bytes without parsing its text
    if (this.#v6.size >= this.cacheSize) this.#v6.clear();
    this.#v6.set(h, { peer, bytes });
    return peer;
  }
}

/** Fibonacci hashing's odd multiplier (2^32 over the golden ratio), and the small-integer range V8 keeps
 * unboxed (31-bit with pointer compression). */
const HASH_MULTIPLIER = 0x9e3779b1;
const HASH_MASK = 0x3fffffff;

function sameBytes(bytes: Uint8Array, view: DataView, at: number): boolean {
  for (let i = 0; i < 16; i++) if (bytes[i] !== view.getUint8(at + i)) return false;
  return true;
}
