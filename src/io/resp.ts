// RESP2, the Redis serialization protocol: commands out as arrays of bulk strings, replies in as simple
// strings, errors, integers, bulk strings (or null) and arrays. Sans-IO: the decoder takes bytes as they
// arrive and yields whole replies; a reply larger than the limits is a protocol error, not an allocation.

export type RespValue = string | number | null | RespError | RespValue[];

/** An error reply ("-ERR ..."): the command failed, the connection is fine. */
export class RespError {
  constructor(readonly message: string) {}
}

/** The stream is not RESP (or exceeds the limits): the connection must be closed. */
export class RespProtocolError extends Error {
  override name = "RespProtocolError";
}

/** Largest bulk string and array a reply may carry (xRTC stores short keys and values). */
export const MAX_BULK_BYTES = 1024 * 1024;
export const MAX_ARRAY_ITEMS = 100_000;
const MAX_DEPTH = 8;
/** A line (simple string, error, integer, length) longer than this is not RESP from a Redis. */
const MAX_LINE = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(args: readonly string[]): Uint8Array {
  const parts = args.map((a) => encoder.encode(a));
  let size = 0;
  const head = [`*${parts.length}\r\n`];
  for (const p of parts) head.push(`$${p.length}\r\n`);
  const heads = head.map((h) => encoder.encode(h));
  for (const h of heads) size += h.length;
  for (const p of parts) size += p.length + 2;
  const out = new Uint8Array(size);
  let at = 0;
  out.set(heads[0], at);
  at += heads[0].length;
  parts.forEach((p, i) => {
    out.set(heads[i + 1], at);
    at += heads[i + 1].length;
    out.set(p, at);
    at += p.length;
    out[at++] = 13;
    out[at++] = 10;
  });
  return out;
}

/** Incremental reply decoder: push bytes, take the replies that are complete. */
export class RespDecoder {
  #buf = new Uint8Array(0);
  #start = 0;

  push(bytes: Uint8Array): void {
    const rest = this.#buf.subarray(this.#start);
    const next = new Uint8Array(rest.length + bytes.length);
    next.set(rest);
    next.set(bytes, rest.length);
    this.#buf = next;
    this.#start = 0;
  }

  /** The next complete reply, or undefined when more bytes are needed. Throws RespProtocolError. */
  next(): { value: RespValue } | undefined {
    const r = this.#parse(this.#start, 0);
    if (!r) return undefined;
    this.#start = r.end;
    return { value: r.value };
  }

  #line(at: number): { text: string; end: number } | undefined {
    const buf = this.#buf;
    for (let i = at; i + 1 < buf.length; i++) {
      if (buf[i] === 13 && buf[i + 1] === 10) {
        return { text: decoder.decode(buf.subarray(at, i)), end: i + 2 };
      }
      if (i - at > MAX_LINE) throw new RespProtocolError("line too long");
    }
    if (buf.length - at > MAX_LINE) throw new RespProtocolError("line too long");
    return undefined;
  }

  #int(text: string): number {
    if (!/^-?[0-9]{1,18}$/.test(text)) throw new RespProtocolError(`not an integer: ${text.slice(0, 32)}`);
    return Number(text);
  }

  #parse(at: number, depth: number): { value: RespValue; end: number } | undefined {
    if (at >= this.#buf.length) return undefined;
    if (depth > MAX_DEPTH) throw new RespProtocolError("arrays nested too deep");
    const type = this.#buf[at];
    const line = this.#line(at + 1);
    if (!line) return undefined;
    switch (type) {
      case 0x2b: // '+'
        return { value: line.text, end: line.end };
      case 0x2d: // '-'
        return { value: new RespError(line.text), end: line.end };
      case 0x3a: // ':'
        return { value: this.#int(line.text), end: line.end };
      case 0x24: { // '$'
        const len = this.#int(line.text);
        if (len === -1) return { value: null, end: line.end };
        if (len < 0 || len > MAX_BULK_BYTES) throw new RespProtocolError(`bulk length ${len}`);
        if (this.#buf.length < line.end + len + 2) return undefined;
        if (this.#buf[line.end + len] !== 13 || this.#buf[line.end + len + 1] !== 10) {
          throw new RespProtocolError("bulk string not terminated");
        }
        return {
          value: decoder.decode(this.#buf.subarray(line.end, line.end + len)),
          end: line.end + len + 2,
        };
      }
      case 0x2a: { // '*'
        const n = this.#int(line.text);
        if (n === -1) return { value: null, end: line.end };
        if (n < 0 || n > MAX_ARRAY_ITEMS) throw new RespProtocolError(`array length ${n}`);
        const items: RespValue[] = [];
        let end = line.end;
        for (let i = 0; i < n; i++) {
          const item = this.#parse(end, depth + 1);
          if (!item) return undefined;
          items.push(item.value);
          end = item.end;
        }
        return { value: items, end };
      }
      default:
        throw new RespProtocolError(`unknown reply type 0x${type.toString(16)}`);
    }
  }
}
