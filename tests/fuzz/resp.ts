// The RESP2 decoder (src/io/resp.ts) that reads Redis's replies: nested replies of every type encoded
// by the oracle's own writer and cut into reads of any size decode to exactly what was written; random
// and damaged streams give replies, "more", or RespProtocolError, never another exception, and nothing
// past the limits is allocated.
import { RespDecoder, RespError, RespProtocolError, type RespValue } from "../../src/io/resp.ts";
import { defineTarget, expect, hex, type Rng, threw } from "./harness.ts";

interface RespCase {
  values: RespValue[];
  stream: Uint8Array;
  reads: number[];
  /** The stream was damaged (or is random): only the absence of other exceptions is checked. */
  damaged: boolean;
}

const TEXT = "abcXYZ019 -+:*$\u00e9\u4e2d";
const enc = new TextEncoder();

function value(rng: Rng, depth: number): RespValue {
  return rng.weighted<() => RespValue>([
    [10, () => rng.text(TEXT.replace(/[\r\n]/g, ""), rng.int(0, 20))],
    [5, () => new RespError(`ERR ${rng.text("abc xyz", rng.int(0, 20))}`)],
    [10, () => rng.int(-(2 ** 31), 2 ** 31)],
    [3, () => null],
    [depth < 4 ? 6 : 0, () => Array.from({ length: rng.int(0, 6) }, () => value(rng, depth + 1))],
  ])();
}

/** The oracle's own writer: bulk strings for text (they may hold anything), as Redis sends GET replies. */
function write(v: RespValue): string {
  if (v === null) return "$-1\r\n";
  if (v instanceof RespError) return `-${v.message}\r\n`;
  if (typeof v === "number") return `:${v}\r\n`;
  if (typeof v === "string") return `$${enc.encode(v).length}\r\n${v}\r\n`;
  return `*${v.length}\r\n${v.map(write).join("")}`;
}

function generate(rng: Rng): RespCase {
  const values = Array.from({ length: rng.int(1, 8) }, () => value(rng, 0));
  let stream: Uint8Array = enc.encode(values.map(write).join(""));
  let damaged = false;
  if (rng.chance(0.3)) {
    damaged = true;
    stream = stream.slice();
    for (let i = rng.int(1, 4); i > 0 && stream.length; i--) {
      stream[rng.below(stream.length)] = rng.int(0, 255);
    }
    if (rng.chance(0.3)) stream = rng.bytes(rng.int(0, 200));
  }
  const reads: number[] = [];
  for (let left = stream.length; left > 0;) {
    const n = Math.min(left, rng.weighted([[5, 1], [5, rng.int(0, 8)], [3, rng.int(0, 64)], [1, left]]));
    reads.push(n);
    left -= n;
  }
  return { values, stream, reads, damaged };
}

function same(a: RespValue, b: RespValue): boolean {
  if (a instanceof RespError || b instanceof RespError) {
    return a instanceof RespError && b instanceof RespError && a.message === b.message;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  return a === b;
}

function check(c: RespCase): void {
  const d = new RespDecoder();
  const got: RespValue[] = [];
  let at = 0;
  try {
    for (const n of c.reads) {
      d.push(c.stream.slice(at, at + n));
      at += n;
      for (let r = d.next(); r; r = d.next()) got.push(r.value);
    }
  } catch (e) {
    if (e instanceof RespProtocolError && c.damaged) return;
    throw threw("RespDecoder", e);
  }
  if (c.damaged) return;
  expect(got.length === c.values.length, `${got.length} replies, ${c.values.length} written`);
  c.values.forEach((v, i) => expect(same(got[i], v), `reply ${i} differs`));
}

function describe(c: RespCase): string {
  return JSON.stringify({ reads: c.reads, damaged: c.damaged, stream: hex(c.stream) });
}

export const respTarget = defineTarget({ name: "resp", generate, check, describe });
