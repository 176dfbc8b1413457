// HMAC-SHA1 (RFC 2104 over FIPS 180-4 SHA-1) for STUN MESSAGE-INTEGRITY, in plain TypeScript. Every
// keepalive and check is signed or verified, thousands per second with many sessions: node:crypto
// allocates a hash object and a pooled Buffer per call, which showed up as GC work. This keeps the
// per-key inner and outer pad states and writes into caller-owned memory, allocating nothing per call.

const BLOCK = 64;
export const SHA1_LENGTH = 20;
const INITIAL = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0]);

// Scratch shared by every call (single-threaded per isolate).
const W = new Int32Array(80);
const state = new Int32Array(5);
const pending = new Uint8Array(BLOCK);
const innerDigest = new Uint8Array(SHA1_LENGTH);
let pendingLength = 0;
let totalLength = 0;

/** One SHA-1 compression of the 64-byte block at b[o..o+64] into h. */
function compress(h: Int32Array, b: Uint8Array, o: number): void {
  for (let i = 0; i < 16; i++, o += 4) W[i] = (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
  for (let i = 16; i < 80; i++) {
    const x = W[i - 3] ^ W[i - 8] ^ W[i - 14] ^ W[i - 16];
    W[i] = (x << 1) | (x >>> 31);
  }
  let a = h[0], b1 = h[1], c = h[2], d = h[3], e = h[4];
  for (let i = 0; i < 80; i++) {
    let f: number, k: number;
    if (i < 20) {
      f = (b1 & c) | (~b1 & d);
      k = 0x5a827999;
    } else if (i < 40) {
      f = b1 ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = (b1 & c) | (b1 & d) | (c & d);
      k = 0x8f1bbcdc | 0;
    } else {
      f = b1 ^ c ^ d;
      k = 0xca62c1d6 | 0;
    }
    const t = (((a << 5) | (a >>> 27)) + f + e + k + W[i]) | 0;
    e = d;
    d = c;
    c = (b1 << 30) | (b1 >>> 2);
    b1 = a;
    a = t;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b1) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
}

/** Starts a hash from a saved state (the 5 words at from[at..at+5]) that has already consumed `consumed`
 * bytes (whole blocks). */
function begin(from: Int32Array, consumed: number, at = 0): void {
  for (let i = 0; i < 5; i++) state[i] = from[at + i];
  pendingLength = 0;
  totalLength = consumed;
}

function update(data: Uint8Array): void {
  let i = 0;
  totalLength += data.length;
  if (pendingLength > 0) {
    const take = Math.min(BLOCK - pendingLength, data.length);
    pending.set(data.subarray(0, take), pendingLength);
    pendingLength += take;
    i = take;
    if (pendingLength < BLOCK) return;
    compress(state, pending, 0);
    pendingLength = 0;
  }
  for (; i + BLOCK <= data.length; i += BLOCK) compress(state, data, i);
  if (i < data.length) {
    pending.set(data.subarray(i));
    pendingLength = data.length - i;
  }
}

/** Pads (FIPS 180-4 §5.1.1) and writes the 20-byte digest to out[offset..]. */
function finish(out: Uint8Array, offset: number): void {
  const bits = totalLength * 8;
  pending[pendingLength++] = 0x80;
  if (pendingLength > BLOCK - 8) {
    pending.fill(0, pendingLength);
    compress(state, pending, 0);
    pendingLength = 0;
  }
  pending.fill(0, pendingLength, BLOCK - 8);
  const high = Math.floor(bits / 0x100000000);
  pending[56] = high >>> 24;
  pending[57] = high >>> 16;
  pending[58] = high >>> 8;
  pending[59] = high;
  pending[60] = bits >>> 24;
  pending[61] = bits >>> 16;
  pending[62] = bits >>> 8;
  pending[63] = bits;
  compress(state, pending, 0);
  for (let i = 0; i < 5; i++) {
    const v = state[i];
    out[offset + 4 * i] = v >>> 24;
    out[offset + 4 * i + 1] = v >>> 16;
    out[offset + 4 * i + 2] = v >>> 8;
    out[offset + 4 * i + 3] = v;
  }
}

/** The states after the key's ipad block (words 0-4) and its opad block (words 5-9), computed once per key
 * object: one array per key, since every session keeps a few keys for its lifetime. */
const padsByKey = new WeakMap<Uint8Array, Int32Array>();
const OUTER = 5;

function padsFor(key: Uint8Array): Int32Array {
  let pads = padsByKey.get(key);
  if (pads) return pads;
  let k = key;
  if (k.length > BLOCK) {
    // RFC 2104 §2: keys longer than the block are hashed first.
    k = new Uint8Array(SHA1_LENGTH);
    begin(INITIAL, 0);
    update(key);
    finish(k, 0);
  }
  const block = new Uint8Array(BLOCK);
  pads = new Int32Array(2 * OUTER);
  for (let i = 0; i < BLOCK; i++) block[i] = (k[i] ?? 0) ^ 0x36;
  begin(INITIAL, 0);
  compress(state, block, 0);
  pads.set(state, 0);
  for (let i = 0; i < BLOCK; i++) block[i] = (k[i] ?? 0) ^ 0x5c;
  begin(INITIAL, 0);
  compress(state, block, 0);
  pads.set(state, OUTER);
  padsByKey.set(key, pads);
  return pads;
}

/** HMAC-SHA1 of the concatenated parts, written to out[offset..offset+20]. The key's pads are cached
 * for as long as the key object lives, so pass the same Uint8Array for the same password. */
export function hmacSha1Into(key: Uint8Array, parts: Uint8Array[], out: Uint8Array, offset = 0): void {
  const pads = padsFor(key);
  begin(pads, BLOCK, 0);
  for (const p of parts) update(p);
  finish(innerDigest, 0);
  begin(pads, BLOCK, OUTER);
  update(innerDigest);
  finish(out, offset);
}
