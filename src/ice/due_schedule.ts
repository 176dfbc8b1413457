// When each item next needs attention (a session's consent check or keepalive, an unclaimed spec's or a
// reservation's expiry), in slots of a fixed width: a timer wheel, so a periodic pass touches only the
// items whose time has come instead of walking a whole table (10,000 sessions walked once a second cost
// 10,000 cold visits a second on the thread that forwards media, and showed in its latency). Items are
// filed by time; taking the due ones removes them, and the caller files each again if it needs another
// look. Pure: time is the caller's.

/** Slots nextDueAt() looks at one by one before it reads every filed slot's number. */
const NEXT_DUE_STEPS = 64;

export class DueSchedule<T> {
  /** Slot number -> the items filed in it (an item re-filed elsewhere stays here, stale, and is skipped). */
  readonly #slots = new Map<number, T[]>();
  /** Each filed item's current slot: the one place that says where it is. */
  readonly #slotOf = new Map<T, number>();
  /** Items that were due but over a take's limit, with the slot they were filed in: taken first next time. */
  #overdue: Array<[T, number]> = [];
  /** The first slot not yet taken: nothing is filed before it. */
  #next = -Infinity;
  /** Slots are counted from here (a multiple of the slot width, the first time seen): small integers,
   * which V8 keeps unboxed, where a slot number of a wall-clock time is a heap number made per filing
   * (and kept as long as the filing). Past 2^30 slots (12 days of 1 ms slots) they are heap numbers
   * again, still exact. */
  #origin = NaN;

  constructor(readonly slotMs: number) {}

  /** Items filed. */
  get size(): number {
    return this.#slotOf.size;
  }

  /** Files `item` to be due at `at` (rounded up to its slot, never into a slot already taken), in place
   * of any earlier filing. */
  schedule(item: T, at: number): void {
    const slot = Math.max(this.#slotFor(at), this.#next);
    if (this.#slotOf.get(item) === slot) return;
    this.#slotOf.set(item, slot);
    const items = this.#slots.get(slot);
    if (items) items.push(item);
    else this.#slots.set(slot, [item]);
  }

  /** Files `item` at `at` unless it is already filed to be due sooner. */
  expedite(item: T, at: number): void {
    const current = this.#slotOf.get(item);
    if (current === undefined || this.#slotFor(at) < current) this.schedule(item, at);
  }

  /** The item is no longer filed. */
  remove(item: T): void {
    this.#slotOf.delete(item);
  }

  /** When the first filed item falls due: -Infinity when some are overdue, Infinity when none is filed
   * (an item re-filed since may make it earlier than it is, never later). Steps through the slots from
   * the first untaken one a short way (many filed items: the first is near), else reads every filed
   * slot's number. */
  nextDueAt(): number {
    if (this.#overdue.length > 0) return -Infinity;
    if (this.#slots.size === 0) return Infinity;
    let first = Infinity;
    for (let slot = this.#next, end = slot + NEXT_DUE_STEPS; slot < end; slot++) {
      if (this.#slots.has(slot)) return this.#origin + slot * this.slotMs;
    }
    for (const slot of this.#slots.keys()) if (slot < first) first = slot;
    return this.#origin + first * this.slotMs;
  }

  /** The items due by `now`, earliest first, at most `max` of them. They leave the schedule. */
  takeDue(now: number, max = Infinity): T[] {
    const out: T[] = [];
    const overdue = this.#overdue;
    let i = 0;
    for (; i < overdue.length && out.length < max; i++) this.#take(overdue[i][0], overdue[i][1], out);
    this.#overdue = i < overdue.length ? overdue.slice(i) : [];
    const last = Math.floor((now - this.#originFor(now)) / this.slotMs); // slots whose time has come
    if (this.#slots.size === 0) {
      this.#next = Math.max(this.#next, last + 1); // nothing filed: skip the empty stretch at once
      return out;
    }
    // A stretch longer than there are filed slots (the first take, a thread that was held, a sweep once a
    // second over slots of a millisecond): visit the filed slots that are due, in order, instead of
    // stepping through empty ones.
    const due = last - this.#next > this.#slots.size
      ? [...this.#slots.keys()].filter((slot) => slot <= last).sort((a, b) => a - b)
      : undefined;
    if (due) {
      for (const slot of due) {
        if (out.length >= max) return out; // the rest stay filed; #next is at the first of them
        this.#next = slot + 1;
        this.#takeSlot(slot, out, max);
      }
      this.#next = Math.max(this.#next, last + 1);
      return out;
    }
    for (; this.#next <= last && out.length < max; this.#next++) this.#takeSlot(this.#next, out, max);
    return out;
  }

  /** Moves a slot's items out (up to `max` in all), the ones over the limit to the overdue list. */
  #takeSlot(slot: number, out: T[], max: number): void {
    const items = this.#slots.get(slot);
    if (!items) return;
    this.#slots.delete(slot);
    let k = 0;
    for (; k < items.length && out.length < max; k++) this.#take(items[k], slot, out);
    for (; k < items.length; k++) {
      if (this.#slotOf.get(items[k]) === slot) this.#overdue.push([items[k], slot]);
    }
  }

  #take(item: T, slot: number, out: T[]): void {
    if (this.#slotOf.get(item) !== slot) return; // re-filed or removed since
    this.#slotOf.delete(item);
    out.push(item);
  }

  /** The slot an instant belongs to, rounded up: an item is never taken before its time. */
  #slotFor(at: number): number {
    return Math.ceil((at - this.#originFor(at)) / this.slotMs);
  }

  #originFor(time: number): number {
    if (Number.isNaN(this.#origin)) this.#origin = Math.floor(time / this.slotMs) * this.slotMs;
    return this.#origin;
  }
}
