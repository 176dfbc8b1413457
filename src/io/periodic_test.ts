import assert from "node:assert/strict";
import { ManualClock } from "./clock.ts";
import { everyOnEventLoop, Periodic } from "./periodic.ts";
import { internalErrors } from "../telemetry/catalog.ts";

Deno.test("Periodic: runs after its period, or after the delay its work returns; never sooner than its period", () => {
  const clock = new ManualClock(0);
  let next: number | undefined;
  const task = new Periodic(5, () => next, () => {}, () => clock.now());
  assert.equal(task.due, 5);
  task.run(clock.advance(5));
  assert.equal(task.due, 10); // no delay returned: one period on
  next = 1_000;
  task.run(clock.advance(5));
  assert.equal(task.due, 1_010);
  next = 0; // something is still due: not before a period has passed
  task.run(clock.advance(1_000));
  assert.equal(task.due, 1_015);
  next = undefined;
  task.run(clock.advance(100)); // late by more than a period: no run to catch up
  assert.equal(task.due, 1_115);
});

Deno.test("Periodic: runWithin brings the next run forward, never later and never within a period of the last run", () => {
  const clock = new ManualClock(0);
  const sooner: number[] = [];
  const task = new Periodic(5, () => 10_000, (due) => sooner.push(due), () => clock.now());
  task.run(clock.advance(5));
  assert.equal(task.due, 10_005);
  clock.advance(1);
  task.runWithin(0);
  assert.equal(task.due, 10); // a period after the last run
  task.runWithin(100);
  assert.equal(task.due, 10); // later: ignored
  clock.advance(20);
  task.runWithin(3);
  assert.equal(task.due, 10); // still the sooner one
  assert.deepEqual(sooner, [10]);
  task.stop();
  task.runWithin(0);
  assert.deepEqual(sooner, [10], "a stopped task is not brought forward");
});

Deno.test("Periodic: a throwing task is counted each time and runs again at its next time", () => {
  const clock = new ManualClock(0);
  const task = new Periodic(
    5,
    () => {
      throw new Error("a failing task");
    },
    () => {},
    () => clock.now(),
  );
  const before = internalErrors.value({ where: "periodic_task" });
  task.run(clock.advance(5));
  task.run(clock.advance(5));
  assert.equal(internalErrors.value({ where: "periodic_task" }) - before, 2);
  assert.equal(task.due, 15);
});

Deno.test("everyOnEventLoop: sleeps for the delay its work returns, wakes early when asked, and stops", async () => {
  const runs: number[] = [];
  const started = performance.now();
  const task = everyOnEventLoop(5, () => {
    runs.push(performance.now() - started);
    return 10_000;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(runs.length, 1, `runs at ${runs.map((t) => t.toFixed(1))} ms`);
  task.runWithin(0);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(runs.length, 2, "runWithin woke it");
  assert.ok(runs[1] >= 100, `second run at ${runs[1].toFixed(1)} ms`);
  task.stop();
  task.runWithin(0);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(runs.length, 2, "a stopped task does not run");
});
