import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder, FramingError } from "./framing.ts";

const packets = [
  new Uint8Array([1, 2, 3]),
  new Uint8Array(0),
  crypto.getRandomValues(new Uint8Array(1200)),
  new Uint8Array([9]),
];
const stream = new Uint8Array(packets.reduce((n, p) => n + p.length + 2, 0));
{
  let o = 0;
  for (const p of packets) stream.set(encodeFrame(p), (o += 0, o)), (o += p.length + 2);
}

function decodeIn(chunks: Uint8Array[], dec = new FrameDecoder()): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const c of chunks) dec.push(c, (f) => out.push(f.slice()));
  return out;
}

Deno.test("RFC 4571 decoder: a stream split at every byte position gives the same frames", () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    assert.deepEqual(decodeIn([stream.subarray(0, cut), stream.subarray(cut)]), packets);
  }
});

Deno.test("RFC 4571 decoder: one byte at a time, and all coalesced in one read", () => {
  assert.deepEqual(decodeIn([...stream].map((b) => new Uint8Array([b]))), packets);
  assert.deepEqual(decodeIn([stream]), packets);
  const dec = new FrameDecoder();
  decodeIn([stream.subarray(0, 5)], dec);
  assert.equal(dec.pending, 5 - 5); // first frame (5 bytes) complete, nothing held
});

Deno.test("RFC 4571 decoder: an oversize frame is rejected before it is buffered", () => {
  const dec = new FrameDecoder(1500);
  assert.throws(() => dec.push(new Uint8Array([0x05, 0xdd]), () => {}), FramingError);
  const ok = new FrameDecoder(1500);
  const got: number[] = [];
  ok.push(new Uint8Array([0x05, 0xdc]), (f) => got.push(f.length));
  assert.equal(ok.pending, 2);
});
