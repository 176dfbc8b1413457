// Time as the media plane reads it: injected, so sessions and agents can be driven by tests without
// waiting (a ManualClock), and by the real clock in xRTC.
export interface Clock {
  /** Milliseconds, as Date.now(). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Runs `task` every `ms` on the event loop until the returned function is called (the periodic work of
 * a thread whose backend has no wait of its own to run it from: DatagramBackend.every). */
export function everyOnEventLoop(ms: number, task: () => void): () => void {
  const timer = setInterval(task, ms);
  return () => clearInterval(timer);
}

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
