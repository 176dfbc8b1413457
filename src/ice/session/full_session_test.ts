// The full proxy without sockets: relayed STUN re-signed both ways, XOR-MAPPED-ADDRESS as each receiver
// would see it without xRTC, and no relay to or from an address Janus did not announce.
import assert from "node:assert/strict";
import { mustPeer } from "../../io/address.ts";
import {
  BINDING_REQUEST,
  BINDING_SUCCESS,
  getUsername,
  getXorMappedAddress,
  verifyFingerprint,
  verifyIntegrity,
} from "../../stun/message.ts";
import { buildCheck } from "../check.ts";
import { randomCredentials } from "../credentials.ts";
import { facing, fullSpec, JANUS_ADDR, planeHarness, srtp, TestClient, TestJanus } from "../test_support.ts";
import { drops } from "../../telemetry/catalog.ts";

const UTF8 = new TextEncoder();

function setup() {
  const h = planeHarness();
  const backend = h.net.backend();
  const janus = new TestJanus(h.net, backend, mustPeer(JANUS_ADDR, 40000), randomCredentials());
  const clientCreds = randomCredentials();
  const spec = fullSpec(h.claims, janus, clientCreds);
  h.plane.open(structuredClone(spec));
  const client = new TestClient(h.net, backend, mustPeer("198.19.0.2", 50000), clientCreds, facing(spec));
  const upstream = mustPeer("198.18.0.1", h.plane.upstream.localAddress.port);
  return { ...h, backend, janus, client, spec, upstream };
}

Deno.test("the client's check reaches Janus re-signed under Janus's ufrags; the answer returns with the client's own address", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  const relayed = s.janus.requests.find((m) => m.type === BINDING_REQUEST)!;
  assert.equal(
    getUsername(relayed),
    `${s.janus.own.ufrag}:${s.client.own.ufrag}`,
    "USERNAME swapped back to Janus's",
  );
  assert.ok(verifyIntegrity(relayed, UTF8.encode(s.janus.own.pwd)) && verifyFingerprint(relayed));
  const answer = s.client.responses.find((m) => m.type === BINDING_SUCCESS)!;
  assert.deepEqual(
    getXorMappedAddress(answer),
    { host: "198.19.0.2", port: 50000 },
    "as the client would see it without xRTC",
  );
  assert.ok(verifyIntegrity(answer, UTF8.encode(s.janus.own.pwd)) && verifyFingerprint(answer));
});

Deno.test("Janus's check reaches the validated client under xRTC's ufrag; the client's answer returns with Janus's own address", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(100);
  const before = s.client.requests.length;
  s.janus.socket.send(
    buildCheck({
      receiverUfrag: s.client.own.ufrag,
      senderUfrag: s.janus.own.ufrag,
      key: UTF8.encode(s.client.own.pwd),
      priority: 1,
      controlling: false,
      tieBreaker: 3n,
    }),
    s.upstream,
  );
  s.settle();
  const relayed = s.client.requests[before];
  assert.ok(relayed, "relayed to the client");
  assert.equal(
    getUsername(relayed),
    `${s.client.own.ufrag}:${s.spec.localUfrag}`,
    "under the ufrag the client knows",
  );
  assert.ok(verifyIntegrity(relayed, UTF8.encode(s.client.own.pwd)));
  const answer = s.janus.responses.find((m) => m.type === BINDING_SUCCESS)!;
  assert.ok(answer, "the client's answer reached Janus");
  assert.deepEqual(
    getXorMappedAddress(answer),
    { host: JANUS_ADDR, port: 40000 },
    "as Janus would see it without xRTC",
  );
  assert.ok(verifyIntegrity(answer, UTF8.encode(s.client.own.pwd)) && verifyFingerprint(answer));
});

Deno.test("packets from an address Janus did not announce are dropped; media flows only through announced ones", () => {
  const s = setup();
  s.client.sendCheck({ nominate: true });
  s.settle();
  s.advance(100);
  s.client.send(srtp(1));
  s.settle();
  assert.equal(s.janus.media.length, 1, "client -> Janus");
  assert.equal(s.client.media.length, 1, "Janus's echo -> client");
  const before = drops.value({ reason: "upstream_unknown_source" });
  const stranger = s.backend.bind({ host: "198.18.0.99", port: 1234 }, () => {});
  stranger.send(srtp(2), s.upstream);
  s.settle();
  assert.equal(drops.value({ reason: "upstream_unknown_source" }), before + 1);
  assert.equal(s.client.media.length, 1, "nothing of it reached the client");
  assert.deepEqual(s.plane.table.upstreamAddresses().map((a) => a.text), ["198.18.0.2:40000"]);
});

Deno.test("a forged check (wrong password) is neither relayed nor bound", () => {
  const s = setup();
  s.client.sendCheck({ pwd: "wrong-password-wrong-pass" });
  s.settle();
  assert.equal(s.janus.requests.length, 0);
  assert.equal(s.plane.table.liveCount, 0);
  assert.equal(s.plane.ports[0].boundCount, 0);
});
