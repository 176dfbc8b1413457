// The negotiator without sockets: specs recorded by a sink of the test's own, time from a manual clock.
import assert from "node:assert/strict";
import { iceCredentials, parseSdp, serializeSdp } from "../../sdp/sdp.ts";
import { ManualClock } from "../../io/clock.ts";
import { ClaimBoard } from "../shards/claims.ts";
import { HandleIce, makeClientCandidates, Negotiator, SessionLimitError } from "./negotiator.ts";
import type { SessionSpec, SpecSink, SpecUpdate } from "./spec.ts";
import { TIMING } from "../timing.ts";

const OFFER = Deno.readTextFileSync(new URL("../../../tests/fixtures/chromium-offer.sdp", import.meta.url));
const ANSWER = Deno.readTextFileSync(new URL("../../../tests/fixtures/janus-answer.sdp", import.meta.url));
const HALF = { icedirect: false, icetcp: false };

/** The same SDP with other ICE credentials (an ICE restart, RFC 8445 §9). */
function withUfrag(sdp: string, ufrag: string, pwd: string): string {
  return sdp.replace(/a=ice-ufrag:\S+/g, `a=ice-ufrag:${ufrag}`).replace(
    /a=ice-pwd:\S+/g,
    `a=ice-pwd:${pwd}`,
  );
}

class RecordingSink implements SpecSink {
  opened: SessionSpec[] = [];
  updates: Array<{ id: string; u: SpecUpdate }> = [];
  ended: Array<{ id: string; reason: string }> = [];
  open(spec: SessionSpec): void {
    this.opened.push(structuredClone(spec));
  }
  restore(spec: SessionSpec): void {
    this.opened.push(structuredClone(spec));
  }
  update(id: string, u: SpecUpdate): void {
    this.updates.push({ id, u });
  }
  end(id: string, reason: string): void {
    this.ended.push({ id, reason });
  }
}

function setup(maxSessions = 10, consentTimeoutMs = 30_000) {
  const sink = new RecordingSink();
  const clock = new ManualClock();
  const claims = ClaimBoard.create(maxSessions);
  const expired: string[] = [];
  const n = new Negotiator({
    sink,
    claims,
    clientCandidates: makeClientCandidates([{ proto: "udp", ips: ["198.19.0.1"], port: 6001 }]),
    consentTimeoutMs,
    maxSessions,
    clock,
    autoSweep: false,
    onExpired: (id) => expired.push(id),
  });
  return { sink, clock, claims, n, expired };
}

/** Client offer, Janus answer: returns the answer the client saw. */
function negotiate(n: Negotiator, h: HandleIce, offer = OFFER, answer = ANSWER): string {
  n.clientOffer(h, parseSdp(offer));
  return serializeSdp(n.janusAnswer(h, parseSdp(answer)));
}

Deno.test("capacity is reserved when a client's offer is checked, and freed when Janus refuses it", () => {
  const s = setup(1);
  const a = new HandleIce("1/1", HALF), b = new HandleIce("1/2", HALF);
  s.n.clientOffer(a, parseSdp(OFFER));
  assert.equal(s.n.committed, 1);
  assert.throws(
    () => s.n.clientOffer(b, parseSdp(OFFER)),
    SessionLimitError,
    "the slot is taken before Janus answers",
  );
  s.n.offerRefused(a);
  assert.equal(s.n.committed, 0);
  const seen = negotiate(s.n, b);
  assert.equal(s.sink.opened.length, 1);
  assert.equal(s.n.sessionCount, 1);
  assert.match(seen, /a=candidate:\S+ 1 udp \d+ 198\.19\.0\.1 6001 typ host/);
  assert.doesNotMatch(seen, /198\.18\.0\.2/, "Janus's addresses never reach the client");
});

Deno.test("renegotiation keeps the session; a client ICE restart in the half proxy changes only the client-facing credentials", () => {
  const s = setup();
  const h = new HandleIce("1/1", HALF);
  const first = iceCredentials(parseSdp(negotiate(s.n, h)))!;
  negotiate(s.n, h); // the same credentials both ways: a renegotiation
  assert.equal(s.sink.opened.length, 1);
  assert.deepEqual(s.sink.ended, []);
  const restarted = iceCredentials(
    parseSdp(negotiate(s.n, h, withUfrag(OFFER, "newclientufrag", "newclientpasswordnewclient"))),
  )!;
  assert.equal(s.sink.opened.length, 1, "no new session");
  assert.deepEqual(s.sink.ended, [], "the Janus leg is kept");
  const restart = s.sink.updates.find((x) => x.u.kind === "restart");
  assert.ok(restart, "the shards are told");
  assert.notEqual(restarted.ufrag, first.ufrag, "the client gets new credentials of xRTC's");
  assert.notEqual(restarted.pwd, first.pwd);
});

Deno.test("an ICE restart by Janus replaces the session", () => {
  const s = setup();
  const h = new HandleIce("1/1", HALF);
  negotiate(s.n, h);
  negotiate(s.n, h, OFFER, withUfrag(ANSWER, "janusnewufrag", "janusnewpasswordjanusnewpw"));
  assert.equal(s.sink.opened.length, 2);
  assert.deepEqual(s.sink.ended, [{ id: "1/1", reason: "ice_restart" }]);
  assert.equal(s.n.sessionCount, 1);
  assert.equal(s.n.committed, 1, "the old slot was freed for the new session");
});

Deno.test("a session no client ever checked ends after the consent timeout; an unanswered reservation after its timeout", () => {
  const s = setup(10, 60_000);
  const h = new HandleIce("1/1", HALF), waiting = new HandleIce("1/2", HALF);
  negotiate(s.n, h);
  s.n.clientOffer(waiting, parseSdp(OFFER));
  s.clock.advance(TIMING.reservationTimeoutMs + 1);
  s.n.sweep();
  assert.equal(s.n.committed, 1, "the reservation Janus never answered is freed");
  s.clock.advance(30_000);
  s.n.sweep();
  assert.deepEqual(s.sink.ended, [{ id: "1/1", reason: "never_connected" }]);
  assert.deepEqual(s.expired, ["1/1"], "signalling is told, so Janus is told");
  assert.equal(s.n.committed, 0);
});

Deno.test("release ends the session and frees its ufrag and slot", () => {
  const s = setup(1);
  const h = new HandleIce("1/1", HALF);
  negotiate(s.n, h);
  s.n.release(h, "client_hangup");
  assert.deepEqual(s.sink.ended, [{ id: "1/1", reason: "client_hangup" }]);
  assert.equal(s.n.committed, 0);
  negotiate(s.n, new HandleIce("1/2", HALF)); // the one slot is free again
  assert.equal(s.n.sessionCount, 1);
});

Deno.test("a client-only ICE restart (WHIP PATCH) gets new client-facing credentials, Janus's stay", () => {
  const s = setup();
  const h = new HandleIce("1/1", HALF);
  const first = iceCredentials(parseSdp(negotiate(s.n, h)))!;
  const restarted = s.n.clientIceRestart(h, { ufrag: "newc", pwd: "newclientpassword0123456" })!;
  assert.ok(restarted.ufrag !== first.ufrag && restarted.pwd !== first.pwd);
  const spec = h.spec!;
  assert.equal(spec.mode, "half");
  if (spec.mode !== "half") return;
  assert.equal(spec.localUfrag, restarted.ufrag);
  assert.deepEqual(spec.previousFacing?.ufrag, first.ufrag, "the old credentials work until the new ones do");
  assert.deepEqual(spec.client, { ufrag: "newc", pwd: "newclientpassword0123456" });
  assert.equal(s.sink.ended.length, 0, "the session and its Janus leg go on");
  assert.deepEqual(s.sink.updates.at(-1)?.u.kind, "restart");
  // Nothing to restart: no session yet, or the full proxy (the client checks Janus's own password).
  assert.equal(s.n.clientIceRestart(new HandleIce("1/2", HALF), restarted), undefined);
  const full = new HandleIce("1/3", { icedirect: true, icetcp: false });
  negotiate(s.n, full);
  assert.equal(s.n.clientIceRestart(full, restarted), undefined);
});
