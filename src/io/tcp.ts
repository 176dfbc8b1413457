// Stream helpers: a framed writer with bounded buffering (RFC 4571 frames written whole and in order,
// batched into one write per turn), and reading with a deadline.
import { FramingError, MAX_FRAME } from "../ice/framing.ts";
import { counters } from "../metrics.ts";

/** Bytes queued towards one TCP peer before it is cut off as too slow. */
export const MAX_QUEUED_BYTES = 1024 * 1024;

export interface Writable {
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

export class FramedWriter {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #closed = false;

  constructor(
    readonly conn: Writable,
    readonly onFail: (reason: string) => void,
    readonly limit = MAX_QUEUED_BYTES,
  ) {}

  get queuedBytes(): number {
    return this.#queued;
  }

  /** Queues one packet as an RFC 4571 frame (copied: the caller may reuse `packet`). */
  sendFrame(packet: Uint8Array): void {
    if (this.#closed) return;
    if (packet.length > MAX_FRAME) {
      throw new FramingError(`packet of ${packet.length} bytes cannot be framed`);
    }
    const frame = new Uint8Array(packet.length + 2);
    frame[0] = packet.length >> 8;
    frame[1] = packet.length & 0xff;
    frame.set(packet, 2);
    this.sendRaw(frame);
  }

  sendRaw(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#queued + bytes.length > this.limit) {
      counters.inc("tcp_dropped_slow_reader");
      this.#closed = true;
      this.#queue = [];
      this.onFail("peer does not read: write queue full");
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#writing) this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length && !this.#closed) {
        const batch = this.#queue.length === 1 ? this.#queue[0] : concat(this.#queue, this.#queued);
        this.#queue = [];
        this.#queued = 0;
        let off = 0;
        while (off < batch.length) off += await this.conn.write(batch.subarray(off));
      }
    } catch {
      if (!this.#closed) {
        this.#closed = true;
        this.onFail("write failed");
      }
    } finally {
      this.#writing = false;
    }
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/** conn.read with a deadline; null at EOF. */
export async function readWithDeadline(
  conn: Deno.Conn,
  buf: Uint8Array,
  deadline: number,
): Promise<number | null> {
  const left = deadline - Date.now();
  if (left <= 0) throw new DeadlineError("deadline passed");
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      conn.read(buf),
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new DeadlineError("deadline passed")), left)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
