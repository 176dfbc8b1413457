import assert from "node:assert/strict";
import { DueSchedule } from "./due_schedule.ts";

const T0 = 1_733_000_000_000; // a wall-clock time, as the media plane's clock gives

Deno.test("DueSchedule: an item is taken once its time has come, never before", () => {
  const s = new DueSchedule<string>(5);
  s.schedule("a", T0 + 12);
  s.schedule("b", T0 + 3);
  assert.deepEqual(s.takeDue(T0), []);
  assert.deepEqual(s.takeDue(T0 + 4), []); // b's slot ends at +5: rounded up, never early
  assert.deepEqual(s.takeDue(T0 + 5), ["b"]);
  assert.deepEqual(s.takeDue(T0 + 14), []);
  assert.deepEqual(s.takeDue(T0 + 15), ["a"]);
  assert.deepEqual(s.size, 0);
  assert.deepEqual(s.takeDue(T0 + 1_000_000), []);
});

Deno.test("DueSchedule: re-filing moves an item, expedite only brings it forward, remove forgets it", () => {
  const s = new DueSchedule<string>(5);
  s.schedule("a", T0 + 100);
  s.schedule("a", T0 + 50); // replaces
  s.expedite("a", T0 + 80); // later: ignored
  s.schedule("b", T0 + 100);
  s.expedite("b", T0 + 20); // sooner: moved
  s.schedule("c", T0 + 30);
  s.remove("c");
  assert.deepEqual(s.size, 2);
  assert.deepEqual(s.takeDue(T0 + 40), ["b"]);
  assert.deepEqual(s.takeDue(T0 + 99), ["a"]);
  assert.deepEqual(s.takeDue(T0 + 200), []); // a's and b's stale filings at +100 are not taken again
});

Deno.test("DueSchedule: a take stops at its limit and the rest come first next time, earliest first", () => {
  const s = new DueSchedule<number>(5);
  for (let i = 0; i < 10; i++) s.schedule(i, T0 + (i < 6 ? 5 : 10));
  assert.deepEqual(s.takeDue(T0 + 10, 4), [0, 1, 2, 3]);
  s.schedule(99, T0 + 10); // filed meanwhile: after the overdue ones
  s.remove(5);
  assert.deepEqual(s.takeDue(T0 + 10, 4), [4, 6, 7, 8]);
  assert.deepEqual(s.takeDue(T0 + 10), [9, 99]);
});

Deno.test("DueSchedule: an item filed in the past or in a slot already taken is due in the next slot", () => {
  const s = new DueSchedule<string>(5);
  s.schedule("a", T0);
  assert.deepEqual(s.takeDue(T0 + 20), ["a"]);
  s.schedule("b", T0 + 10); // its slot was passed by the take above
  s.schedule("c", T0 - 1_000);
  assert.deepEqual(s.takeDue(T0 + 20), []); // not again in a slot already taken: no loop within a take
  assert.deepEqual(s.takeDue(T0 + 25), ["b", "c"]);
});

Deno.test("DueSchedule: a long gap is crossed without stepping through every empty slot", () => {
  const s = new DueSchedule<string>(1);
  s.schedule("a", T0);
  assert.deepEqual(s.takeDue(T0), ["a"]);
  // Ten billion empty slots each way: stepped one by one, these takes would not return.
  s.schedule("b", T0 + 1e10);
  s.schedule("c", T0 + 2e10);
  assert.deepEqual(s.takeDue(T0 + 1.5e10), ["b"]);
  assert.deepEqual(s.takeDue(T0 + 3e10), ["c"]);
});

Deno.test("DueSchedule: a take across a stretch longer than the filed slots keeps time order and its limit", () => {
  // Slots of 1 ms taken once a second (as the negotiator and the session registry do): 100 items at
  // distinct times, fewer filed slots than the stretch, taken 30 at a time.
  const s = new DueSchedule<number>(1);
  const at = new Map(Array.from({ length: 100 }, (_, i) => [i, T0 + 1 + ((i * 37) % 100) * 9]));
  for (const [i, t] of at) s.schedule(i, t);
  const inTimeOrder = (ids: number[]) => ids.sort((a, b) => at.get(a)! - at.get(b)!);
  const all = inTimeOrder([...at.keys()]);
  assert.deepEqual(s.takeDue(T0 + 1_000, 30), all.slice(0, 30));
  at.set(1_000, T0 + 500); // filed meanwhile, among the due ones
  s.schedule(1_000, T0 + 500);
  assert.deepEqual(s.takeDue(T0 + 1_000, 30), inTimeOrder([...all.slice(30), 1_000]).slice(0, 30));
  assert.equal(s.takeDue(T0 + 1_000).length, 41, "the rest, each once");
  assert.equal(s.size, 0);
});

Deno.test("DueSchedule: nextDueAt is the first filed slot's time, near or far, and -Infinity while some are overdue", () => {
  const s = new DueSchedule<string>(5);
  assert.equal(s.nextDueAt(), Infinity);
  s.schedule("far", T0 + 20_000);
  assert.equal(s.nextDueAt(), T0 + 20_000);
  s.schedule("near", T0 + 12);
  assert.equal(s.nextDueAt(), T0 + 15); // its slot's end: when takeDue gives it
  assert.deepEqual(s.takeDue(T0 + 15), ["near"]);
  assert.equal(s.nextDueAt(), T0 + 20_000); // beyond the first slots stepped through one by one
  // Many filed slots: the first is found by stepping from the first untaken slot.
  for (let i = 0; i < 500; i++) s.schedule(`item ${i}`, T0 + 1_000 + i * 10);
  assert.equal(s.nextDueAt(), T0 + 1_000);
  assert.equal(s.takeDue(T0 + 1_100).length, 11);
  assert.equal(s.nextDueAt(), T0 + 1_110);
  // Over a take's limit: the rest stay filed in their slots, already due.
  assert.equal(s.takeDue(T0 + 5_000, 3).length, 3);
  assert.equal(s.nextDueAt(), T0 + 1_140);
  s.takeDue(T0 + 5_000);
  assert.equal(s.nextDueAt(), T0 + 5_010);
  for (const item of [...Array(500).keys()].map((i) => `item ${i}`)) s.remove(item);
  s.takeDue(T0 + 19_000);
  assert.equal(s.nextDueAt(), T0 + 20_000);
  // Over the limit within one slot: the rest are overdue, due at once.
  for (const item of ["x", "y", "z"]) s.schedule(item, T0 + 19_100);
  assert.deepEqual(s.takeDue(T0 + 19_100, 1), ["x"]);
  assert.equal(s.nextDueAt(), -Infinity);
  assert.deepEqual(s.takeDue(T0 + 19_105), ["y", "z"]);
  assert.equal(s.nextDueAt(), T0 + 20_000);
});
