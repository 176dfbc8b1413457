// ICE-TCP frames crossing between the main thread and a worker, many to a message: the frames of one read
// (main to worker) or of one batch of received datagrams (worker to main), each with its connection id.
// A message per frame cost more than the frame's forwarding itself (measured: ICE-TCP clients at 4.7x the
// C relay's CPU per packet, against 0.9x for UDP clients). Layout: per frame, its connection id (u32 BE),
// its length (u16 BE), its bytes.

const HEADER = 6;
const INITIAL_BYTES = 16 * 1024;

/** Frames gathered for one message. */
export class FrameBatch {
  #buf = new Uint8Array(INITIAL_BYTES);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  get empty(): boolean {
    return this.#len === 0;
  }

  add(connection: number, frame: Uint8Array): void {
    const need = this.#len + HEADER + frame.length;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#view.setUint32(this.#len, connection);
    this.#view.setUint16(this.#len + 4, frame.length);
    this.#buf.set(frame, this.#len + HEADER);
    this.#len = need;
  }

  /** The frames so far, in a buffer of their own (to be transferred); the batch starts again empty. */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    return out;
  }
}

/** Calls `onFrame` for each frame of a batch, in order (views into `batch`). A malformed tail is ignored:
 * batches come only from the other thread's FrameBatch. */
export function forEachFrame(
  batch: Uint8Array,
  onFrame: (connection: number, frame: Uint8Array) => void,
): void {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 0;
  while (at + HEADER <= batch.length) {
    const connection = view.getUint32(at);
    const end = at + HEADER + view.getUint16(at + 4);
    if (end > batch.length) return;
    onFrame(connection, batch.subarray(at + HEADER, end));
    at = end;
  }
}

/** Frames for the other thread, sent in one message once the current work is done: `schedule` arranges
 * for flush() to run then (a microtask; on a worker's own thread also right after its datagrams leave,
 * where a microtask would wait for the slice to end). */
export class FrameOutbox {
  readonly #batch = new FrameBatch();

  constructor(
    readonly send: (frames: Uint8Array<ArrayBuffer>) => void,
    readonly schedule: (flush: () => void) => void,
  ) {}

  add(connection: number, frame: Uint8Array): void {
    if (this.#batch.empty) this.schedule(this.flush);
    this.#batch.add(connection, frame);
  }

  /** Sends what is gathered now (before another message to the same thread, so that order holds). */
  readonly flush = (): void => {
    if (!this.#batch.empty) this.send(this.#batch.take());
  };
}
