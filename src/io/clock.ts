// Time as the media plane reads it: injected, so sessions and agents can be driven by tests without
// waiting (a ManualClock), and by the real clock in xRTC.
export interface Clock {
  /** Milliseconds, as Date.now(). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(public time = 1_000_000) {}
  now(): number {
    return this.time;
  }
  advance(ms: number): number {
    return this.time += ms;
  }
}
