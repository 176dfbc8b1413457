// STUN message codec (RFC 8489, RFC 5389): parse, build, MESSAGE-INTEGRITY, FINGERPRINT.
// Pure: no I/O. Every malformed input raises StunError and nothing else.
import { crc32 } from "./crc32.ts";
import { hmacSha1Into, SHA1_LENGTH } from "./hmac_sha1.ts";
import { formatIp, parseIp } from "../io/address.ts";

export class StunError extends Error {
  override name = "StunError";
}

export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_LENGTH = 20;

/** Method and class bits (RFC 8489 §5). Only Binding is used by ICE. */
export const BINDING_REQUEST = 0x0001;
export const BINDING_INDICATION = 0x0011;
export const BINDING_SUCCESS = 0x0101;
export const BINDING_ERROR = 0x0111;

export const Attr = {
  MAPPED_ADDRESS: 0x0001,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  XOR_MAPPED_ADDRESS: 0x0020,
  PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
} as const;

const FINGERPRINT_XOR = 0x5354554e; // RFC 8489 §14.7
const MI_LENGTH = SHA1_LENGTH;

export interface StunAttribute {
  readonly type: number;
  /** Offset of the attribute header in `raw`. */
  readonly offset: number;
  readonly length: number;
}

export interface StunMessage {
  readonly type: number;
  readonly transactionId: Uint8Array;
  readonly attributes: readonly StunAttribute[];
  /** The whole message, exactly as received (a view, not a copy). */
  readonly raw: Uint8Array;
}

/** RFC 7983 §7 first-byte demultiplexing of packets sharing one 5-tuple. */
export type PacketKind = "stun" | "dtls" | "rtp" | "other";
export function classifyPacket(firstByte: number): PacketKind {
  if (firstByte <= 3) return "stun";
  if (firstByte >= 20 && firstByte <= 63) return "dtls";
  if (firstByte >= 128 && firstByte <= 191) return "rtp";
  return "other";
}

/** Cheap pre-check: could this datagram be a STUN message (header shape and magic cookie)? */
export function looksLikeStun(data: Uint8Array): boolean {
  return data.length >= HEADER_LENGTH && data[0] <= 3 && data[4] === 0x21 && data[5] === 0x12 &&
    data[6] === 0xa4 && data[7] === 0x42 && (data[3] & 3) === 0;
}

export function parseStun(data: Uint8Array): StunMessage {
  if (data.length < HEADER_LENGTH) {
    throw new StunError(`message shorter than the ${HEADER_LENGTH}-byte header`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const type = view.getUint16(0);
  if (type & 0xc000) throw new StunError("the two most significant bits are not zero");
  const length = view.getUint16(2);
  if (length % 4 !== 0) throw new StunError("message length is not a multiple of 4");
  if (view.getUint32(4) !== MAGIC_COOKIE) throw new StunError("no magic cookie");
  if (HEADER_LENGTH + length > data.length) throw new StunError("message truncated");
  const raw = data.subarray(0, HEADER_LENGTH + length);
  const attributes: StunAttribute[] = [];
  let offset = HEADER_LENGTH;
  while (offset < raw.length) {
    if (offset + 4 > raw.length) throw new StunError("attribute header truncated");
    const attrType = view.getUint16(offset);
    const attrLength = view.getUint16(offset + 2);
    if (offset + 4 + attrLength > raw.length) {
      throw new StunError(`attribute 0x${attrType.toString(16)} truncated`);
    }
    attributes.push({ type: attrType, offset, length: attrLength });
    offset += 4 + ((attrLength + 3) & ~3);
  }
  return { type, transactionId: raw.subarray(8, 20), attributes, raw };
}

/** The value of the first attribute of a type. Per RFC 8489 §14.5, attributes after MESSAGE-INTEGRITY
 * (other than FINGERPRINT) are ignored. */
export function getAttribute(msg: StunMessage, type: number): Uint8Array | undefined {
  for (const a of msg.attributes) {
    if (a.type === type) return msg.raw.subarray(a.offset + 4, a.offset + 4 + a.length);
    if (a.type === Attr.MESSAGE_INTEGRITY && type !== Attr.FINGERPRINT) return undefined;
  }
  return undefined;
}

export function hasAttribute(msg: StunMessage, type: number): boolean {
  return getAttribute(msg, type) !== undefined;
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: false });
const utf8Encoder = new TextEncoder();

export function getUsername(msg: StunMessage): string | undefined {
  const value = getAttribute(msg, Attr.USERNAME);
  return value === undefined ? undefined : utf8Decoder.decode(value);
}

export function getPriority(msg: StunMessage): number | undefined {
  const v = getAttribute(msg, Attr.PRIORITY);
  if (v === undefined) return undefined;
  if (v.length !== 4) throw new StunError("PRIORITY is not 4 bytes");
  return ((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0;
}

/** ICE-CONTROLLING / ICE-CONTROLLED tie-breaker (RFC 8445 §7.1.3), as a bigint. */
export function getTieBreaker(msg: StunMessage, type: number): bigint | undefined {
  const v = getAttribute(msg, type);
  if (v === undefined) return undefined;
  if (v.length !== 8) throw new StunError("ICE role attribute is not 8 bytes");
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0);
}

export function getErrorCode(msg: StunMessage): number | undefined {
  const v = getAttribute(msg, Attr.ERROR_CODE);
  if (v === undefined) return undefined;
  if (v.length < 4) throw new StunError("ERROR-CODE shorter than 4 bytes");
  return (v[2] & 7) * 100 + v[3];
}

export interface TransportAddress {
  readonly host: string;
  readonly port: number;
}

/** XOR-MAPPED-ADDRESS (RFC 8489 §14.2), IPv4 and IPv6. */
export function getXorMappedAddress(msg: StunMessage): TransportAddress | undefined {
  const v = getAttribute(msg, Attr.XOR_MAPPED_ADDRESS);
  if (v === undefined) return undefined;
  if (v.length < 8) throw new StunError("XOR-MAPPED-ADDRESS too short");
  const family = v[1];
  const port = ((v[2] << 8) | v[3]) ^ (MAGIC_COOKIE >>> 16);
  const mask = msg.raw.subarray(4, 20); // cookie + transaction id
  if (family === 1) {
    if (v.length !== 8) throw new StunError("XOR-MAPPED-ADDRESS IPv4 is not 8 bytes");
    return { host: `${v[4] ^ mask[0]}.${v[5] ^ mask[1]}.${v[6] ^ mask[2]}.${v[7] ^ mask[3]}`, port };
  }
  if (family === 2) {
    if (v.length !== 20) throw new StunError("XOR-MAPPED-ADDRESS IPv6 is not 20 bytes");
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = v[4 + i] ^ mask[i];
    return { host: formatIp(bytes), port };
  }
  throw new StunError(`unknown address family ${family}`);
}

export function encodeXorAddress(addr: TransportAddress, transactionId: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint32(0, MAGIC_COOKIE);
  mask.set(transactionId, 4);
  const xport = addr.port ^ (MAGIC_COOKIE >>> 16);
  const ip = parseIp(addr.host)?.bytes;
  if (ip === undefined) throw new StunError(`not an IP address: ${addr.host}`);
  const out = new Uint8Array(4 + ip.length);
  out[1] = ip.length === 4 ? 1 : 2;
  out[2] = xport >> 8;
  out[3] = xport & 0xff;
  for (let i = 0; i < ip.length; i++) out[4 + i] = ip[i] ^ mask[i];
  return out;
}

/** Where verifyIntegrity computes the expected MESSAGE-INTEGRITY value. */
const expectedIntegrity = new Uint8Array(MI_LENGTH);

/** MESSAGE-INTEGRITY check (RFC 8489 §14.5): HMAC-SHA1 over the message up to the attribute, with the
 * header length adjusted to end just after it. The short-term key is the password itself (§9.1.1). */
export function verifyIntegrity(msg: StunMessage, key: Uint8Array): boolean {
  const mi = msg.attributes.find((a) => a.type === Attr.MESSAGE_INTEGRITY);
  if (mi === undefined || mi.length !== MI_LENGTH) return false;
  const header = msg.raw.slice(0, HEADER_LENGTH);
  const adjusted = mi.offset + 4 + MI_LENGTH - HEADER_LENGTH;
  header[2] = adjusted >> 8;
  header[3] = adjusted & 0xff;
  hmacSha1Into(key, [header, msg.raw.subarray(HEADER_LENGTH, mi.offset)], expectedIntegrity);
  // Compared in constant time: every byte is looked at whatever the first difference.
  let diff = 0;
  for (let i = 0; i < MI_LENGTH; i++) diff |= expectedIntegrity[i] ^ msg.raw[mi.offset + 4 + i];
  return diff === 0;
}

/** FINGERPRINT check (RFC 8489 §14.7): must be the last attribute, CRC-32 of everything before it. */
export function verifyFingerprint(msg: StunMessage): boolean {
  const last = msg.attributes[msg.attributes.length - 1];
  if (last === undefined || last.type !== Attr.FINGERPRINT || last.length !== 4) return false;
  const want = (crc32(msg.raw.subarray(0, last.offset)) ^ FINGERPRINT_XOR) >>> 0;
  const v = msg.raw;
  const got = ((v[last.offset + 4] << 24) | (v[last.offset + 5] << 16) | (v[last.offset + 6] << 8) |
    v[last.offset + 7]) >>> 0;
  return want === got;
}

export interface BuildOptions {
  type: number;
  transactionId: Uint8Array;
  attributes: ReadonlyArray<readonly [number, Uint8Array]>;
  /** Appends MESSAGE-INTEGRITY computed with this key. */
  integrityKey?: Uint8Array;
  /** Appends FINGERPRINT (after MESSAGE-INTEGRITY). */
  fingerprint?: boolean;
  /** Padding content is arbitrary (RFC 8489 §14); zero unless told. */
  paddingByte?: number;
}

export function buildStun(opts: BuildOptions): Uint8Array {
  if (opts.transactionId.length !== 12) throw new StunError("transaction id must be 12 bytes");
  let size = HEADER_LENGTH;
  for (const [, value] of opts.attributes) size += 4 + ((value.length + 3) & ~3);
  if (opts.integrityKey) size += 4 + MI_LENGTH;
  if (opts.fingerprint) size += 8;
  if (size - HEADER_LENGTH > 0xffff) throw new StunError("message too long");
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint16(0, opts.type);
  view.setUint32(4, MAGIC_COOKIE);
  out.set(opts.transactionId, 8);
  let offset = HEADER_LENGTH;
  for (const [type, value] of opts.attributes) {
    view.setUint16(offset, type);
    view.setUint16(offset + 2, value.length);
    out.set(value, offset + 4);
    const padded = (value.length + 3) & ~3;
    if (opts.paddingByte) out.fill(opts.paddingByte, offset + 4 + value.length, offset + 4 + padded);
    offset += 4 + padded;
  }
  if (opts.integrityKey) {
    view.setUint16(2, offset + 4 + MI_LENGTH - HEADER_LENGTH);
    view.setUint16(offset, Attr.MESSAGE_INTEGRITY);
    view.setUint16(offset + 2, MI_LENGTH);
    hmacSha1Into(opts.integrityKey, [out.subarray(0, offset)], out, offset + 4);
    offset += 4 + MI_LENGTH;
  }
  if (opts.fingerprint) {
    view.setUint16(2, offset + 8 - HEADER_LENGTH);
    view.setUint16(offset, Attr.FINGERPRINT);
    view.setUint16(offset + 2, 4);
    view.setUint32(offset + 4, (crc32(out.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0);
    offset += 8;
  }
  view.setUint16(2, offset - HEADER_LENGTH);
  return out;
}

/** Attributes as [type, value] pairs, excluding the integrity and fingerprint ones, for re-signing a
 * relayed message with replaced values. */
export function plainAttributes(msg: StunMessage): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  for (const a of msg.attributes) {
    if (a.type === Attr.MESSAGE_INTEGRITY || a.type === Attr.MESSAGE_INTEGRITY_SHA256) break;
    if (a.type === Attr.FINGERPRINT) continue;
    out.push([a.type, msg.raw.subarray(a.offset + 4, a.offset + 4 + a.length)]);
  }
  return out;
}

export function encodeString(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

export function encodeUint32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

export function encodeUint64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n);
  return out;
}

/** ERROR-CODE value (RFC 8489 §14.8). */
export function encodeErrorCode(code: number, reason: string): Uint8Array {
  const text = utf8Encoder.encode(reason);
  const out = new Uint8Array(4 + text.length);
  out[2] = Math.floor(code / 100);
  out[3] = code % 100;
  out.set(text, 4);
  return out;
}

/** Binding indications carrying only a FINGERPRINT (the keepalive of RFC 8445 §11), each with a fresh
 * random transaction ID (RFC 8489 §6), written into one buffer of this object's: next() returns it,
 * valid until the next call, for a socket to send at once (sockets copy what they send). Keeping 10,000
 * idle legs alive is 600 of these a second; built with buildStun each was ~650 bytes of garbage. */
export class KeepaliveIndications {
  readonly #out = new Uint8Array(HEADER_LENGTH + 8);
  readonly #transactionId = this.#out.subarray(8, HEADER_LENGTH);
  readonly #view = new DataView(this.#out.buffer);

  constructor() {
    const v = this.#view;
    v.setUint16(0, BINDING_INDICATION);
    v.setUint16(2, 8);
    v.setUint32(4, MAGIC_COOKIE);
    v.setUint16(HEADER_LENGTH, Attr.FINGERPRINT);
    v.setUint16(HEADER_LENGTH + 2, 4);
  }

  next(): Uint8Array {
    crypto.getRandomValues(this.#transactionId);
    this.#view.setUint32(HEADER_LENGTH + 4, (crc32(this.#out, HEADER_LENGTH) ^ FINGERPRINT_XOR) >>> 0);
    return this.#out;
  }
}

export function randomTransactionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12));
}

/** Key for matching a response to its request: the transaction id as a hex-free latin1 string. */
export function transactionKey(transactionId: Uint8Array): string {
  return String.fromCharCode(...transactionId);
}
