import assert from "node:assert/strict";
import {
  iceCredentials,
  iceView,
  parseSdp,
  rewriteIce,
  SdpError,
  serializeSdp,
  stripCandidates,
} from "./sdp.ts";
import { CandidateError, candidatePriority, formatCandidate, parseCandidate } from "./candidate.ts";

const fixture = (name: string) =>
  Deno.readTextFileSync(new URL(`../../tests/fixtures/${name}`, import.meta.url));

Deno.test("SDP captured from Chromium and from Janus round-trips byte for byte", () => {
  for (const name of ["chromium-offer.sdp", "janus-answer.sdp"]) {
    const text = fixture(name);
    assert.ok(text.includes("\r\n"));
    assert.equal(serializeSdp(parseSdp(text)), text, name);
  }
});

Deno.test("ICE and DTLS fields are read at media level, falling back to session level", () => {
  const janus = iceView(parseSdp(fixture("janus-answer.sdp")));
  assert.equal(janus.length, 3);
  for (const m of janus) {
    assert.ok(m.ufrag && m.pwd && m.fingerprint?.startsWith("sha-256 "));
    assert.equal(m.setup, "active");
    assert.equal(m.candidates.length, 1);
    assert.equal(m.candidates[0].address, "198.18.0.2");
    assert.ok(m.endOfCandidates);
  }
  const chrome = iceView(parseSdp(fixture("chromium-offer.sdp")));
  assert.equal(chrome[0].setup, "actpass");
  assert.deepEqual(iceCredentials(parseSdp(fixture("chromium-offer.sdp"))), {
    ufrag: chrome[0].ufrag,
    pwd: chrome[0].pwd,
  });
  const sessionLevel = parseSdp(
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:sess\r\na=ice-pwd:sessionpassword123456789\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",
  );
  assert.deepEqual(iceView(sessionLevel)[0].ufrag, "sess");
  assert.ok(iceView(sessionLevel)[0].lite);
});

Deno.test("rewriting credentials and candidates keeps every other line in place", () => {
  const sdp = parseSdp(fixture("janus-answer.sdp"));
  const cand = parseCandidate("candidate:x 1 udp 2130706431 203.0.113.7 6001 typ host");
  const out = rewriteIce(sdp, {
    ufrag: "XRTCufrg",
    pwd: "xrtcpasswordxrtcpassword",
    candidates: [cand],
    endOfCandidates: true,
    lite: true,
  });
  const text = serializeSdp(out);
  assert.ok(!text.includes("198.18.0.2"));
  assert.equal(text.match(/a=ice-ufrag:XRTCufrg/g)?.length, 3);
  assert.equal(text.match(/a=candidate:x 1 udp 2130706431 203.0.113.7 6001 typ host/g)?.length, 3);
  assert.equal(text.match(/a=ice-lite/g)?.length, 1);
  const before = serializeSdp(sdp).split("\r\n").filter((l) => !/^a=(ice-|candidate|end-of)/.test(l));
  const after = text.split("\r\n").filter((l) => !/^a=(ice-|candidate|end-of)/.test(l));
  assert.deepEqual(after, before);
  const stripped = serializeSdp(stripCandidates(sdp, false));
  assert.ok(!stripped.includes("a=candidate") && stripped.includes("a=ice-ufrag"));
});

Deno.test("malformed SDP raises SdpError", () => {
  for (const bad of ["", "hello", "v=0\r\nthis is not a line\r\n", "x".repeat(300_000)]) {
    assert.throws(() => parseSdp(bad), SdpError);
  }
});

Deno.test("candidate lines (RFC 8839): parse and serialize, tcptype, raddr/rport, extensions", () => {
  const lines = [
    "candidate:1 1 udp 2015363327 198.18.0.2 26535 typ host",
    "candidate:842163049 1 udp 1677729535 203.0.113.9 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0 ufrag 9df5 network-cost 999",
    "candidate:2 1 tcp 1518280447 198.18.0.2 9 typ host tcptype active generation 0",
    "candidate:3 1 TCP 1694498303 198.19.0.1 6443 typ host tcptype passive",
  ];
  for (const l of lines) assert.equal(formatCandidate(parseCandidate(l)), l);
  const c = parseCandidate("a=" + lines[1]);
  assert.equal(c.relatedAddress, "10.0.0.5");
  assert.equal(c.relatedPort, 46154);
  assert.deepEqual(c.extensions, [["generation", "0"], ["ufrag", "9df5"], ["network-cost", "999"]]);
  assert.equal(parseCandidate(lines[3]).tcpType, "passive");
  for (
    const bad of [
      "candidate:1 1 udp",
      "candidate:1 x udp 1 1.2.3.4 5 typ host",
      "candidate:1 1 udp 1 1.2.3.4 70000 typ host",
      "candidate:1 1 udp 1 1.2.3.4 5 type host",
    ]
  ) {
    assert.throws(() => parseCandidate(bad), CandidateError);
  }
  assert.equal(candidatePriority(126, 65535, 1), 2130706431);
});

Deno.test("ICE attributes are matched in any letter case: none of the client's survives a rewrite", () => {
  const smuggled = [
    "v=0",
    "o=- 1 1 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "A=ignored",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=ICE-UFRAG:clientufrag",
    "a=Ice-Pwd:clientpasswordclientpassword",
    "a=CANDIDATE:1 1 UDP 2130706431 198.18.200.7 5000 typ host",
    "a=candidate:2 1 udp 2130706431 198.18.200.8 5001 typ host",
    "a=End-Of-Candidates",
    "a=REMOTE-CANDIDATES:1 198.18.200.9 5002",
    "a=mid:0",
  ].filter((l) => !l.startsWith("A=")).join("\r\n") + "\r\n";
  const sdp = parseSdp(smuggled);
  assert.deepEqual(iceCredentials(sdp), { ufrag: "clientufrag", pwd: "clientpasswordclientpassword" });
  assert.equal(iceView(sdp)[0].candidates.length, 2, "both spellings are candidates");
  const out = serializeSdp(
    rewriteIce(sdp, {
      ufrag: "xrtc",
      pwd: "xrtcpasswordxrtcpassword",
      candidates: [],
      endOfCandidates: true,
      lite: false,
    }),
  );
  assert.doesNotMatch(out, /198\.18\.200/);
  assert.doesNotMatch(out, /clientufrag|clientpassword/i);
  assert.equal(out.match(/^a=ice-ufrag:/gim)?.length, 1);
  const stripped = serializeSdp(stripCandidates(sdp, false));
  assert.doesNotMatch(stripped, /198\.18\.200/);
});

Deno.test("the ICE credentials and fingerprint read from an offer do not keep the offer's text alive", async () => {
  // Sessions keep these for their lifetime. Measured in a process of its own, where the collector can be
  // run: 2,000 offers of about 5.5 KB (Chromium's) parsed, only their credentials and fingerprint kept.
  const code = `
    import { iceView, parseSdp } from ${JSON.stringify(new URL("./sdp.ts", import.meta.url).href)};
    const offer = Deno.readTextFileSync(${
    JSON.stringify(new URL("../../tests/fixtures/chromium-offer.sdp", import.meta.url).pathname)
  });
    const heap = () => { gc(); gc(); return Deno.memoryUsage().heapUsed; };
    const before = heap();
    const kept = [];
    for (let i = 0; i < 2000; i++) {
      const v = iceView(parseSdp(offer.replaceAll("a=ice-pwd:", "a=ice-pwd:" + i + "x")))[0];
      kept.push([v.ufrag, v.pwd, v.fingerprint]);
    }
    console.log((heap() - before) / kept.length);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", code],
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const bytesPerOffer = Number(new TextDecoder().decode(out.stdout));
  // The three strings and their array take a few hundred bytes; the offer's text would add 5,500.
  assert.ok(bytesPerOffer > 0 && bytesPerOffer < 1_000, `${bytesPerOffer} bytes kept per offer`);
});
