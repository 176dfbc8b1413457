import assert from "node:assert/strict";
import { linkSignals } from "./signals.ts";

Deno.test("a linked signal aborts with its first source's reason, and not after dispose", () => {
  const a = new AbortController(), b = new AbortController();
  const first = linkSignals(a.signal, b.signal);
  b.abort("b went");
  assert.equal(first.signal.aborted, true);
  assert.equal(first.signal.reason, "b went");

  const c = new AbortController();
  const second = linkSignals(c.signal, a.signal);
  second.dispose();
  c.abort("late");
  assert.equal(second.signal.aborted, false, "unhooked from its sources");

  const third = linkSignals(b.signal);
  assert.equal(third.signal.aborted, true, "a source already aborted");
});

Deno.test("10,000 linked and disposed signals leave no listener on a long-lived source", () => {
  const shutdown = new AbortController();
  let calls = 0;
  const original = shutdown.signal.addEventListener.bind(shutdown.signal);
  const live = new Set<unknown>();
  shutdown.signal.addEventListener = ((type: string, fn: EventListener, o?: AddEventListenerOptions) => {
    calls++;
    live.add(fn);
    original(type, fn, o);
  }) as typeof shutdown.signal.addEventListener;
  const originalRemove = shutdown.signal.removeEventListener.bind(shutdown.signal);
  shutdown.signal.removeEventListener = ((type: string, fn: EventListener) => {
    live.delete(fn);
    originalRemove(type, fn);
  }) as typeof shutdown.signal.removeEventListener;
  for (let i = 0; i < 10_000; i++) linkSignals(new AbortController().signal, shutdown.signal).dispose();
  assert.equal(calls, 10_000);
  assert.equal(live.size, 0);
});
