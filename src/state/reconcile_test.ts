// Planning a restore: from nothing (a start) and from what a process taking over already holds (the
// catch-up after its predecessor exited).
import assert from "node:assert/strict";
import { type Held, planRestore } from "./reconcile.ts";
import { handleRecord, sessionRecord } from "./test_support.ts";

function held(...entries: Array<[string, string[]]>): Held {
  return new Map(entries.map(([s, hs]) => [s, new Map(hs.map((h) => [h, handleRecord(s, h)]))]));
}

Deno.test("a start restores every recorded session and handle; orphan handles are left out", () => {
  const plan = planRestore(
    new Map(),
    [sessionRecord("1"), sessionRecord("2")],
    [handleRecord("1", "10"), handleRecord("2", "20"), handleRecord("3", "30")],
  );
  assert.deepEqual(plan.sessions.map((s) => s.id), ["1", "2"]);
  assert.deepEqual(plan.handles.map((h) => `${h.session}/${h.id}`), ["1/10", "2/20"]);
  assert.deepEqual([plan.dropSessions, plan.dropHandles, plan.replaced], [[], [], 0]);
});

Deno.test("catching up: what ended meanwhile goes, what began is restored, the unchanged is kept as held", () => {
  const plan = planRestore(
    held(["1", ["10", "11"]], ["2", ["20"]]),
    [sessionRecord("1"), sessionRecord("3")],
    [handleRecord("1", "10"), handleRecord("1", "12"), handleRecord("3", "30")],
  );
  assert.deepEqual(plan.dropSessions, ["2"], "destroyed by the process before");
  assert.deepEqual(plan.dropHandles, [{ session: "1", id: "11" }], "detached meanwhile");
  assert.deepEqual(plan.sessions.map((s) => s.id), ["3"]);
  assert.deepEqual(plan.handles.map((h) => `${h.session}/${h.id}`), ["1/12", "3/30"], "1/10 kept as held");
  assert.equal(plan.replaced, 0);
});

Deno.test("catching up: a handle whose negotiation changed (an ICE restart) is restored again; live state alone does not count", () => {
  const restarted = handleRecord("1", "10");
  if (restarted.spec?.mode !== "half") throw new Error("a half-proxy record");
  restarted.spec.previousFacing = restarted.spec.clientFacing;
  restarted.spec.clientFacing = { ufrag: "xr0002efgh", pwd: "after-the-ice-restart-password" };
  const movedOnly = handleRecord("1", "11");
  movedOnly.live!.paths[0].remotePort = 50_002; // the old process saw a new port: this one's view is newer
  const otherTicket = handleRecord("1", "12");
  otherTicket.spec!.ticket = { slot: 99, generation: 1 }; // each process allocates its own tickets

  const plan = planRestore(held(["1", ["10", "11", "12"]]), [sessionRecord("1")], [
    restarted,
    movedOnly,
    otherTicket,
  ]);
  assert.deepEqual(plan.dropHandles, [{ session: "1", id: "10" }]);
  assert.deepEqual(plan.handles, [restarted]);
  assert.equal(plan.replaced, 1);
});
