// Janus signalling and its session registry without sockets: what is kept for a request, and when it
// takes effect. Janus's replies are written by the tests as Janus writes them.
import assert from "node:assert/strict";
import { type ClientContext, JanusSignalling, type JsonObject } from "./janus.ts";
import { BackendPool } from "./backends.ts";
import { defaultOptions } from "../config/load.ts";
import { ManualClock } from "../io/clock.ts";
import { ClaimBoard } from "../ice/shards/claims.ts";
import { makeClientCandidates, Negotiator } from "../ice/negotiation/negotiator.ts";
import type { Limits } from "../config/types.ts";

const OFFER = Deno.readTextFileSync(new URL("../../tests/fixtures/chromium-offer.sdp", import.meta.url));
const ANSWER = Deno.readTextFileSync(new URL("../../tests/fixtures/janus-answer.sdp", import.meta.url));
const pool = BackendPool.fromUrl("http://127.0.0.1:1", {
  intervalMs: 1000,
  timeoutMs: 100,
  fall: 1,
  rise: 1,
});
const backend = pool.backends[0];

function setup(o: { limits?: Partial<Limits>; maxSessions?: number; reclaimMs?: number } = {}) {
  const options = defaultOptions();
  const clock = new ManualClock();
  const told: string[] = [];
  const ended: string[] = [];
  const negotiator = new Negotiator({
    sink: { open() {}, restore() {}, update() {}, end: (id) => void ended.push(id) },
    claims: ClaimBoard.create(o.maxSessions ?? 100),
    clientCandidates: makeClientCandidates([{ proto: "udp", ips: ["198.19.0.1"], port: 6001 }]),
    consentTimeoutMs: 30_000,
    maxSessions: o.maxSessions ?? 100,
    clock,
    autoSweep: false,
  });
  const sig = new JanusSignalling(negotiator, {
    limits: { ...options.limits, ...o.limits },
    timers: { ...options.janus, reclaimTimeoutMs: o.reclaimMs ?? 0 },
    clock,
    tellJanus: (_b, path, request) => void told.push(`${request} ${path}`),
  });
  return { sig, clock, told, ended, negotiator };
}

const ctx = (client = "198.19.0.2", extra: Partial<ClientContext> = {}): ClientContext => ({
  protocol: "http",
  client,
  route: { icedirect: false, icetcp: false },
  pool,
  ...extra,
});

/** A request, and Janus's reply to it; returns xRTC's verdict. */
function exchange(sig: JanusSignalling, msg: JsonObject, c: ClientContext, reply?: JsonObject) {
  const v = sig.fromClient(msg, c);
  if (v.action === "forward" && reply) sig.replied(v.pending, reply, backend);
  return v;
}

function open(sig: JanusSignalling, sid: number, hid: number, c = ctx()): void {
  exchange(sig, { janus: "create", transaction: "c" }, c, {
    janus: "success",
    transaction: "c",
    data: { id: sid },
  });
  // Over HTTP the session id is in the path; over WebSocket in the message.
  const attach: JsonObject = { janus: "attach", transaction: "a", plugin: "janus.plugin.echotest" };
  if (c.protocol === "ws") attach.session_id = sid;
  exchange(sig, attach, c.protocol === "ws" ? c : { ...c, sessionId: String(sid) }, {
    janus: "success",
    transaction: "a",
    data: { id: hid },
  });
}

const offer = () => ({ janus: "message", transaction: "m", body: {}, jsep: { type: "offer", sdp: OFFER } });

Deno.test("offers to ids Janus never issued are refused with Janus's codes, and nothing is kept", () => {
  const s = setup();
  const big = OFFER + "a=x-padding:" + "p".repeat(250_000) + "\r\n";
  for (let i = 0; i < 3_300; i++) {
    const v = s.sig.fromClient(
      { ...offer(), jsep: { type: "offer", sdp: big } },
      ctx("198.19.0.2", { sessionId: String(1_000_000 + i), handleId: "7" }),
    );
    assert.equal(v.action, "reply");
    if (v.action === "reply") assert.equal((v.reply.error as JsonObject).code, 458);
  }
  assert.equal(s.sig.sessions.size, 0);
  assert.equal(s.sig.sessions.handleCount, 0);
  assert.equal(s.negotiator.committed, 0, "no capacity was taken");
  assert.equal(s.sig.sessions.trackedClients, 0, "no per-client state either");
  open(s.sig, 5, 6);
  const v = s.sig.fromClient(offer(), ctx("198.19.0.2", { sessionId: "5", handleId: "999" }));
  assert.equal(
    v.action === "reply" && (v.reply.error as JsonObject).code,
    459,
    "a handle Janus did not issue",
  );
  // Over WebSocket the ids are in the message: a 1 MB string of digits is not an id.
  const ws = s.sig.fromClient(
    { janus: "keepalive", transaction: "k", session_id: "9".repeat(1_000_000) },
    ctx("198.19.0.2", { protocol: "ws" }),
  );
  assert.equal(ws.action, "reply");
});

Deno.test("capacity is reserved when checked: three offers with two slots get two forwards and one clean error", () => {
  const s = setup({ maxSessions: 2 });
  for (const id of [1, 2, 3]) open(s.sig, id, 10 + id, ctx("198.19.0.2", { protocol: "ws" }));
  const verdicts = [1, 2, 3].map((id) =>
    s.sig.fromClient(
      { ...offer(), session_id: id, handle_id: 10 + id },
      ctx("198.19.0.2", { protocol: "ws" }),
    )
  );
  assert.deepEqual(verdicts.map((v) => v.action), ["forward", "forward", "reply"]);
  const third = verdicts[2];
  assert.equal(third.action === "reply" && third.status, 503);
  // Janus answers the two: both sessions are made, nothing throws.
  for (const id of [1, 2]) {
    const ev: JsonObject = {
      janus: "event",
      session_id: id,
      sender: 10 + id,
      transaction: "m",
      jsep: { type: "answer", sdp: ANSWER },
    };
    assert.equal(s.sig.fromJanus(ev, {}), "changed");
  }
  assert.equal(s.negotiator.sessionCount, 2);
});

Deno.test("hangup, detach and destroy take effect only when Janus says success", () => {
  const s = setup();
  open(s.sig, 5, 6);
  exchange(s.sig, offer(), ctx("198.19.0.2", { sessionId: "5", handleId: "6" }));
  s.sig.fromJanus({ janus: "event", session_id: 5, sender: 6, jsep: { type: "answer", sdp: ANSWER } }, {});
  assert.equal(s.negotiator.sessionCount, 1);
  const refused = {
    janus: "error",
    transaction: "h",
    error: { code: 403, reason: "Unauthorized request (wrong or missing secret/token)" },
  };
  exchange(
    s.sig,
    { janus: "hangup", transaction: "h" },
    ctx("198.19.0.66", { sessionId: "5", handleId: "6" }),
    refused,
  );
  exchange(
    s.sig,
    { janus: "detach", transaction: "h" },
    ctx("198.19.0.66", { sessionId: "5", handleId: "6" }),
    refused,
  );
  exchange(s.sig, { janus: "destroy", transaction: "h" }, ctx("198.19.0.66", { sessionId: "5" }), refused);
  assert.equal(s.negotiator.sessionCount, 1, "Janus refused: the ICE session lives");
  assert.equal(s.sig.sessions.size, 1);
  exchange(
    s.sig,
    { janus: "hangup", transaction: "h" },
    ctx("198.19.0.2", { sessionId: "5", handleId: "6" }),
    { janus: "success", transaction: "h" },
  );
  assert.equal(s.negotiator.sessionCount, 0, "Janus agreed: it ends");
  assert.ok(s.sig.sessions.handle("5", "6"), "a hangup keeps the handle");
  exchange(s.sig, { janus: "destroy", transaction: "d" }, ctx("198.19.0.2", { sessionId: "5" }), {
    janus: "success",
    transaction: "d",
  });
  assert.equal(s.sig.sessions.size, 0);
});

Deno.test("per-address limits: sessions per address, creates per second, ICE sessions per address; others unaffected", () => {
  const s = setup({
    limits: { janusSessionsPerAddress: 3, janusSessionRatePerAddress: 5, iceSessionsPerAddress: 1 },
  });
  const a = ctx("198.19.0.20");
  for (let i = 0; i < 3; i++) open(s.sig, 100 + i, 200 + i, a);
  const over = s.sig.fromClient({ janus: "create", transaction: "c" }, a);
  assert.equal(over.action === "reply" && over.status, 429, "the fourth session from one address");
  assert.equal(over.action === "reply" && over.retryAfter, 10);
  const other = s.sig.fromClient({ janus: "create", transaction: "c" }, ctx("198.19.0.21"));
  assert.equal(other.action, "forward", "another address is not affected");
  // Rate: a burst of 5, refilled at 5 per second (each create refused by Janus, so the sessions limit
  // stays out of the way).
  const b = ctx("198.19.0.22");
  const failed = { janus: "error", transaction: "c", error: { code: 500, reason: "x" } };
  const burst = Array.from(
    { length: 6 },
    () => exchange(s.sig, { janus: "create", transaction: "c" }, b, failed),
  );
  assert.deepEqual(burst.map((v) => v.action), [
    "forward",
    "forward",
    "forward",
    "forward",
    "forward",
    "reply",
  ]);
  const limited = burst[5];
  assert.equal(limited.action === "reply" && limited.retryAfter, 1);
  s.clock.advance(1_000);
  assert.equal(
    s.sig.fromClient({ janus: "create", transaction: "c" }, b).action,
    "forward",
    "refilled after a second",
  );
  // ICE sessions: one per address here.
  assert.equal(exchange(s.sig, offer(), { ...a, sessionId: "100", handleId: "200" }).action, "forward");
  const second = s.sig.fromClient(offer(), { ...a, sessionId: "101", handleId: "201" });
  assert.equal(second.action === "reply" && second.status, 429);
});

Deno.test("one eviction rule: destroy, Janus's timeout, WebSocket close after the reclaim window, idleness; Janus is told", () => {
  const s = setup({ reclaimMs: 5_000 });
  const token = {};
  open(s.sig, 1, 11);
  open(s.sig, 2, 12, ctx("198.19.0.2", { protocol: "ws", conn: token }));
  open(s.sig, 3, 13);
  s.sig.fromJanus({ janus: "timeout", session_id: 3 }, {});
  assert.equal(s.sig.sessions.get("3"), undefined, "Janus's timeout");
  s.sig.sessions.connectionClosed(token);
  assert.ok(s.sig.sessions.get("2"), "kept for the reclaim window");
  s.clock.advance(5_000);
  s.sig.sessions.sweep();
  assert.equal(s.sig.sessions.get("2"), undefined, "gone after it");
  // Session 1 is kept alive by its client, then abandoned.
  for (let i = 0; i < 3; i++) {
    s.clock.advance(30_000);
    s.sig.fromClient({ janus: "keepalive", transaction: "k" }, ctx("198.19.0.2", { sessionId: "1" }));
    s.sig.sessions.sweep();
  }
  assert.ok(s.sig.sessions.get("1"));
  s.clock.advance(61_000);
  s.sig.sessions.sweep();
  assert.equal(s.sig.sessions.size, 0);
  assert.deepEqual(s.told, ["destroy /1"], "Janus is told to destroy the abandoned session");
  assert.equal(s.sig.sessions.trackedClients, 0, "and every per-client entry is gone");
});

Deno.test("a reload that sets Janus's session timeout applies to sessions that had none", () => {
  const s = setup();
  const timers = { ...defaultOptions().janus, reclaimTimeoutMs: 0 };
  s.sig.sessions.update(defaultOptions().limits, { ...timers, sessionTimeoutMs: 0 });
  open(s.sig, 1, 11);
  s.clock.advance(3_600_000);
  s.sig.sessions.sweep();
  assert.ok(s.sig.sessions.get("1"), "no session timeout: never idle");
  open(s.sig, 2, 12);
  s.sig.sessions.update(defaultOptions().limits, { ...timers, sessionTimeoutMs: 60_000 });
  s.clock.advance(1);
  s.sig.sessions.sweep();
  assert.equal(s.sig.sessions.get("1"), undefined, "idle for an hour: gone at the next sweep");
  assert.ok(s.sig.sessions.get("2"), "just created: kept");
  s.clock.advance(60_000);
  s.sig.sessions.sweep();
  assert.equal(s.sig.sessions.size, 0);
  assert.deepEqual(s.told, ["destroy /1", "destroy /2"]);
});

Deno.test("a shard ending an ICE session on its own makes xRTC tell Janus to hang up", () => {
  const s = setup();
  open(s.sig, 5, 6);
  exchange(s.sig, offer(), ctx("198.19.0.2", { sessionId: "5", handleId: "6" }));
  s.sig.fromJanus({ janus: "event", session_id: 5, sender: 6, jsep: { type: "answer", sdp: ANSWER } }, {});
  s.negotiator.ended("5/6", "consent_expired");
  s.sig.iceSessionEnded("5/6");
  assert.deepEqual(s.told, ["hangup /5/6"]);
  assert.equal(s.negotiator.sessionCount, 0);
});
