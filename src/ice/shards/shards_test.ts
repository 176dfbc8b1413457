import assert from "node:assert/strict";
import { restoredOwner } from "./shards.ts";
import type { LiveState } from "../session/media_session.ts";

const live = (shard: number, port: string): LiveState => ({
  shard,
  paths: [{ port, host: "198.18.0.9", remotePort: 40000, validated: true, selected: true }],
});
const ONE = { shards: 1, mainServesUdp: true, udpPorts: ["ice_udp"] };
const TWO_WORKERS = { shards: 3, mainServesUdp: false, udpPorts: ["ice_udp"] };

Deno.test("a restored session resumes on the shard that owned it when that shard still serves its port", () => {
  assert.equal(restoredOwner(live(2, "ice_udp"), TWO_WORKERS), 2);
  assert.equal(restoredOwner(live(0, "ice_udp"), ONE), 0);
  assert.equal(restoredOwner(live(0, "ice_tcp"), TWO_WORKERS), 0, "ICE-TCP stays on the main thread");
});

Deno.test("workers changed across the restart: the session goes to a shard that serves its port", () => {
  assert.equal(restoredOwner(live(0, "ice_udp"), TWO_WORKERS), 1, "was the one shard, workers serve UDP now");
  assert.equal(restoredOwner(live(5, "ice_udp"), TWO_WORKERS), 1, "its worker is gone");
  assert.equal(restoredOwner(live(2, "ice_udp"), ONE), 0, "back to one shard");
  assert.equal(restoredOwner(live(4, "ice_tcp"), TWO_WORKERS), 0);
});
