import assert from "node:assert/strict";
import { forEachFrame, FrameBatch } from "./frame_batch.ts";

Deno.test("FrameBatch: frames of several connections come out in order, with their ids, past the first buffer's size", () => {
  const batch = new FrameBatch();
  assert.ok(batch.empty);
  const sent: Array<[number, number[]]> = [];
  for (let i = 0; i < 40; i++) {
    const frame = new Uint8Array(i === 7 ? 0 : 1200).fill(i);
    const connection = i % 3 === 0 ? 0xfffffffe : i;
    batch.add(connection, frame);
    sent.push([connection, [...frame.subarray(0, 2)]]);
  }
  const bytes = batch.take();
  assert.ok(batch.empty);
  const got: Array<[number, number[]]> = [];
  forEachFrame(bytes, (connection, frame) => got.push([connection, [...frame.subarray(0, 2)]]));
  assert.deepEqual(got, sent);
  assert.equal(bytes.length, 39 * 1206 + 6);
  // A batch cut short yields its whole frames only.
  const cut: number[] = [];
  forEachFrame(bytes.subarray(0, 1206 + 10), (connection) => cut.push(connection));
  assert.deepEqual(cut, [0xfffffffe]);
});
