// The half proxy without sockets: a client and a Janus of the tests' own on an in-memory network,
// time from a manual clock.
import assert from "node:assert/strict";
import { mustPeer } from "../../io/address.ts";
import { BINDING_SUCCESS, getXorMappedAddress } from "../../stun/message.ts";
import { randomCredentials } from "../credentials.ts";
import { facing, halfSpec, JANUS_ADDR, planeHarness, srtp, TestClient, TestJanus } from "../test_support.ts";
import { drops } from "../../telemetry/catalog.ts";
import { TIMING } from "../timing.ts";

function setup(consentTimeoutMs = 30_000) {
  const h = planeHarness({ consentTimeoutMs });
  const backend = h.net.backend();
  const janus = new TestJanus(h.net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  const clientCreds = randomCredentials();
  const spec = halfSpec(h.claims, janus, clientCreds);
  h.plane.open(structuredClone(spec));
  const client = new TestClient(h.net, backend, mustPeer("198.19.0.2", 50000), clientCreds, facing(spec));
  return { ...h, backend, janus, client, spec };
}

Deno.test("an authentic check claims the session and is answered with the client's own address; forged ones bind nothing", () => {
  const s = setup();
  const before = drops.value({ reason: "check_bad_integrity" });
  s.client.sendCheck({ pwd: "not-the-password-xxxxxxxx" });
  s.settle();
  assert.equal(s.plane.table.liveCount, 0, "a forged check claims nothing");
  assert.equal(s.plane.ports[0].boundCount, 0);
  assert.equal(s.client.responses.length, 0, "and gets no answer");
  assert.equal(drops.value({ reason: "check_bad_integrity" }), before + 1);
  s.client.sendCheck({ nominate: true });
  s.settle();
  assert.equal(s.plane.table.liveCount, 1);
  assert.equal(s.client.responses[0].type, BINDING_SUCCESS);
  assert.deepEqual(getXorMappedAddress(s.client.responses[0]), { host: "198.19.0.2", port: 50000 });
  assert.equal(s.plane.ports[0].boundCount, 1);
});

Deno.test("media goes both ways once the Janus leg is up and the client's address has answered xRTC's check", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  assert.ok(s.janus.requests.length > 0, "xRTC's agent checked Janus");
  assert.equal(s.client.requests.length, 1, "xRTC validated the client's address once");
  s.client.send(srtp(1));
  s.settle();
  assert.equal(s.janus.media.length, 1, "client -> Janus");
  assert.equal(s.client.media.length, 1, "Janus's echo -> client");
});

Deno.test("a client address that does not answer xRTC's check gets no media, whatever it nominates", () => {
  const s = setup();
  s.client.answersChecks = false;
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(3_000);
  assert.equal(
    s.client.requests.length,
    TIMING.validationAttempts,
    "a bounded number of checks, then it gives up",
  );
  s.client.send(srtp(1));
  s.settle();
  assert.equal(s.janus.media.length, 1, "its data still reaches Janus (it knows the password)");
  assert.equal(s.client.media.length, 0, "but nothing comes back to an unproven address");
});

Deno.test("redirection: a nominating check with a forged source (the victim's) moves no media there", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  s.client.send(srtp(1));
  s.settle();
  assert.equal(s.client.media.length, 1);
  // The attacker owns this session (it knows its credentials) and forges the victim's source address.
  const victim = new TestClient(
    s.net,
    s.backend,
    mustPeer("198.19.0.66", 7000),
    randomCredentials(),
    facing(s.spec),
  );
  victim.answersChecks = false; // the victim is not an ICE agent of this session
  s.net.inject(s.client.check({ nominate: true }), victim.address, mustPeer("198.19.0.1", 6001));
  s.settle();
  s.advance(3_000);
  // Janus echoes what the client sends: 20 more packets of this session's downstream media.
  for (let i = 0; i < 20; i++) s.client.send(srtp(3));
  s.settle();
  assert.equal(victim.media.length, 0, "the victim received no media");
  assert.ok(
    victim.requests.length <= TIMING.validationAttempts,
    `only xRTC's own checks: ${victim.requests.length}`,
  );
  assert.equal(s.client.media.length, 21, "media keeps flowing to the real client");
});

Deno.test("a bound address moves to another session only once that session has validated it", () => {
  const s = setup();
  const janus2 = new TestJanus(s.net, s.backend, mustPeer(JANUS_ADDR, 40001), randomCredentials());
  const creds2 = randomCredentials();
  const spec2 = halfSpec(s.claims, janus2, creds2, "3/4");
  s.plane.open(structuredClone(spec2));
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  // A check for session 2 from session 1's address, by someone who cannot answer session 2's check.
  const forger = new TestClient(s.net, s.backend, mustPeer("198.19.0.9", 1), creds2, facing(spec2));
  s.net.inject(forger.check({ nominate: true }), s.client.address, mustPeer("198.19.0.1", 6001));
  s.settle();
  s.advance(3_000);
  s.client.send(srtp(5));
  s.settle();
  assert.equal(s.janus.media.length, 1, "the address still belongs to session 1");
  assert.equal(janus2.media.length, 0);
  // The holder of session 2's credentials at that address answers session 2's check: the address moves.
  s.client.own = creds2;
  s.client.xrtc = facing(spec2);
  for (let i = 0; i < 6; i++) {
    s.client.sendCheck({ nominate: true }); // a client checks on: once the backoff is over, it is validated
    s.settle();
    s.advance(1_000);
  }
  s.client.send(srtp(6));
  s.settle();
  assert.equal(janus2.media.length, 1, "after validation the address carries session 2");
});

Deno.test("250,000 distinct source addresses do not change how a live session's packets are matched", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  const before = drops.value({ reason: "unknown_tuple" });
  const port = mustPeer("198.19.0.1", 6001);
  const junk = new Uint8Array([0x80]);
  for (let i = 0; i < 250_000; i++) {
    s.net.inject(junk, mustPeer(`198.19.${1 + (i >> 16)}.${(i >> 8) & 255}`, 1024 + (i & 255)), port);
    if (i % 10_000 === 0) s.net.deliver();
  }
  s.net.deliver();
  assert.equal(
    drops.value({ reason: "unknown_tuple" }) - before,
    250_000,
    "every foreign packet dropped, counted",
  );
  s.advance(6_000); // consent checks to Janus, over the same upstream tables
  s.client.sendCheck();
  s.client.send(srtp(7));
  s.settle();
  assert.equal(s.janus.media.length, 1, "client -> Janus still matched");
  assert.equal(s.client.media.length, 1, "Janus -> client still matched");
  assert.equal(s.ended.length, 0, "the session lives");
});

Deno.test("consent per path (RFC 7675): a silent path gets no media; the session ends when no path has consent", () => {
  const s = setup(3_000);
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  const second = new TestClient(s.net, s.backend, mustPeer("198.19.0.2", 50001), s.client.own, s.client.xrtc);
  second.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  s.client.send(srtp(1));
  s.settle();
  assert.equal(second.media.length, 1, "media follows the latest nominated, validated path");
  // Only the first path keeps consent: the second falls silent.
  for (let t = 0; t < 4_000; t += 1_000) {
    s.client.sendCheck();
    s.advance(1_000);
  }
  s.client.send(srtp(2));
  s.settle();
  assert.equal(second.media.length, 1, "the silent path got nothing more");
  assert.equal(s.client.media.length, 1, "the live one did");
  s.advance(4_000);
  assert.deepEqual(s.ended, [{ id: "1/2", reason: "consent_expired" }]);
  assert.equal(s.plane.ports[0].boundCount, 0, "every address freed");
});

Deno.test("client ICE restart: new credentials; the old ones work until a check under the new ones authenticates; the Janus leg stays", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  const janusChecksBefore = s.janus.requests.length;
  const clientFacing = randomCredentials();
  const newClient = randomCredentials();
  s.plane.update("1/2", { kind: "restart", clientFacing, client: newClient });
  // The old credentials still work meanwhile.
  s.client.sendCheck();
  s.settle();
  assert.equal(s.client.responses.length, 2, "the old ufrag is still answered");
  s.client.own = newClient;
  s.client.xrtc = clientFacing;
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(200);
  s.client.send(srtp(9));
  s.settle();
  assert.equal(s.client.media.length, 1, "media flows under the new credentials");
  assert.equal(
    s.janus.requests.length - janusChecksBefore,
    0,
    "no new checks towards Janus: its ICE state is untouched",
  );
  const stale = s.client.check({ ufrag: s.spec.clientFacing.ufrag, pwd: s.spec.clientFacing.pwd });
  const answered = s.client.responses.length;
  s.client.send(stale);
  s.settle();
  assert.equal(s.client.responses.length, answered, "the old ufrag is retired");
});
