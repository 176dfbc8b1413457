// RFC 4571 framing for ICE-TCP (RFC 6544 §3): each packet is preceded by a 16-bit big-endian length.
import { MAX_DATAGRAM } from "./types.ts";

export class FramingError extends Error {
  override name = "FramingError";
}

/** Largest frame RFC 4571 can express. */
export const MAX_FRAME = 65535;
/** Largest frame xRTC accepts on an ICE-TCP connection: a frame carries one datagram. */
export const MAX_ICE_TCP_FRAME = MAX_DATAGRAM;

const EMPTY = new Uint8Array(0);

/** Decodes a byte stream into frames, whatever the split of reads (split and coalesced frames). */
export class FrameDecoder {
  /** Bytes of an incomplete frame; allocated only when a read ends inside a frame. */
  #buf = EMPTY;
  #len = 0;
  constructor(readonly maxFrame = MAX_FRAME) {}

  /** Feeds bytes; calls onFrame with a view valid only during the call. Throws FramingError on an oversize frame. */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let data = chunk;
    if (this.#len > 0) {
      this.#append(chunk);
      data = this.#buf.subarray(0, this.#len);
    }
    let off = 0;
    while (data.length - off >= 2) {
      const size = (data[off] << 8) | data[off + 1];
      if (size > this.maxFrame) throw new FramingError(`frame of ${size} bytes exceeds ${this.maxFrame}`);
      if (data.length - off - 2 < size) break;
      onFrame(data.subarray(off + 2, off + 2 + size));
      off += 2 + size;
    }
    const rest = data.length - off;
    if (data === chunk) {
      this.#len = 0;
      this.#append(chunk.subarray(off));
    } else {
      this.#buf.copyWithin(0, off, off + rest);
      this.#len = rest;
    }
  }

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.#len;
  }

  #append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#len + bytes.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + bytes.length, 256));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }
}

export function encodeFrame(packet: Uint8Array): Uint8Array {
  if (packet.length > MAX_FRAME) throw new FramingError(`packet of ${packet.length} bytes cannot be framed`);
  const out = new Uint8Array(packet.length + 2);
  out[0] = packet.length >> 8;
  out[1] = packet.length & 0xff;
  out.set(packet, 2);
  return out;
}
