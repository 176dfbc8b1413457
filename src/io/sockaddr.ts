// struct sockaddr_in and sockaddr_in6 (Linux, x86_64 layout) for the FFI backend: written for sends
// and binds, read for receives. Peers read from the kernel are cached by value (IPv4 by number), so the
// receive path of a known peer allocates nothing.
import {
  type Family,
  formatIp,
  ipv4Key,
  parseIp,
  type PeerAddress,
  peerFromBytes,
  peerFromIpv4,
} from "./address.ts";

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

/** Reads the peer at `offset`; undefined for a family that is neither. */
export class PeerReader {
  readonly #v4 = new Map<number, PeerAddress>();
  readonly #v6 = new Map<string, PeerAddress>();
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
    const bytes = new Uint8Array(view.buffer, view.byteOffset + offset + 8, 16);
    const k = `${formatIp(bytes)}|${port}`;
    let p = this.#v6.get(k);
    if (p === undefined) {
      p = peerFromBytes(bytes.slice(), port);
      if (this.#v6.size >= this.cacheSize) this.#v6.clear();
      this.#v6.set(k, p);
    }
    return p;
  }

  #ipv4(ip: number, port: number): PeerAddress {
    const k = ipv4Key(ip, port);
    let p = this.#v4.get(k);
    if (p === undefined) {
      p = peerFromIpv4(ip, port);
      if (this.#v4.size >= this.cacheSize) this.#v4.clear();
      this.#v4.set(k, p);
    }
    return p;
  }
}
