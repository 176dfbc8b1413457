// First-bytes classification of a new TCP connection (src/io/stream_classify.ts). Streams that start
// as TLS records, HTTP requests (every method, partial and not), RFC 4571-framed STUN requests (valid
// and not), random bytes or nothing. classifyStream never throws, and is monotonic: every prefix gets
// "more" or the one verdict every longer prefix that is not "more" gets. A well-formed TLS, HTTP or
// ICE-TCP start gets its own verdict.
import { classifyStream, type StreamKind } from "../../src/io/stream_classify.ts";
import { Attr, BINDING_REQUEST, buildStun, encodeString, encodeUint32 } from "../../src/stun/message.ts";
import { defineTarget, expect, hex, type Rng } from "./harness.ts";

interface ClassifyCase {
  shape: string;
  stream: Uint8Array;
  /** The verdict a complete, well-formed start must get. */
  expected?: StreamKind;
}

const KINDS: ReadonlySet<string> = new Set(["tls", "http", "ice", "reject", "more"]);
const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
/** Longest first STUN frame xRTC accepts (stream_classify.ts). */
const MAX_FIRST_FRAME = 1500;
const latin1 = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0) & 0xff);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function tls(rng: Rng): ClassifyCase {
  if (rng.chance(0.7)) {
    // ContentType handshake (22), legacy version 3.x, a length, then a ClientHello's first bytes.
    const length = rng.int(40, 16384);
    const header = [0x16, 0x03, rng.int(0, 4), length >> 8, length & 0xff, 0x01];
    return {
      shape: "tls",
      stream: concat(Uint8Array.from(header), rng.bytes(rng.int(0, 30))),
      expected: "tls",
    };
  }
  return {
    shape: "tls-bad-version",
    stream: concat(Uint8Array.of(0x16, rng.below(256)), rng.bytes(rng.int(0, 10))),
  };
}

function http(rng: Rng): ClassifyCase {
  const method = rng.pick(METHODS);
  const request = `${method} /${rng.text("abcxyz/?=&", rng.int(0, 20))} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  const variant = rng.weighted([[6, "valid"], [2, "partial"], [1, "case"], [1, "unknown"]] as const);
  if (variant === "valid") return { shape: "http", stream: latin1(request), expected: "http" };
  if (variant === "partial") {
    return { shape: "http-partial", stream: latin1(request.slice(0, rng.int(0, method.length))) };
  }
  if (variant === "case") return { shape: "http-case", stream: latin1(rng.randomCase(request)) };
  return {
    shape: "http-unknown",
    stream: latin1(`${rng.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", rng.int(1, 9))} / HTTP/1.1\r\n`),
  };
}

function ice(rng: Rng): ClassifyCase {
  const attributes: Array<[number, Uint8Array]> = [
    [Attr.USERNAME, encodeString(`${rng.text("abcdEFGH0123", rng.int(4, 12))}:${rng.text("wxyz", 4)}`)],
    [Attr.PRIORITY, encodeUint32(rng.u32())],
  ];
  if (rng.chance(0.3)) attributes.push([0x8023, rng.bytes(rng.int(0, 1400))]);
  const stun = buildStun({
    type: BINDING_REQUEST,
    transactionId: rng.bytes(12),
    attributes,
    integrityKey: encodeString("fuzzpasswordfuzzpassword"),
    fingerprint: true,
  });
  const valid = stun.length <= MAX_FIRST_FRAME;
  const variant = valid ? rng.weighted([[6, "valid"], [1, "length"], [1, "type"]] as const) : "long";
  let length = stun.length;
  if (variant === "length") length = rng.pick([0, 1, 19, 1501, rng.below(0x600)]);
  const frame = concat(Uint8Array.of(length >> 8, length & 0xff), stun);
  if (variant === "type") frame[2] = rng.int(2, 255);
  return { shape: `ice-${variant}`, stream: frame, expected: variant === "valid" ? "ice" : undefined };
}

function random(rng: Rng): ClassifyCase {
  const first = rng.weighted([[2, rng.below(256)], [1, rng.int(0, 5)], [1, rng.int(0x41, 0x5a)], [1, 0x16]]);
  return { shape: "random", stream: concat(Uint8Array.of(first), rng.bytes(rng.int(0, 40))) };
}

function empty(): ClassifyCase {
  return { shape: "empty", stream: new Uint8Array(0) };
}

function generate(rng: Rng): ClassifyCase {
  const c = rng.weighted([[3, tls], [4, http], [4, ice], [3, random], [1, empty]])(rng);
  // Whatever follows the first bytes cannot change the verdict on them.
  if (rng.chance(0.2)) c.stream = concat(c.stream, rng.bytes(rng.int(1, 20)));
  return c;
}

function check(c: ClassifyCase): void {
  // The classifier reads a few bytes at most: every prefix up to 48 bytes, then the whole stream.
  const lengths = Array.from({ length: Math.min(c.stream.length, 48) + 1 }, (_, n) => n);
  if (c.stream.length > 48) lengths.push(c.stream.length);
  let settled: StreamKind | undefined;
  for (const n of lengths) {
    const verdict = classifyStream(c.stream.subarray(0, n));
    expect(KINDS.has(verdict), `verdict ${JSON.stringify(verdict)} on ${n} bytes`);
    if (verdict === "more") continue;
    expect(
      settled === undefined || verdict === settled,
      `"${settled}" on a shorter prefix, "${verdict}" on ${n} bytes`,
    );
    settled = verdict;
  }
  if (c.expected !== undefined) {
    const full = classifyStream(c.stream);
    expect(full === c.expected, `a well-formed ${c.expected} start classified "${full}"`);
  }
}

function describe(c: ClassifyCase): string {
  return JSON.stringify({ shape: c.shape, stream: hex(c.stream) });
}

export const classifyTarget = defineTarget({ name: "classify", generate, check, describe });
