// How another thread gets a turn of the event loop of a thread that waits for datagrams itself (an
// own-thread ffi backend, in a shard worker), so that a message posted to it is served at once: a shared
// count of requests, read by the waiting thread between its waits, and, while that thread is blocked in
// a wait, one write to an eventfd in the wait's epoll set, which ends the wait.

/** Int32 word indexes of the shared buffer. */
const REQUESTS = 0;
const STATE = 1;
/** The waiting thread's state: not blocked in a wait of its own... */
export const AWAKE = 0;
/** ...blocked in one: a request must write the eventfd... */
export const SLEEPING = 1;
/** ...a request has written it (later requests need not). */
const WOKEN = 2;

/** What crosses threads (file descriptors are the process's). */
export interface TurnChannel {
  /** The shared words: requests so far, and the waiting thread's state. */
  readonly words: SharedArrayBuffer;
  /** The eventfd in the waiting thread's epoll set; -1 when it has none (a backend that never blocks the
   * thread: requests are seen at its event loop's turns anyway). */
  readonly wakeFd: number;
}

export function turnWords(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(8));
}

/** The waiting thread's side. */
export class TurnWaiter {
  #seen = 0;
  constructor(readonly words: Int32Array) {}

  /** A request came since `seen()` was last called. */
  wanted(): boolean {
    return Atomics.load(this.words, REQUESTS) !== this.#seen;
  }

  /** Requests so far are being served (the event loop's turn follows). */
  seen(): void {
    this.#seen = Atomics.load(this.words, REQUESTS);
  }

  /** About to block: false (and not blocking) when a request came meanwhile. The order matters: the
   * state is published before the count is read, and the poster counts before it reads the state, so
   * either this sees the request or the poster sees the thread asleep and writes the eventfd. */
  sleeping(): boolean {
    Atomics.store(this.words, STATE, SLEEPING);
    if (!this.wanted()) return true;
    Atomics.store(this.words, STATE, AWAKE);
    return false;
  }

  awake(): void {
    Atomics.store(this.words, STATE, AWAKE);
  }
}

/** The posting thread's side: `request()` after each message posted to the waiting thread. */
export class TurnRequester {
  readonly #words: Int32Array;
  constructor(readonly channel: TurnChannel, readonly wake: (fd: number) => void) {
    this.#words = new Int32Array(channel.words);
  }

  request(): void {
    Atomics.add(this.#words, REQUESTS, 1);
    if (
      this.channel.wakeFd >= 0 &&
      Atomics.compareExchange(this.#words, STATE, SLEEPING, WOKEN) === SLEEPING
    ) this.wake(this.channel.wakeFd);
  }
}
