// RFC 4571 framing (src/io/framing.ts): random frame sequences, some with an oversize frame for a
// random maxFrame, cut into random reads. The decoder must yield exactly the encoded frames in order, as
// soon as each is complete, throw FramingError at the oversize header and nothing else, and hold
// exactly the bytes of the incomplete frame at the end.
import { encodeFrame, FrameDecoder, FramingError, MAX_FRAME } from "../../src/io/framing.ts";
import { defineTarget, expect, hex, type Rng, sameBytes } from "./harness.ts";

interface FramingCase {
  maxFrame: number;
  /** The frames encoded before the oversize one (or all of them). */
  payloads: Uint8Array[];
  stream: Uint8Array;
  /** Where the header of the first oversize frame starts. */
  oversizeAt?: number;
  /** Lengths of the reads the stream arrives in (some may be empty). */
  reads: number[];
  /** Also checks that encodeFrame refuses a packet too large to frame. */
  tooLargeToEncode?: number;
}

function frameSize(rng: Rng, maxFrame: number): number {
  const cap = Math.min(maxFrame, MAX_FRAME);
  // Mostly small frames; frames of tens of kilobytes are rare because they cost time.
  const size = rng.weighted([
    [600, rng.int(0, 40)],
    [250, rng.int(0, 300)],
    [100, rng.int(0, 6000)],
    [40, cap <= 6000 ? cap - rng.below(3) : rng.int(0, 40)],
    [5, cap - rng.below(3)],
    [5, rng.int(0, MAX_FRAME)],
  ]);
  return Math.max(0, Math.min(size, cap));
}

function readLengths(rng: Rng, total: number): number[] {
  const drawn = rng.pick(["whole", "bytes", "cuts", "small"] as const);
  // One byte per read is kept for streams short enough to stay fast.
  const mode = drawn === "bytes" && total > 3000 ? "small" : drawn;
  const reads: number[] = [];
  switch (mode) {
    case "whole":
      reads.push(total);
      break;
    case "bytes":
      for (let i = 0; i < total; i++) reads.push(1);
      break;
    case "cuts": {
      const cuts = Array.from({ length: rng.int(1, 8) }, () => rng.int(0, total)).sort((a, b) => a - b);
      let at = 0;
      for (const cut of [...cuts, total]) {
        reads.push(cut - at);
        at = cut;
      }
      break;
    }
    case "small":
      for (let left = total; left > 0;) {
        const n = Math.min(left, rng.int(1, 16));
        reads.push(n);
        left -= n;
      }
  }
  // An empty read now and then: the decoder must take it in its stride.
  if (rng.chance(0.1)) reads.splice(rng.int(0, reads.length), 0, 0);
  return reads;
}

function generate(rng: Rng): FramingCase {
  const maxFrame = rng.weighted([
    [3, MAX_FRAME],
    [2, 1500],
    [2, rng.int(0, 64)],
    [2, rng.int(0, 5000)],
    [1, rng.int(4000, 70_000)],
  ]);
  const parts: Uint8Array[] = [];
  const payloads: Uint8Array[] = [];
  let length = 0;
  let oversizeAt: number | undefined;
  const count = rng.int(0, 10);
  const oversizeIndex = maxFrame < MAX_FRAME && rng.chance(0.3) ? rng.int(0, count) : -1;
  for (let i = 0; i <= count; i++) {
    if (i === oversizeIndex) {
      // Only the header matters: the decoder must refuse before reading the payload.
      const size = rng.chance(0.5) ? maxFrame + 1 : rng.int(maxFrame + 1, MAX_FRAME);
      const part = new Uint8Array([size >> 8, size & 0xff, ...rng.bytes(rng.int(0, 20))]);
      oversizeAt = length;
      parts.push(part);
      length += part.length;
    }
    if (i === count) break;
    const payload = rng.bytes(frameSize(rng, maxFrame));
    if (oversizeAt === undefined) payloads.push(payload);
    const part = encodeFrame(payload);
    parts.push(part);
    length += part.length;
  }
  let stream = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    stream.set(p, at);
    at += p.length;
  }
  // A stream cut short leaves an incomplete frame waiting.
  if (rng.chance(0.3) && stream.length > 0) stream = stream.slice(0, rng.below(stream.length));
  return {
    maxFrame,
    payloads,
    stream,
    oversizeAt,
    reads: readLengths(rng, stream.length),
    tooLargeToEncode: rng.chance(0.001) ? MAX_FRAME + 1 + rng.below(100) : undefined,
  };
}

/** What the stream holds once `pushed` bytes have arrived: complete frames, and bytes held after them. */
function expectedAfter(c: FramingCase, pushed: number): { frames: number; held: number } {
  let frames = 0, at = 0;
  while (at + 2 <= pushed && at !== c.oversizeAt) {
    const size = (c.stream[at] << 8) | c.stream[at + 1];
    if (at + 2 + size > pushed) break;
    frames++;
    at += 2 + size;
  }
  return { frames, held: pushed - at };
}

function check(c: FramingCase): void {
  if (c.tooLargeToEncode !== undefined) {
    let refused = false;
    try {
      encodeFrame(new Uint8Array(c.tooLargeToEncode));
    } catch (e) {
      if (!(e instanceof FramingError)) throw e;
      refused = true;
    }
    expect(refused, `encodeFrame framed a ${c.tooLargeToEncode}-byte packet`);
  }
  const decoder = new FrameDecoder(c.maxFrame);
  const got: Uint8Array[] = [];
  const onFrame = (frame: Uint8Array) => {
    // The view is valid only during the call: keep a copy.
    got.push(frame.slice());
  };
  const throwsAt = c.oversizeAt === undefined ? Infinity : c.oversizeAt + 2;
  let pushed = 0;
  for (const n of c.reads) {
    // Each read in its own buffer, scribbled over afterwards: the decoder must not keep a view of it.
    const read = c.stream.slice(pushed, pushed + n);
    const oversizeNow = pushed < throwsAt && pushed + n >= throwsAt;
    try {
      decoder.push(read, onFrame);
    } catch (e) {
      if (!(e instanceof FramingError)) throw e;
      expect(
        oversizeNow,
        `FramingError after ${pushed + n} bytes, no oversize header complete: ${e.message}`,
      );
      expect(
        got.length === c.payloads.length,
        `${got.length} frames before the oversize one, not ${c.payloads.length}`,
      );
      got.forEach((f, i) => expect(sameBytes(f, c.payloads[i]), `frame ${i} differs`));
      return;
    }
    expect(!oversizeNow, `no FramingError once the oversize header at byte ${c.oversizeAt} arrived`);
    read.fill(0xa5);
    pushed += n;
    const want = expectedAfter(c, pushed);
    expect(got.length === want.frames, `${got.length} frames after ${pushed} bytes, expected ${want.frames}`);
    expect(
      decoder.pending === want.held,
      `pending ${decoder.pending} after ${pushed} bytes, expected ${want.held}`,
    );
  }
  got.forEach((f, i) => expect(sameBytes(f, c.payloads[i]), `frame ${i} differs`));
}

function describe(c: FramingCase): string {
  return JSON.stringify({ maxFrame: c.maxFrame, reads: c.reads, stream: hex(c.stream) });
}

export const framingTarget = defineTarget({ name: "framing", generate, check, describe });
