// xRTC's own ICE agent towards Janus, without sockets: role conflicts (RFC 8445 §7.3.1.1 and §7.2.5.1)
// both ways, nomination, consent (RFC 7675).
import assert from "node:assert/strict";
import { mustPeer, type PeerAddress } from "../../io/address.ts";
import { ManualClock } from "../../io/clock.ts";
import { MemoryNetwork } from "../../io/memory_udp.ts";
import {
  Attr,
  BINDING_ERROR,
  BINDING_INDICATION,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeErrorCode,
  encodeXorAddress,
  getErrorCode,
  hasAttribute,
  parseStun,
  type StunMessage,
} from "../../stun/message.ts";
import { buildCheck } from "../check.ts";
import { randomCredentials } from "../credentials.ts";
import { JanusLeg } from "./janus_leg.ts";
import { DEFAULT_JANUS_KEEPALIVE_MS } from "../../config/types.ts";
import { TIMING } from "../timing.ts";

const UTF8 = new TextEncoder();

function setup(o: { controlling: boolean; tieBreaker: bigint; keepaliveMs?: number }) {
  const net = new MemoryNetwork();
  const backend = net.backend();
  const clock = new ManualClock();
  const local = randomCredentials(), remote = randomCredentials();
  const janusAddr = mustPeer("198.18.0.2", 40000);
  const seen: StunMessage[] = [];
  const events = { selected: [] as PeerAddress[], failed: [] as string[], maintenanceDue: 0 };
  const xrtcSocket = backend.bind(
    { host: "198.18.0.1", port: 30000 },
    (data, from) => leg.onStun(parseStun(data.slice()), from),
  );
  const janus = backend.bind({ host: janusAddr.host, port: janusAddr.port }, (data) => {
    if (data[0] <= 3) seen.push(parseStun(data.slice()));
  });
  const leg: JanusLeg = new JanusLeg({
    socket: xrtcSocket,
    local,
    remote,
    controlling: o.controlling,
    tieBreaker: o.tieBreaker,
    keepaliveIntervalMs: o.keepaliveMs ?? DEFAULT_JANUS_KEEPALIVE_MS,
    now: () => clock.now(),
    events: {
      onSelected: (r) => events.selected.push(r),
      onFailed: (why) => events.failed.push(why),
      onMaintenanceDue: () => events.maintenanceDue++,
      onRemoteAddress: () => true,
    },
  });
  leg.addRemoteCandidate({
    foundation: "1",
    component: 1,
    transport: "udp",
    priority: 1,
    address: janusAddr.host,
    port: janusAddr.port,
    type: "host",
    extensions: [],
  });
  const respond = (req: StunMessage, error?: number) =>
    janus.send(
      buildStun({
        type: error ? BINDING_ERROR : BINDING_SUCCESS,
        transactionId: req.transactionId,
        attributes: error
          ? [[Attr.ERROR_CODE, encodeErrorCode(error, "Role Conflict")]]
          : [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(xrtcSocket.localAddress, req.transactionId)]],
        integrityKey: UTF8.encode(remote.pwd),
        fingerprint: true,
      }),
      xrtcSocket.localAddress,
    );
  /** Janus's own check to xRTC, in a role. */
  const janusCheck = (controlling: boolean, tieBreaker: bigint, useCandidate = false) =>
    janus.send(
      buildCheck({
        receiverUfrag: local.ufrag,
        senderUfrag: remote.ufrag,
        key: UTF8.encode(local.pwd),
        priority: 1,
        controlling,
        tieBreaker,
        useCandidate,
      }),
      xrtcSocket.localAddress,
    );
  /** The leg's first check goes out and Janus answers it: the pair is selected. */
  const selectPair = () => {
    leg.tick(clock.now());
    net.deliver();
    respond(seen[0]);
    net.deliver();
  };
  return { net, clock, leg, seen, events, respond, janusCheck, selectPair };
}

Deno.test("controlling: checks carry USE-CANDIDATE; the first success selects the pair", () => {
  const s = setup({ controlling: true, tieBreaker: 10n });
  s.leg.tick(s.clock.now());
  s.net.deliver();
  assert.equal(s.seen.length, 1);
  assert.ok(hasAttribute(s.seen[0], Attr.USE_CANDIDATE) && hasAttribute(s.seen[0], Attr.ICE_CONTROLLING));
  s.respond(s.seen[0]);
  s.net.deliver();
  assert.equal(s.events.selected.length, 1);
  assert.equal(s.events.selected[0].text, "198.18.0.2:40000");
  assert.equal(s.leg.connecting, false);
});

Deno.test("487 from Janus (both controlling): xRTC switches to controlled and retries (RFC 8445 §7.2.5.1)", () => {
  const s = setup({ controlling: true, tieBreaker: 10n });
  s.leg.tick(s.clock.now());
  s.net.deliver();
  s.respond(s.seen[0], 487);
  s.net.deliver();
  assert.equal(s.leg.controlling, false);
  s.clock.advance(TIMING.checkIntervalMs);
  s.leg.tick(s.clock.now());
  s.net.deliver();
  assert.ok(hasAttribute(s.seen[1], Attr.ICE_CONTROLLED), "the retry is controlled");
  assert.ok(!hasAttribute(s.seen[1], Attr.USE_CANDIDATE));
});

Deno.test("Janus's check with a conflicting role: the larger tie-breaker wins (RFC 8445 §7.3.1.1)", () => {
  // Both controlling, xRTC's tie-breaker larger: xRTC answers 487 and stays controlling.
  const a = setup({ controlling: true, tieBreaker: 100n });
  a.janusCheck(true, 5n);
  a.net.deliver();
  const err = a.seen.find((m) => m.type === BINDING_ERROR)!;
  assert.equal(getErrorCode(err), 487);
  assert.equal(a.leg.controlling, true);
  // Both controlling, Janus's larger: xRTC switches to controlled and answers success.
  const b = setup({ controlling: true, tieBreaker: 5n });
  b.janusCheck(true, 100n);
  b.net.deliver();
  assert.equal(b.leg.controlling, false);
  assert.ok(b.seen.some((m) => m.type === BINDING_SUCCESS));
  // Both controlled, xRTC's larger: xRTC becomes controlling.
  const c = setup({ controlling: false, tieBreaker: 100n });
  c.janusCheck(false, 5n);
  c.net.deliver();
  assert.equal(c.leg.controlling, true);
  // Both controlled, Janus's larger: 487 to Janus.
  const d = setup({ controlling: false, tieBreaker: 5n });
  d.janusCheck(false, 100n);
  d.net.deliver();
  assert.equal(getErrorCode(d.seen.find((m) => m.type === BINDING_ERROR)!), 487);
});

Deno.test("controlled: Janus's nomination selects the pair once xRTC's own check to it succeeded", () => {
  const s = setup({ controlling: false, tieBreaker: 1n });
  s.janusCheck(true, 50n, true);
  s.net.deliver();
  assert.equal(s.events.selected.length, 0, "not before xRTC's triggered check succeeds");
  s.leg.tick(s.clock.now());
  s.net.deliver();
  const check = s.seen.find((m) => m.type === BINDING_REQUEST)!;
  s.respond(check);
  s.net.deliver();
  assert.equal(s.events.selected.length, 1);
});

Deno.test("consent (RFC 7675): checks on the selected pair every ~5 s while media flows; lost after 30 s unanswered", () => {
  const s = setup({ controlling: true, tieBreaker: 10n });
  s.selectPair();
  const sentBefore = s.seen.length;
  for (let t = 0; t < 20_000; t += 1_000) {
    s.clock.advance(1_000);
    s.leg.send(new Uint8Array([0x80, 0])); // media flowing
    s.leg.maintain(s.clock.now());
    s.net.deliver();
  }
  const checks = s.seen.slice(sentBefore).filter((m) => m.type === BINDING_REQUEST).length;
  assert.ok(checks >= 3 && checks <= 5, `consent checks in 20 s of media: ${checks}`);
  assert.deepEqual(s.events.failed, []);
  for (let t = 0; t < 15_000; t += 1_000) {
    s.clock.advance(1_000);
    s.leg.send(new Uint8Array([0x80, 0]));
    s.leg.maintain(s.clock.now());
  }
  assert.deepEqual(s.events.failed, ["janus leg: consent lost"]);
});

Deno.test("maintenance: none while connecting; idle, keepalive indications; media flowing, consent checks", () => {
  const s = setup({ controlling: true, tieBreaker: 10n });
  const t0 = s.clock.now();
  assert.equal(s.leg.maintenanceDueAt(t0), Infinity); // tick() drives the checks until a pair is selected
  s.selectPair();
  assert.equal(s.events.maintenanceDue, 1, "selection reports that maintenance is due");
  const keepaliveAt = s.leg.maintenanceDueAt(t0);
  // RFC 8445 §11: Tr is never under 15 s; spread up to a fifth above it.
  assert.ok(keepaliveAt - t0 >= 15_000 && keepaliveAt - t0 <= 18_000, `keepalive in ${keepaliveAt - t0} ms`);
  const before = s.seen.length;
  s.leg.maintain(keepaliveAt - 1);
  s.net.deliver();
  assert.equal(s.seen.length, before, "nothing before it is due");
  s.clock.time = keepaliveAt;
  s.leg.maintain(keepaliveAt);
  s.net.deliver();
  const keepalive = s.seen.at(-1)!;
  assert.equal(s.seen.length, before + 1);
  assert.equal(
    keepalive.type,
    BINDING_INDICATION,
    "an idle pair's keepalive is a Binding indication (RFC 8445 §11)",
  );
  assert.ok(!hasAttribute(keepalive, Attr.MESSAGE_INTEGRITY) && hasAttribute(keepalive, Attr.FINGERPRINT));
  // Idle for a minute with nothing answered: no consent is sought while nothing is sent.
  s.clock.advance(60_000);
  s.leg.maintain(s.clock.now());
  assert.deepEqual(s.events.failed, []);
  // Media resumes: reported at once, and consent counts from here.
  const resumedAt = s.clock.now();
  s.leg.send(new Uint8Array([0x80, 0]));
  assert.equal(s.events.maintenanceDue, 2, "media after a pause reports it: consent checks are due");
  s.leg.send(new Uint8Array([0x80, 0]));
  assert.equal(s.events.maintenanceDue, 2, "not again while media flows");
  s.leg.maintain(resumedAt);
  s.net.deliver();
  assert.equal(s.seen.at(-1)!.type, BINDING_REQUEST, "a consent check goes out at once");
  assert.deepEqual(s.events.failed, []);
  const next = s.leg.maintenanceDueAt(resumedAt) - resumedAt;
  assert.ok(next >= 4_000 && next <= 6_000, `next consent check in ${next} ms (RFC 7675 §5.1)`);
  // Unanswered while media flows: lost 30 s after it resumed, and the due time never passes that.
  for (let t = resumedAt + 1_000; t <= resumedAt + 30_000; t += 1_000) {
    s.clock.time = t;
    s.leg.send(new Uint8Array([0x80, 0]));
    assert.ok(s.leg.maintenanceDueAt(t) <= resumedAt + 30_001);
    s.leg.maintain(t);
  }
  assert.deepEqual(s.events.failed, []);
  s.clock.time = resumedAt + 30_001;
  s.leg.maintain(s.clock.now());
  assert.deepEqual(s.events.failed, ["janus leg: consent lost"]);
});

Deno.test("a longer Tr (options.janus_keepalive) spaces an idle leg's keepalives by it", () => {
  const s = setup({ controlling: true, tieBreaker: 10n, keepaliveMs: 120_000 });
  const t0 = s.clock.now();
  s.selectPair();
  const first = s.leg.maintenanceDueAt(t0) - t0;
  assert.ok(first >= 120_000 && first <= 144_000, `first keepalive in ${first} ms`);
  s.clock.time = t0 + first;
  s.leg.maintain(s.clock.now());
  s.net.deliver();
  assert.equal(s.seen.at(-1)!.type, BINDING_INDICATION);
  const second = s.leg.maintenanceDueAt(s.clock.now()) - s.clock.now();
  assert.ok(second >= 120_000 && second <= 144_000, `next keepalive in ${second} ms`);
  assert.deepEqual(s.events.failed, [], "an idle leg does not lose consent however long Tr is");
});

Deno.test("media that stops: consent checks end, keepalives take over, and the next packet resumes consent at once", () => {
  const s = setup({ controlling: true, tieBreaker: 10n });
  s.selectPair();
  // Media for 20 s, the plane calling maintain() when the leg says it is due (Janus answers consent).
  const run = (ms: number, sending: boolean) => {
    const end = s.clock.now() + ms;
    while (s.clock.now() < end) {
      s.clock.advance(100);
      if (sending) s.leg.send(new Uint8Array([0x80, 0]));
      if (s.leg.maintenanceDueAt(s.clock.now()) <= s.clock.now()) {
        const before = s.seen.length;
        s.leg.maintain(s.clock.now());
        s.net.deliver();
        for (const m of s.seen.slice(before)) if (m.type === BINDING_REQUEST) s.respond(m);
        s.net.deliver();
      }
    }
  };
  run(20_000, true);
  const due = s.events.maintenanceDue;
  const stoppedAt = s.clock.now(), sentBefore = s.seen.length;
  run(60_000, false);
  const after = s.seen.slice(sentBefore);
  const lastCheck = after.findLastIndex((m) => m.type === BINDING_REQUEST);
  const checksAfterStop = after.slice(0, lastCheck + 1).length;
  // Media counts as flowing for 10 s after the last packet, dated by maintain() up to one consent
  // interval late: at most three more checks, then keepalive indications only.
  assert.ok(checksAfterStop <= 3, `consent checks after media stopped: ${checksAfterStop}`);
  assert.ok(after.slice(lastCheck + 1).length >= 2, "keepalives follow");
  assert.ok(after.slice(lastCheck + 1).every((m) => m.type === BINDING_INDICATION));
  assert.deepEqual(s.events.failed, []);
  assert.ok(s.clock.now() - stoppedAt >= 60_000);
  // The next packet: maintenance is due at once, and it is a consent check.
  s.leg.send(new Uint8Array([0x80, 0]));
  assert.equal(s.events.maintenanceDue, due + 1, "media after a pause reports it once");
  s.leg.send(new Uint8Array([0x80, 0]));
  assert.equal(s.events.maintenanceDue, due + 1);
  assert.ok(s.leg.maintenanceDueAt(s.clock.now()) <= s.clock.now());
  s.leg.maintain(s.clock.now());
  s.net.deliver();
  assert.equal(s.seen.at(-1)!.type, BINDING_REQUEST);
});
