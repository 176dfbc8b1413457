// Stream helpers: a framed writer with bounded buffering (RFC 4571 frames written whole and in order,
// batched into one write per turn), and reading with a deadline.
import { encodeFrame } from "./framing.ts";

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
    /** "slow_reader" (queue full) or "write_failed". */
    readonly onFail: (reason: "slow_reader" | "write_failed") => void,
    readonly limit = MAX_QUEUED_BYTES,
  ) {}

  get queuedBytes(): number {
    return this.#queued;
  }

  /** Queues one packet as an RFC 4571 frame (copied: the caller may reuse `packet`). */
  sendFrame(packet: Uint8Array): void {
    if (!this.#closed) this.sendRaw(encodeFrame(packet));
  }

  sendRaw(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#queued + bytes.length > this.limit) {
      this.#closed = true;
      this.#queue = [];
      this.onFail("slow_reader");
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#writing) {
      // The frames queued in this task (a batch relayed from a worker, a burst of packets) leave in one
      // write: with TCP_NODELAY each write is a segment of its own.
      this.#writing = true;
      queueMicrotask(() => this.#drain());
    }
  }

  async #drain(): Promise<void> {
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
        this.onFail("write_failed");
      }
    } finally {
      this.#writing = false;
    }
  }

  /** Drops what is queued and closes the connection: the writer owns it from its making (a connection
   * closed already is fine). */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    try {
      this.conn.close();
    } catch { /* closed already */ }
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

/** A connection carrying media (RFC 4571 frames) sends each write at once: with Nagle's algorithm a small
 * write waits for the peer to acknowledge the one before, which adds the peer's delayed-ACK time to a
 * packet's latency. A connection that has no such option (TLS) is left as it is. */
export function sendWithoutDelay(conn: Deno.Conn): void {
  try {
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
  } catch { /* closed already */ }
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

/** Deno.connect with a deadline for the connection to be established (and only for that). */
export async function connectTcp(hostname: string, port: number, timeoutMs: number): Promise<Deno.TcpConn> {
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new DeadlineError(`no connection within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    return await Deno.connect({ hostname, port, signal: abort.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** Connection deadlines checked by one timer, instead of a timer and a racing promise per read: an
 * idle connection then costs its socket and one pending read. When a deadline passes, its callback
 * runs (it closes the connection, which ends the pending read). */
export class Deadlines {
  readonly #at = new Map<object, { at: number; expire: () => void }>();
  #timer?: ReturnType<typeof setInterval>;

  constructor(readonly everyMs = 250) {}

  set(key: object, at: number, expire: () => void): void {
    this.#at.set(key, { at, expire });
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#sweep(), this.everyMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  clear(key: object): void {
    this.#at.delete(key);
    if (this.#at.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  get size(): number {
    return this.#at.size;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, d] of this.#at) {
      if (d.at > now) continue;
      this.clear(key);
      try {
        d.expire();
      } catch { /* closing an already closed connection */ }
    }
  }
}

/** The process's connection deadlines. */
export const connectionDeadlines = new Deadlines();
