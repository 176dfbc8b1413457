import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  Attr,
  BINDING_INDICATION,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  classifyPacket,
  encodeString,
  encodeXorAddress,
  getAttribute,
  getPriority,
  getTieBreaker,
  getUsername,
  getXorMappedAddress,
  KeepaliveIndications,
  parseStun,
  plainAttributes,
  StunError,
  verifyFingerprint,
  verifyIntegrity,
} from "./message.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/\s/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const text = (s: string) => new TextEncoder().encode(s);

// RFC 5769 §2.1-2.4 test vectors.
const SAMPLE_REQUEST = hex(`000100582112a442b7e7a701bc34d686fa87dfae
  80220010 5354554e207465737420636c69656e74 002400046e0001ff 80290008932ff9b151263b36
  00060009 6576746a3a68367659202020 00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2 80280004e57a3bcf`);
const SAMPLE_IPV4_RESPONSE = hex(`0101003c2112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
  002000080001a147e112a643 000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7 80280004c07d4c96`);
const SAMPLE_IPV6_RESPONSE = hex(`010100482112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
  002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9 00080014a382954e4be67bf11784c97c8292c275bfe3ed41
  80280004c8fb0b4c`);
const SAMPLE_LONG_TERM = hex(`000100602112a44278ad3433c6ad72c029da412e
  00060012e3839ee38388e383aae38383e382afe382b90000 0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341
  0014000b6578616d706c652e6f726700 00080014f67024656dd64a3e02b8e0712e85c9a28ca89666`);
const SHORT_TERM_PASSWORD = text("VOkJxbRl1RmTxUk/WvJxBt");

Deno.test("RFC 5769 §2.1 request: parse, verify, rebuild byte for byte", () => {
  const msg = parseStun(SAMPLE_REQUEST);
  assert.equal(msg.type, BINDING_REQUEST);
  assert.equal(getUsername(msg), "evtj:h6vY");
  assert.equal(getPriority(msg), 0x6e0001ff);
  assert.equal(getTieBreaker(msg, Attr.ICE_CONTROLLED), 0x932ff9b151263b36n);
  assert.ok(verifyIntegrity(msg, SHORT_TERM_PASSWORD));
  assert.ok(!verifyIntegrity(msg, text("wrong")));
  assert.ok(verifyFingerprint(msg));
  const rebuilt = buildStun({
    type: msg.type,
    transactionId: msg.transactionId,
    attributes: plainAttributes(msg),
    integrityKey: SHORT_TERM_PASSWORD,
    fingerprint: true,
    paddingByte: 0x20, // the vectors pad with spaces
  });
  assert.deepEqual(rebuilt, SAMPLE_REQUEST);
});

Deno.test("RFC 5769 §2.2 and §2.3 responses: XOR-MAPPED-ADDRESS, integrity, fingerprint, rebuilt exactly", () => {
  const cases = [[SAMPLE_IPV4_RESPONSE, "192.0.2.1"], [
    SAMPLE_IPV6_RESPONSE,
    "2001:db8:1234:5678:11:2233:4455:6677",
  ]];
  for (const [vector, host] of cases as Array<[Uint8Array, string]>) {
    const msg = parseStun(vector);
    assert.equal(msg.type, BINDING_SUCCESS);
    assert.deepEqual(getXorMappedAddress(msg), { host, port: 32853 });
    assert.ok(verifyIntegrity(msg, SHORT_TERM_PASSWORD));
    assert.ok(verifyFingerprint(msg));
    const rebuilt = buildStun({
      type: msg.type,
      transactionId: msg.transactionId,
      attributes: [
        [Attr.SOFTWARE, text("test vector")],
        [Attr.XOR_MAPPED_ADDRESS, encodeXorAddress({ host, port: 32853 }, msg.transactionId)],
      ],
      integrityKey: SHORT_TERM_PASSWORD,
      fingerprint: true,
      paddingByte: 0x20,
    });
    assert.deepEqual(rebuilt, vector);
  }
});

Deno.test("RFC 5769 §2.4 long-term credential request verifies with MD5(user:realm:pass)", () => {
  const msg = parseStun(SAMPLE_LONG_TERM);
  assert.equal(getUsername(msg), "マトリックス");
  assert.equal(new TextDecoder().decode(getAttribute(msg, Attr.REALM)), "example.org");
  const key = new Uint8Array(createHash("md5").update("マトリックス:example.org:TheMatrIX").digest());
  assert.ok(verifyIntegrity(msg, key));
  assert.ok(!verifyFingerprint(msg)); // this vector carries no FINGERPRINT
});

Deno.test("built messages carry padding, integrity and fingerprint that verify", () => {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  const key = text("secret-password-123456");
  const raw = buildStun({
    type: BINDING_REQUEST,
    transactionId: tid,
    attributes: [[Attr.USERNAME, encodeString("abcde:fgh")], [Attr.USE_CANDIDATE, new Uint8Array(0)]],
    integrityKey: key,
    fingerprint: true,
  });
  const msg = parseStun(raw);
  assert.equal(getUsername(msg), "abcde:fgh");
  assert.ok(getAttribute(msg, Attr.USE_CANDIDATE));
  assert.ok(verifyIntegrity(msg, key));
  assert.ok(verifyFingerprint(msg));
  raw[25] ^= 1; // tamper with USERNAME
  assert.ok(!verifyIntegrity(parseStun(raw), key));
  assert.ok(!verifyFingerprint(parseStun(raw)));
});

Deno.test("attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5)", () => {
  const tid = new Uint8Array(12);
  const raw = buildStun({
    type: BINDING_REQUEST,
    transactionId: tid,
    attributes: [],
    integrityKey: text("k"),
  });
  const withTrailer = new Uint8Array(raw.length + 12);
  withTrailer.set(raw);
  withTrailer.set([0x00, 0x06, 0x00, 0x05, 0x65, 0x76, 0x69, 0x6c, 0x21], raw.length);
  new DataView(withTrailer.buffer).setUint16(2, withTrailer.length - 20);
  const msg = parseStun(withTrailer);
  assert.equal(getUsername(msg), undefined);
});

Deno.test("random and truncated inputs raise only StunError", () => {
  const sources = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE, SAMPLE_LONG_TERM];
  let parsed = 0;
  for (let i = 0; i < 20000; i++) {
    let input: Uint8Array;
    const src = sources[i % sources.length];
    if (i % 3 === 0) input = src.subarray(0, i % src.length);
    else if (i % 3 === 1) {
      input = src.slice();
      for (let k = 0; k < 1 + (i % 5); k++) {
        input[(i * 7919 + k * 104729) % input.length] = (i * 31 + k) & 0xff;
      }
    } else input = crypto.getRandomValues(new Uint8Array(i % 120));
    try {
      const msg = parseStun(input);
      parsed++;
      // Accessors on a parsed message must also fail only with StunError.
      for (const f of [getUsername, getPriority, getXorMappedAddress, verifyFingerprint]) {
        try {
          f(msg);
        } catch (e) {
          assert.ok(e instanceof StunError, `accessor threw ${e}`);
        }
      }
      verifyIntegrity(msg, SHORT_TERM_PASSWORD);
    } catch (e) {
      assert.ok(e instanceof StunError, `parse threw ${e}`);
    }
  }
  assert.ok(parsed > 1000, `some mutated inputs still parse (${parsed})`);
});

Deno.test("RFC 7983 classifier", () => {
  assert.equal(classifyPacket(0), "stun");
  assert.equal(classifyPacket(3), "stun");
  assert.equal(classifyPacket(22), "dtls");
  assert.equal(classifyPacket(0x80), "rtp");
  assert.equal(classifyPacket(0xbf), "rtp");
  assert.equal(classifyPacket(70), "other");
  assert.equal(classifyPacket(255), "other");
});

Deno.test("keepalive indications: what buildStun makes of a Binding indication with a FINGERPRINT, a fresh transaction each", () => {
  const keepalives = new KeepaliveIndications();
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const bytes = keepalives.next().slice();
    const msg = parseStun(bytes);
    assert.equal(msg.type, BINDING_INDICATION);
    assert.ok(verifyFingerprint(msg));
    assert.deepEqual(
      bytes,
      buildStun({
        type: BINDING_INDICATION,
        transactionId: msg.transactionId,
        attributes: [],
        fingerprint: true,
      }),
    );
    seen.add(String(msg.transactionId));
  }
  assert.equal(seen.size, 50);
});
