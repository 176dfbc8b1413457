import assert from "node:assert/strict";
import { ClaimBoard, STALE } from "./claims.ts";

Deno.test("a slot is claimed once; later claimants see the owner; an ended session's claim is stale", () => {
  const board = ClaimBoard.create(4);
  const t = board.allocate();
  assert.equal(board.owner(t), undefined);
  assert.equal(board.claim(t, 2), 2);
  assert.equal(board.claim(t, 0), 2, "the second claimant learns the owner");
  assert.equal(board.owner(t), 2);
  board.release(t);
  assert.equal(board.claim(t, 1), STALE, "a claim for the ended session does not take the slot");
  const next = board.allocate();
  assert.equal(next.slot, t.slot, "the slot is reused");
  assert.notEqual(next.generation, t.generation);
  assert.equal(board.owner(t), STALE);
  assert.equal(board.owner(next), undefined);
  assert.equal(board.claim(next, 0), 0, "shard 0 is a valid owner");
});

Deno.test("allocation is bounded by the board's capacity", () => {
  const board = ClaimBoard.create(2);
  const a = board.allocate();
  board.allocate();
  assert.throws(() => board.allocate(), RangeError);
  board.release(a);
  assert.equal(board.allocate().slot, a.slot);
});

Deno.test("workers racing for the same slots: each slot has exactly one owner", async () => {
  const SLOTS = 5_000;
  const board = ClaimBoard.create(SLOTS);
  const tickets = Array.from({ length: SLOTS }, () => board.allocate());
  const url = new URL("./claims.ts", import.meta.url).href;
  const code = `
    import { ClaimBoard } from ${JSON.stringify(url)};
    self.onmessage = (ev) => {
      const { buffer, tickets, shard, go } = ev.data;
      const board = new ClaimBoard(buffer);
      // Start together: every worker waits for the same signal, so the claims really race.
      Atomics.wait(new Int32Array(go), 0, 0);
      const won = [];
      for (const t of tickets) if (board.claim(t, shard) === shard) won.push(t.slot);
      self.postMessage(won);
    };`;
  const blob = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  const shards = [1, 2, 3];
  const workers = shards.map(() => new Worker(blob, { type: "module" }));
  const go = new SharedArrayBuffer(4);
  try {
    const done = workers.map((w, i) =>
      new Promise<number[]>((resolve) => {
        w.onmessage = (ev) => resolve(ev.data);
        w.postMessage({ buffer: board.buffer, tickets, shard: shards[i], go });
      })
    );
    await new Promise((r) => setTimeout(r, 500)); // every worker is waiting by now
    Atomics.store(new Int32Array(go), 0, 1);
    Atomics.notify(new Int32Array(go), 0);
    const results = await Promise.all(done);
    const winners = new Map<number, number>();
    for (const won of results) for (const slot of won) winners.set(slot, (winners.get(slot) ?? 0) + 1);
    assert.equal(winners.size, SLOTS, "every slot was won");
    assert.ok([...winners.values()].every((n) => n === 1), "no slot was won twice");
    for (const [i, won] of results.entries()) {
      for (const slot of won) assert.equal(board.owner(tickets[slot]), shards[i]);
    }
  } finally {
    for (const w of workers) w.terminate();
    URL.revokeObjectURL(blob);
  }
});
