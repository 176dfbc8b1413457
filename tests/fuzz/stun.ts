// STUN codec (src/stun/message.ts): messages built with buildStun from random attributes, some then
// mutated. Bad input may only raise StunError; integrity and fingerprint checks never throw; what was
// built verifies, reads back, and rebuilds to the same bytes.
import {
  Attr,
  BINDING_ERROR,
  BINDING_INDICATION,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeErrorCode,
  encodeString,
  encodeXorAddress,
  getAttribute,
  getErrorCode,
  getPriority,
  getTieBreaker,
  getUsername,
  getXorMappedAddress,
  hasAttribute,
  HEADER_LENGTH,
  looksLikeStun,
  parseStun,
  plainAttributes,
  StunError,
  type StunMessage,
  verifyFingerprint,
  verifyIntegrity,
} from "../../src/stun/message.ts";
import { parseIp } from "../../src/io/address.ts";
import { defineTarget, expect, hex, type Rng, sameBytes, threw } from "./harness.ts";

type Attribute = [type: number, value: Uint8Array];

interface StunCase {
  bytes: Uint8Array;
  /** What buildStun was given. */
  type: number;
  transactionId: Uint8Array;
  attributes: Attribute[];
  integrityKey?: Uint8Array;
  fingerprint: boolean;
  paddingByte: number;
  /** The values the getters must read back (first attribute of each type, when well formed). */
  username?: string;
  xorAddress?: { host: string; port: number };
  /** Names of the mutations applied; empty for a message exactly as built. */
  mutations: string[];
  /** The one byte a lone bit flip changed: integrity and fingerprint must then fail. */
  flippedByte?: number;
}

const ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const NON_ASCII = ["é", "ß", "日本", "😀", "Ω", "\u0000", "ı"];
const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(Attr));

function ipv4Text(rng: Rng): string {
  // 198.18.0.0/15: benchmarking space, never a real peer.
  return `198.${rng.int(18, 19)}.${rng.below(256)}.${rng.below(256)}`;
}

function ipv6Text(rng: Rng): string {
  const groups = [(0xfd00 | rng.below(256)).toString(16)];
  for (let i = 1; i < 8; i++) groups.push(rng.chance(0.3) ? "0" : rng.below(0x10000).toString(16));
  // Sometimes compressed, as people write them.
  const text = groups.join(":");
  return rng.chance(0.5) ? text.replace(/(^|:)0(:0)+(:|$)/, "::") : text;
}

function username(rng: Rng): string {
  const part = () => rng.text(ICE_CHARS, rng.int(1, 24));
  const base = `${part()}:${part()}`;
  return rng.chance(0.15) ? base + rng.pick(NON_ASCII) : base;
}

function unknownType(rng: Rng): number {
  for (;;) {
    const t = rng.chance(0.5) ? rng.below(0x8000) : 0x8000 + rng.below(0x8000);
    if (!KNOWN_TYPES.has(t)) return t;
  }
}

/** One attribute, usually well formed, sometimes of the wrong size for its type. */
function attribute(rng: Rng, c: StunCase): void {
  const wrongSize = rng.chance(0.08);
  const kind = rng.below(9);
  let a: Attribute;
  switch (kind) {
    case 0: {
      if (wrongSize) {
        a = [Attr.USERNAME, rng.bytes(rng.int(0, 40))]; // not necessarily UTF-8
        break;
      }
      const text = username(rng);
      a = [Attr.USERNAME, encodeString(text)];
      if (!c.attributes.some(([t]) => t === Attr.USERNAME)) c.username = text;
      break;
    }
    case 1:
      a = [Attr.PRIORITY, rng.bytes(wrongSize ? rng.pick([0, 3, 5, 8]) : 4)];
      break;
    case 2:
      a = [
        rng.pick([Attr.ICE_CONTROLLING, Attr.ICE_CONTROLLED]),
        rng.bytes(wrongSize ? rng.pick([0, 4, 7, 9]) : 8),
      ];
      break;
    case 3:
      a = [Attr.USE_CANDIDATE, new Uint8Array(0)];
      break;
    case 4: {
      if (wrongSize) {
        const value = rng.bytes(rng.pick([0, 4, 7, 9, 16, 21]));
        if (value.length > 1) value[1] = rng.pick([0, 1, 2, 3]);
        a = [Attr.XOR_MAPPED_ADDRESS, value];
        break;
      }
      const address = { host: rng.chance(0.6) ? ipv4Text(rng) : ipv6Text(rng), port: rng.below(0x10000) };
      a = [Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(address, c.transactionId)];
      if (!c.attributes.some(([t]) => t === Attr.XOR_MAPPED_ADDRESS)) c.xorAddress = address;
      break;
    }
    case 5:
      a = wrongSize
        ? [Attr.ERROR_CODE, rng.bytes(rng.int(0, 3))]
        : [Attr.ERROR_CODE, encodeErrorCode(rng.int(300, 699), rng.text("abcdefgh ", rng.int(0, 30)))];
      break;
    case 6:
      a = [Attr.SOFTWARE, encodeString(`xrtc-fuzz ${rng.text("0123456789.", rng.int(0, 12))}`)];
      break;
    default:
      a = [unknownType(rng), rng.bytes(rng.int(0, 48))];
  }
  c.attributes.push(a);
}

/** Offsets of the attribute headers of a well-formed message (the one buildStun made). */
function attributeOffsets(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = HEADER_LENGTH; o + 4 <= bytes.length;) {
    out.push(o);
    o += 4 + ((((bytes[o + 2] << 8) | bytes[o + 3]) + 3) & ~3);
  }
  return out;
}

function setHeaderLength(bytes: Uint8Array, length: number): void {
  bytes[2] = (length >> 8) & 0xff;
  bytes[3] = length & 0xff;
}

function mutate(rng: Rng, c: StunCase): void {
  let b = c.bytes;
  const builtOffsets = attributeOffsets(b);
  const rounds = rng.weighted([[6, 1], [3, 2], [1, 3]]);
  for (let round = 0; round < rounds; round++) {
    const name = rng.pick([
      "bitFlip",
      "truncate",
      "headerLength",
      "attributeLength",
      "appendGarbage",
      "duplicateAttribute",
      "attributeType",
      "messageType",
      "cookie",
    ]);
    c.mutations.push(name);
    // Attribute headers as built, of those an earlier truncation left in place.
    const offsets = builtOffsets.filter((o) => o + 4 <= b.length);
    switch (name) {
      case "bitFlip": {
        const at = rng.below(b.length);
        b[at] ^= 1 << rng.below(8);
        if (rounds === 1) c.flippedByte = at;
        break;
      }
      case "truncate":
        b = b.slice(0, rng.below(b.length));
        break;
      case "headerLength": {
        const current = (b[2] << 8) | b[3];
        setHeaderLength(b, rng.pick([0, current + 4, current - 4, current + 1, rng.below(0x10000)]));
        break;
      }
      case "attributeLength": {
        if (offsets.length === 0) break;
        const at = rng.pick(offsets);
        if (at + 4 > b.length) break;
        const current = (b[at + 2] << 8) | b[at + 3];
        const length = rng.pick([0, current + 1, current - 1, current + 4, 0xffff, rng.below(0x10000)]);
        b[at + 2] = (length >> 8) & 0xff;
        b[at + 3] = length & 0xff;
        break;
      }
      case "appendGarbage": {
        const garbage = rng.bytes(rng.int(1, 40));
        const grown = new Uint8Array(b.length + garbage.length);
        grown.set(b);
        grown.set(garbage, b.length);
        // Half the time the header claims the garbage, so it is read as attributes.
        if (rng.chance(0.5) && b.length >= HEADER_LENGTH) {
          setHeaderLength(grown, grown.length - HEADER_LENGTH);
        }
        b = grown;
        break;
      }
      case "duplicateAttribute": {
        if (offsets.length === 0) break;
        const from = rng.pick(offsets);
        const size = 4 + ((((b[from + 2] << 8) | b[from + 3]) + 3) & ~3);
        const copy = b.slice(from, from + size);
        const to = rng.pick([...offsets, b.length]);
        const grown = new Uint8Array(b.length + copy.length);
        grown.set(b.subarray(0, to));
        grown.set(copy, to);
        grown.set(b.subarray(to), to + copy.length);
        if (grown.length >= HEADER_LENGTH) setHeaderLength(grown, grown.length - HEADER_LENGTH);
        b = grown;
        break;
      }
      case "attributeType": {
        if (offsets.length === 0) break;
        const at = rng.pick(offsets);
        if (at + 2 > b.length) break;
        const type = rng.pick([...KNOWN_TYPES, rng.below(0x10000)]);
        b[at] = type >> 8;
        b[at + 1] = type & 0xff;
        break;
      }
      case "messageType":
        if (b.length >= 2) {
          b[0] = rng.pick([0x40, 0x80, 0xc0, rng.below(256)]) | (b[0] & 0x3f);
          b[1] = rng.below(256);
        }
        break;
      case "cookie":
        if (b.length >= 8) b[4 + rng.below(4)] ^= 1 << rng.below(8);
        break;
    }
  }
  c.bytes = b;
}

function generate(rng: Rng): StunCase {
  const c: StunCase = {
    bytes: new Uint8Array(0),
    type: rng.chance(0.7)
      ? rng.pick([BINDING_REQUEST, BINDING_INDICATION, BINDING_SUCCESS, BINDING_ERROR])
      : rng.below(0x4000),
    // From the PRNG, not randomTransactionId(): the input must be reproducible.
    transactionId: rng.bytes(12),
    attributes: [],
    fingerprint: rng.chance(0.5),
    paddingByte: rng.chance(0.8) ? 0 : rng.int(1, 255),
    mutations: [],
  };
  const count = rng.weighted([[1, 0], [4, rng.int(1, 4)], [2, rng.int(5, 9)]]);
  for (let i = 0; i < count; i++) attribute(rng, c);
  if (rng.chance(0.6)) {
    c.integrityKey = rng.chance(0.7)
      ? encodeString(rng.text(ICE_CHARS, rng.int(22, 32)))
      : rng.bytes(rng.int(0, 80));
  }
  c.bytes = buildStun({
    type: c.type,
    transactionId: c.transactionId,
    attributes: c.attributes,
    integrityKey: c.integrityKey,
    fingerprint: c.fingerprint,
    paddingByte: c.paddingByte,
  });
  if (rng.chance(0.5)) mutate(rng, c);
  return c;
}

/** Calls a getter; it may return anything or throw StunError, nothing else. */
function guarded<T>(what: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof StunError) return undefined;
    throw threw(what, e);
  }
}

function neverThrows<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw threw(what, e);
  }
}

function sameAddress(a: string, b: string): boolean {
  const x = parseIp(a)?.bytes, y = parseIp(b)?.bytes;
  return x !== undefined && y !== undefined && sameBytes(x, y);
}

function checkUnmutated(c: StunCase, msg: StunMessage): void {
  const key = c.integrityKey;
  if (key !== undefined) {
    expect(verifyIntegrity(msg, key), "MESSAGE-INTEGRITY of a built message does not verify");
  }
  if (c.fingerprint) expect(verifyFingerprint(msg), "FINGERPRINT of a built message does not verify");
  if (c.bytes[0] <= 3) expect(looksLikeStun(c.bytes), "looksLikeStun refuses a built Binding-range message");
  expect(msg.type === c.type, `type ${msg.type} read back, ${c.type} built`);
  expect(sameBytes(msg.transactionId, c.transactionId), "transaction id read back differs");

  const plain = plainAttributes(msg);
  expect(
    plain.length === c.attributes.length,
    `${plain.length} attributes read back, ${c.attributes.length} built`,
  );
  plain.forEach(([type, value], i) => {
    expect(type === c.attributes[i][0], `attribute ${i}: type 0x${type.toString(16)} read back`);
    expect(sameBytes(value, c.attributes[i][1]), `attribute ${i}: value read back differs`);
  });
  if (c.username !== undefined) {
    expect(getUsername(msg) === c.username, `USERNAME ${JSON.stringify(getUsername(msg))} read back`);
  }
  if (c.xorAddress !== undefined) {
    const got = getXorMappedAddress(msg);
    expect(
      got !== undefined && got.port === c.xorAddress.port && sameAddress(got.host, c.xorAddress.host),
      `XOR-MAPPED-ADDRESS ${JSON.stringify(got)} read back, ${JSON.stringify(c.xorAddress)} built`,
    );
  }
  const rebuilt = buildStun({
    type: msg.type,
    transactionId: msg.transactionId,
    attributes: plain,
    integrityKey: key,
    fingerprint: c.fingerprint,
    paddingByte: c.paddingByte,
  });
  expect(sameBytes(rebuilt, c.bytes), `rebuilt message differs: ${hex(rebuilt)}`);
}

function check(c: StunCase): void {
  neverThrows("looksLikeStun", () => looksLikeStun(c.bytes));
  let msg: StunMessage;
  try {
    msg = parseStun(c.bytes);
  } catch (e) {
    if (!(e instanceof StunError)) throw e;
    expect(c.mutations.length > 0, `a message as built does not parse: ${e.message}`);
    return;
  }
  guarded("getUsername", () => getUsername(msg));
  guarded("getXorMappedAddress", () => getXorMappedAddress(msg));
  guarded("getErrorCode", () => getErrorCode(msg));
  guarded("getPriority", () => getPriority(msg));
  guarded("getTieBreaker(ICE-CONTROLLING)", () => getTieBreaker(msg, Attr.ICE_CONTROLLING));
  guarded("getTieBreaker(ICE-CONTROLLED)", () => getTieBreaker(msg, Attr.ICE_CONTROLLED));
  guarded("plainAttributes", () => plainAttributes(msg));
  guarded("hasAttribute", () => hasAttribute(msg, Attr.FINGERPRINT));
  for (const a of msg.attributes) guarded("getAttribute", () => getAttribute(msg, a.type));
  const otherKey = encodeString("not-the-key");
  const integrity = neverThrows("verifyIntegrity", () => verifyIntegrity(msg, c.integrityKey ?? otherKey));
  const fingerprint = neverThrows("verifyFingerprint", () => verifyFingerprint(msg));

  if (c.mutations.length === 0) return checkUnmutated(c, msg);
  // One flipped bit outside the length field (which only moves where the message ends) must be caught
  // by the CRC, and by the HMAC when it lies in what the HMAC covers.
  const at = c.flippedByte;
  if (at === undefined || at === 2 || at === 3) return;
  if (c.fingerprint) expect(!fingerprint, `FINGERPRINT still verifies after a bit flip in byte ${at}`);
  const integrityEnd = c.bytes.length - (c.fingerprint ? 8 : 0);
  if (c.integrityKey !== undefined && at < integrityEnd) {
    expect(!integrity, `MESSAGE-INTEGRITY still verifies after a bit flip in byte ${at}`);
  }
}

function describe(c: StunCase): string {
  return JSON.stringify({
    mutations: c.mutations,
    integrityKey: c.integrityKey && hex(c.integrityKey),
    fingerprint: c.fingerprint,
    paddingByte: c.paddingByte,
    bytes: hex(c.bytes),
  });
}

export const stunTarget = defineTarget({ name: "stun", generate, check, describe });
