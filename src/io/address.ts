// IP addresses, in one place: parsing, text per RFC 5952, v4-mapped canonicalisation (RFC 4291
// §2.5.5.2: a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d, which are the same peers as
// a.b.c.d), host:port, the any-address of a family, and PeerAddress: a transport address compared by
// value, never by object identity.

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(text: string): Uint8Array | undefined {
  const m = V4.exec(text);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x, i) => x > 255 || (m[i + 1].length > 1 && m[i + 1][0] === "0"))) return undefined;
  return Uint8Array.from(b);
}

/** Parses an IPv4 dotted quad or IPv6 text (brackets and a zone allowed). A v4-mapped IPv6 address is
 * returned as the IPv4 address it maps. Undefined when the text is not an IP address. */
export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseV4(text);
  if (v4) return { family: 4, bytes: v4 };
  if (!text.includes(":")) return undefined;
  let h = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const zone = h.indexOf("%");
  if (zone >= 0) h = h.slice(0, zone);
  // A trailing dotted quad stands for the last two groups.
  let tailV4: Uint8Array | undefined;
  const lastColon = h.lastIndexOf(":");
  if (h.slice(lastColon + 1).includes(".")) {
    tailV4 = parseV4(h.slice(lastColon + 1));
    if (!tailV4) return undefined;
    h = h.slice(0, lastColon + 1) + "0:0";
  }
  const halves = h.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return undefined;
    const g = parseInt(groups[i], 16);
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  }
  if (tailV4) bytes.set(tailV4, 12);
  if (isV4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
  return { family: 6, bytes };
}

/** ::ffff:0:0/96 (RFC 4291 §2.5.5.2). */
export function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

export function formatIpv4Number(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Canonical text: dotted quad, or RFC 5952 (lower case, longest zero run of 2+ groups as "::", the
 * first such run on a tie; v4-mapped addresses as their IPv4 address). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (isV4Mapped(bytes)) return formatIp(bytes.subarray(12));
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an IP address, or undefined when `text` is not one. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip && formatIp(ip.bytes);
}

export function familyOf(text: string): Family | undefined {
  return parseIp(text)?.family;
}

/** The address that binds every interface of a family. */
export function anyAddress(family: Family): string {
  return family === 4 ? "0.0.0.0" : "::";
}

export const LOOPBACK_V4 = "127.0.0.1";

/** "host:port" with brackets around an IPv6 host (RFC 3986 §3.2.2). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "ip:port", "name:port", ":port" (host "") or "[v6]:port". Port 1-65535 unless `allowZero`. */
export function parseHostPort(text: string, allowZero = false): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.%\w]+)\]|([^:\s\[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (port < 1 && !allowZero)) return undefined;
  if (m[1] !== undefined) {
    const ip = parseIp(m[1]);
    if (!ip || ip.family !== 6) return undefined;
    return { host: formatIp(ip.bytes), port };
  }
  const host = m[2] ?? "";
  return { host: canonicalIp(host) ?? host, port };
}

/** A value key for a transport address: equal keys for equal addresses, whatever object carries them.
 * Its canonical text ("host:port", "[host]:port"): a string the address already holds, so a lookup on
 * the packet path loads a pointer, where a number key past 2^30 (IPv4 and port in a double) made V8
 * allocate a heap number per lookup. */
export type AddressKey = string;

/** A remote transport address. Compare with `key`, never by identity: backends may hand out several
 * objects for one address. */
export interface PeerAddress {
  readonly family: Family;
  /** Canonical IP text. */
  readonly host: string;
  readonly port: number;
  readonly key: AddressKey;
  /** "host:port" for logs. */
  readonly text: string;
  /** IPv4 only: the address as a 32-bit number, so a send writes its sockaddr without parsing text. */
  readonly ipv4?: number;
}

export function ipv4Number(bytes: Uint8Array): number {
  return ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
}

export function peerFromIpv4(ip: number, port: number): PeerAddress {
  const host = formatIpv4Number(ip);
  const text = `${host}:${port}`;
  return { family: 4, host, port, key: text, text, ipv4: ip };
}

export function peerFromBytes(bytes: Uint8Array, port: number): PeerAddress {
  if (bytes.length === 4) return peerFromIpv4(ipv4Number(bytes), port);
  if (isV4Mapped(bytes)) return peerFromIpv4(ipv4Number(bytes.subarray(12)), port);
  const host = formatIp(bytes);
  const text = `[${host}]:${port}`;
  return { family: 6, host, port, key: text, text };
}

/** The PeerAddress of an IP text and port; undefined when `host` is not an IP address. */
export function peerAddress(host: string, port: number): PeerAddress | undefined {
  const ip = parseIp(host);
  return ip && peerFromBytes(ip.bytes, port);
}

/** Like peerAddress, for addresses known to be IPs (from the OS or already validated). */
export function mustPeer(host: string, port: number): PeerAddress {
  const a = peerAddress(host, port);
  if (!a) throw new TypeError(`not an IP address: ${host}`);
  return a;
}

export function sameAddress(a: PeerAddress | undefined, b: PeerAddress | undefined): boolean {
  return a !== undefined && b !== undefined && a.key === b.key;
}

/** CIDR blocks ("198.18.0.0/15", "fd00::/8"), for trusted proxies and allow lists. */
export interface Cidr {
  family: Family;
  bytes: Uint8Array;
  bits: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, bitsText] = text.split("/");
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return undefined;
  return { family: ip.family, bytes: ip.bytes, bits };
}

export function cidrContains(c: Cidr, host: string): boolean {
  const ip = parseIp(host);
  if (!ip || ip.family !== c.family) return false;
  let bits = c.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip.bytes[i] & mask) !== (c.bytes[i] & mask)) return false;
  }
  return true;
}
