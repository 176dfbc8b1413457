// Which shard owns a session. Every shard (the main thread and each worker) has its own socket on
// the one public port (SO_REUSEPORT); the kernel spreads client tuples across them, and the shard
// that first receives an authentic check for a session claims it with one compare-and-swap on a
// SharedArrayBuffer both sides see. A slot word holds (generation << OWNER_BITS) | (owner + 1); the
// generation makes a claim for a session that has since ended fail instead of taking its successor.

import { MAX_WORKERS } from "../../config/types.ts";

const OWNER_BITS = 6;
const OWNER_MASK = (1 << OWNER_BITS) - 1;
// An owner is stored as shard + 1 in OWNER_BITS bits: shards 0 (the main thread) to MAX_WORKERS.
if (MAX_WORKERS + 1 > OWNER_MASK) throw new Error(`the claim board records at most ${OWNER_MASK} shards`);
const GENERATION_LIMIT = 1 << (31 - OWNER_BITS);

/** A session's slot on the board, as handed to every shard with its spec. */
export interface ClaimTicket {
  slot: number;
  generation: number;
}

/** The claim stands for a session that has ended (its slot was reused). */
export const STALE = -1;

export class ClaimBoard {
  readonly #words: Int32Array;
  readonly #free: number[] = [];
  #next = 0;

  /** `buffer` is shared with every shard; only the main thread allocates and frees slots. */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.#words = new Int32Array(buffer);
  }

  static create(slots: number): ClaimBoard {
    return new ClaimBoard(new SharedArrayBuffer(Math.max(1, slots) * Int32Array.BYTES_PER_ELEMENT));
  }

  get capacity(): number {
    return this.#words.length;
  }

  /** A fresh, unclaimed slot (main thread). Throws when every slot is taken. */
  allocate(): ClaimTicket {
    const slot = this.#free.pop() ?? (this.#next < this.#words.length ? this.#next++ : -1);
    if (slot < 0) throw new RangeError(`all ${this.#words.length} claim slots are in use`);
    const generation = Atomics.load(this.#words, slot) >>> OWNER_BITS;
    return { slot, generation };
  }

  /** Ends the slot's session (main thread): its generation moves on, so late claims fail. */
  release(t: ClaimTicket): void {
    // A worker's claim racing this store either lands first (and is overwritten) or fails as stale.
    Atomics.store(this.#words, t.slot, ((t.generation + 1) % GENERATION_LIMIT) << OWNER_BITS);
    this.#free.push(t.slot);
  }

  /** Claims for `shard`. Returns the owner (this shard when the claim won), or STALE. */
  claim(t: ClaimTicket, shard: number): number {
    const unclaimed = t.generation << OWNER_BITS;
    const seen = Atomics.compareExchange(this.#words, t.slot, unclaimed, unclaimed | (shard + 1));
    if (seen === unclaimed) return shard;
    return this.#ownerIn(seen, t);
  }

  /** The owning shard, undefined while unclaimed, or STALE. */
  owner(t: ClaimTicket): number | undefined {
    const word = Atomics.load(this.#words, t.slot);
    if (word === t.generation << OWNER_BITS) return undefined;
    return this.#ownerIn(word, t);
  }

  #ownerIn(word: number, t: ClaimTicket): number {
    return word >>> OWNER_BITS === t.generation ? (word & OWNER_MASK) - 1 : STALE;
  }
}
