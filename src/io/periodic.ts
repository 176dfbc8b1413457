// Periodic work on a thread that forwards media (the media plane's maintenance and check pacing). A task
// runs at most every `ms`, and says when it next has something to do: a thread whose sessions have
// nothing due sleeps until then instead of waking every few milliseconds. An event that files work
// sooner (a session goes live, media resumes) brings the next run forward. Each run is guarded: a
// throwing task is counted and runs again at its next time.
import { internalErrors } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

const PERIODIC_TASK_ERRORS = internalErrors.with({ where: "periodic_task" });

/** A task's work: returns the milliseconds until it next has something to do, or nothing to run again
 * after its period. It never runs sooner than its period after a run. */
export type PeriodicWork = () => number | void;

/** A task being run (DatagramBackend.every). */
export interface PeriodicTask {
  /** Runs the task no later than `delayMs` from now, nor sooner than its period after its last run:
   * work was filed that falls due before its next run. */
  runWithin(delayMs: number): void;
  stop(): void;
}

/** One task's schedule and guard, for a backend that runs it from its own wait. Times are `now()`'s
 * (performance.now(); a test's manual clock). */
export class Periodic implements PeriodicTask {
  /** When it runs next. */
  due: number;
  active = true;
  /** Its last run, so that runWithin never runs it sooner than its period after it. */
  #ranAt = -Infinity;
  /** It has thrown once (logged then; counted every time). */
  #failed = false;

  /** `onSooner` hears of each move of the next run to an earlier time. */
  constructor(
    readonly ms: number,
    readonly work: PeriodicWork,
    private readonly onSooner: (due: number) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.due = now() + ms;
  }

  /** Runs the work (its time has come) and files the next run: after the delay it returned, at least its
   * period on; a run that was late by more than a period is not repeated to catch up. */
  run(now: number): void {
    let next: number | void = undefined;
    try {
      next = this.work();
    } catch (e) {
      PERIODIC_TASK_ERRORS.inc();
      // Logged once per task: one that keeps failing would otherwise log hundreds of lines a second.
      if (!this.#failed) log("error", "periodic_task_error", { every_ms: this.ms, error: e });
      this.#failed = true;
    }
    this.#ranAt = now;
    if (typeof next === "number") this.due = now + Math.max(this.ms, next);
    else this.due = this.due + this.ms > now ? this.due + this.ms : now + this.ms;
  }

  runWithin(delayMs: number): void {
    if (!this.active) return;
    const at = Math.max(this.now() + delayMs, this.#ranAt + this.ms);
    if (at >= this.due) return;
    this.due = at;
    this.onSooner(at);
  }

  stop(): void {
    this.active = false;
  }
}

/** Runs `work` on the event loop's timers (the periodic work of a thread whose backend has no wait of its
 * own to run it from: DatagramBackend.every). */
export function everyOnEventLoop(ms: number, work: PeriodicWork): PeriodicTask {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (due: number) => {
    clearTimeout(timer);
    if (due === Infinity) return; // nothing to do until runWithin
    timer = setTimeout(() => {
      task.run(performance.now());
      if (task.active) arm(task.due);
    }, Math.max(0, Math.ceil(due - performance.now()))); // whole milliseconds, rounded up: never early
  };
  const task = new Periodic(ms, work, arm);
  arm(task.due);
  return {
    runWithin: (delayMs) => task.runWithin(delayMs),
    stop: () => {
      task.stop();
      clearTimeout(timer);
    },
  };
}
