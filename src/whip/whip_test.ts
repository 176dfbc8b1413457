// WHIP's pure parts, and the front-end's answers to requests it refuses before asking Janus anything:
// each gets its RFC 9725 status, and nothing is kept for it.
import assert from "node:assert/strict";
import {
  bearerToken,
  ifMatch,
  mediaType,
  newEtag,
  newResourceId,
  parseSdpFrag,
  RESOURCE_ID,
  restartAnswerFrag,
  sameSecret,
  SdpFragError,
} from "./protocol.ts";
import { WhipFront } from "./whip.ts";
import { JanusSignalling } from "../signalling/janus.ts";
import { BackendPool } from "../signalling/backends.ts";
import { defaultOptions, loadConfigText } from "../config/load.ts";
import type { WhipEndpoint } from "../config/types.ts";
import { effectiveConfig } from "../config/effective.ts";
import { makeClientCandidates } from "../ice/negotiation/negotiator.ts";

const OFFER = Deno.readTextFileSync(new URL("../../tests/fixtures/chromium-offer.sdp", import.meta.url));
const TOKEN = "a-whip-token-of-24-chars";

Deno.test("resource ids and entity tags are unguessable and shaped as xRTC checks them", () => {
  const ids = new Set(Array.from({ length: 1000 }, newResourceId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, RESOURCE_ID);
  assert.match(newEtag(), /^"[A-Za-z0-9_-]{22}"$/);
  assert.ok(!RESOURCE_ID.test("1234567890"), "a Janus id is not a resource id");
});

Deno.test("If-Match: missing, any, the current tag, or another (weak tags never match)", () => {
  const tag = '"abc"';
  assert.equal(ifMatch(null, tag), "missing");
  assert.equal(ifMatch("  ", tag), "missing");
  assert.equal(ifMatch("*", tag), "any");
  assert.equal(ifMatch('"abc"', tag), "match");
  assert.equal(ifMatch('"x", "abc"', tag), "match");
  assert.equal(ifMatch('W/"abc"', tag), "mismatch");
  assert.equal(ifMatch('"abd"', tag), "mismatch");
});

Deno.test("bearer tokens and media types", () => {
  assert.equal(bearerToken("Bearer abc.def"), "abc.def");
  assert.equal(bearerToken("bearer   abc "), "abc");
  assert.equal(bearerToken("Basic abc"), undefined);
  assert.equal(bearerToken(null), undefined);
  assert.ok(sameSecret("abc", "abc"));
  assert.ok(!sameSecret("abc", "abd"));
  assert.ok(!sameSecret("abc", "abcd"));
  assert.equal(mediaType("Application/SDP; charset=utf-8"), "application/sdp");
  assert.equal(mediaType(null), "");
});

Deno.test("trickle-ice-sdpfrag: candidates, a restart's credentials, and what is refused", () => {
  const trickle = parseSdpFrag(
    "a=ice-options:trickle ice2\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
      "a=candidate:1 1 udp 2113937151 198.19.0.2 50000 typ host\r\na=end-of-candidates\r\n",
  );
  assert.deepEqual(trickle.mids, ["0"]);
  assert.equal(trickle.candidates.length, 1);
  assert.equal(trickle.ufrag, undefined);
  assert.ok(trickle.endOfCandidates);
  const restart = parseSdpFrag(
    "a=ice-ufrag:newU\r\na=ice-pwd:0123456789abcdefghijkl\r\nm=audio 9 RTP/AVP 0\r\na=mid:0",
  );
  assert.equal(restart.ufrag, "newU");
  assert.equal(restart.pwd, "0123456789abcdefghijkl");
  for (
    const bad of [
      "v=0\r\n",
      "a=ice-ufrag:abc\r\na=ice-pwd:0123456789abcdefghijkl",
      "a=ice-ufrag:abcd\r\na=ice-pwd:short",
      "a=ice-ufrag:ab cd\r\na=ice-pwd:0123456789abcdefghijkl",
      "a=candidate:x\r\n".repeat(600),
      // a mid is a token (RFC 5888 §4): it is echoed into the answer, so no spaces or line breaks
      "m=audio 9 RTP/AVP 0\r\na=mid:a b",
      "m=audio 9 RTP/AVP 0\r\na=mid:a\rb",
      `m=audio 9 RTP/AVP 0\r\na=mid:${"m".repeat(65)}`,
    ]
  ) assert.throws(() => parseSdpFrag(bad), SdpFragError, bad.slice(0, 30));
});

Deno.test("the ICE-restart answer: ICE-lite, new credentials, xRTC's candidates per mid", () => {
  const candidates = makeClientCandidates([{ proto: "udp", ips: ["198.19.0.1"], port: 6001 }]);
  const frag = restartAnswerFrag({ ufrag: "U1U1", pwd: "P".repeat(24) }, ["0"], candidates);
  const back = parseSdpFrag(frag);
  assert.equal(back.ufrag, "U1U1");
  assert.deepEqual(back.mids, ["0"]);
  assert.ok(frag.startsWith("a=ice-lite\r\n"));
  assert.match(frag, /a=candidate:xrtc1 1 udp \d+ 198\.19\.0\.1 6001 typ host\r\n/);
  assert.ok(back.endOfCandidates);
});

Deno.test("routes.yml: WHIP endpoints load with defaults, and secrets never show", () => {
  const text = `
services:
  janus: { proto: upstream, servers: [http://127.0.0.1:8088] }
  web:
    proto: http
    net: { addr: ":6080" }
    http:
      routes: { janus: { upstream: http://janus, paths: [/janus] } }
      whip:
        live: { upstream: http://janus, room: 1234, pin: pinpin, secret: s3cret, token: ${TOKEN} }
        other: { upstream: "http://10.0.0.5:8088", room: lobby, path: /ingest/x, icedirect: true, max_publishers: 1 }
`;
  const { config, warnings } = loadConfigText(text, "r.yml");
  assert.deepEqual(warnings, []);
  const [live, other] = config.listeners[0].http.whip;
  assert.equal(live.path, "/whip/live");
  assert.equal(live.room, 1234);
  assert.equal(live.upstreamService, "janus");
  assert.equal(live.token, TOKEN);
  assert.equal(live.maxPublishers, 0);
  assert.equal(other.room, "lobby");
  assert.equal(other.upstreamUrl, "http://10.0.0.5:8088");
  assert.ok(other.icedirect);
  const shown = JSON.stringify(effectiveConfig(config));
  for (const secret of [TOKEN, "pinpin", "s3cret"]) assert.ok(!shown.includes(secret), secret);
  assert.match(
    shown,
    /"whip":\{"live":\{"path":"\/whip\/live","upstream":"http:\/\/janus","room":1234,"pin":"\(set\)"/,
  );
  // A file without `whip:` has none.
  const plain = loadConfigText(text.replace(/ {6}whip:[\s\S]*$/, ""), "r.yml").config;
  assert.deepEqual(plain.listeners[0].http.whip, []);
  const errors = (() => {
    try {
      loadConfigText(
        text.replace("room: lobby, ", "").replace(`token: ${TOKEN}`, "token: short").replace(
          "http://janus, room: 1234",
          "http://nosuch, room: 1234",
        ),
        "r.yml",
      );
    } catch (e) {
      return (e as { problems: string[] }).problems.join("\n");
    }
    return "";
  })();
  assert.match(errors, /whip\.other\.room: required/);
  assert.match(errors, /whip\.live\.token: expected a token of at least 16 characters/);
  assert.match(errors, /whip\.live\.upstream: no "proto: upstream" service named "nosuch"/);
});

function endpoint(o: Partial<WhipEndpoint> = {}): WhipEndpoint {
  return {
    tag: "live",
    path: "/whip/live",
    upstreamUrl: "http://127.0.0.1:1",
    room: 1234,
    icedirect: false,
    icetcp: false,
    maxPublishers: 0,
    ...o,
  };
}

async function front(fn: (f: WhipFront, sig: JanusSignalling) => Promise<void>): Promise<void> {
  const o = defaultOptions();
  const sig = new JanusSignalling(undefined, { limits: o.limits, timers: o.janus });
  // Nothing listens on port 1: a request that reaches "Janus" fails at once.
  const pool = BackendPool.fromUrl("http://127.0.0.1:1", {
    intervalMs: 1000,
    timeoutMs: 100,
    fall: 1,
    rise: 1,
  });
  const f = new WhipFront({
    signalling: sig,
    pool: () => pool,
    endpoint: (tag) => tag === "live" ? endpoint() : undefined,
    shutdown: new AbortController().signal,
  });
  try {
    await fn(f, sig);
  } finally {
    f.close();
  }
}

const http = () =>
  loadConfigText("services: { w: { proto: http, net: { addr: ':1' } } }", "r.yml").config.listeners[0].http;
const client = { remoteHost: "198.19.0.2", peerHost: "198.19.0.2", proto: "http" as const, host: "x" };

async function ask(
  f: WhipFront,
  ep: WhipEndpoint,
  path: string,
  init: RequestInit & { headers?: Record<string, string> },
): Promise<Response> {
  const url = new URL(`http://x${path}`);
  return await f.handle(new Request(url, init), url, client, ep, http());
}

Deno.test("WHIP refusals before Janus: each its status, nothing kept", async () => {
  await front(async (f, sig) => {
    const ep = endpoint({ token: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const sdp = { ...auth, "content-type": "application/sdp" };
    const cases: Array<[number, string, RequestInit & { headers?: Record<string, string> }]> = [
      [401, "/whip/live", { method: "POST", body: OFFER, headers: { "content-type": "application/sdp" } }],
      [401, "/whip/live", {
        method: "POST",
        body: OFFER,
        headers: { ...sdp, authorization: "Bearer wrong" },
      }],
      [415, "/whip/live", {
        method: "POST",
        body: OFFER,
        headers: { ...auth, "content-type": "application/json" },
      }],
      [400, "/whip/live", {
        method: "POST",
        body: OFFER.replace(/a=ice-(ufrag|pwd):.*\r?\n/g, ""),
        headers: sdp,
      }],
      [400, "/whip/live", { method: "POST", body: "not sdp", headers: sdp }],
      [405, "/whip/live", { method: "GET", headers: auth }],
      [405, "/whip/live", { method: "DELETE", headers: auth }],
      [404, "/whip/live/nosuchresourceid000000", { method: "DELETE", headers: auth }],
      [404, "/whip/live/1234", { method: "DELETE", headers: auth }],
      [404, "/whip/live/nosuchresourceid000000", {
        method: "PATCH",
        body: "a=end-of-candidates",
        headers: { ...auth, "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" },
      }],
      [401, "/whip/live/nosuchresourceid000000", { method: "DELETE" }],
      [204, "/whip/live", { method: "OPTIONS" }],
    ];
    for (const [status, path, init] of cases) {
      const res = await ask(f, ep, path, init);
      await res.body?.cancel();
      assert.equal(res.status, status, `${init.method} ${path} ${JSON.stringify(init.headers)}`);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
    }
    const pre = await ask(f, ep, "/whip/live", { method: "OPTIONS" });
    assert.equal(pre.headers.get("accept-post"), "application/sdp");
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Authorization/);
    assert.equal(sig.sessions.size, 0);
    assert.equal(sig.sessions.trackedClients, 0);
    assert.equal(f.size, 0);
  });
});

Deno.test("WHIP: a Janus that cannot be reached gets 502, a draining node 503; nothing kept", async () => {
  await front(async (f, sig) => {
    const headers = { "content-type": "application/sdp" };
    const res = await ask(f, endpoint(), "/whip/live", { method: "POST", body: OFFER, headers });
    assert.equal(res.status, 502, await res.text());
    assert.equal(sig.sessions.size, 0);
    assert.equal(sig.sessions.trackedClients, 0, "the create admitted is released");
    sig.draining = true;
    const drained = await ask(f, endpoint(), "/whip/live", { method: "POST", body: OFFER, headers });
    await drained.body?.cancel();
    assert.equal(drained.status, 503);
    assert.equal(drained.headers.get("retry-after"), "5");
    assert.equal(f.size, 0);
  });
});

Deno.test("WHIP: a restarted process serves a recorded resource on, under its id and ETag", async () => {
  await front(async (f, sig) => {
    const backend =
      BackendPool.fromUrl("http://127.0.0.1:1", { intervalMs: 1000, timeoutMs: 100, fall: 1, rise: 1 })
        .backends[0];
    const mode = { icedirect: false, icetcp: false };
    const record = (id: string, endpoint: string, resource: string) => {
      const s = sig.sessions.restoreSession(
        {
          id,
          protocol: "http",
          mode,
          client: "198.19.0.2",
          createdAt: 1,
          whip: { endpoint, resource, etag: '"etag-of-' + resource + '"', handle: `${id}1`, mid: "0" },
        },
        backend,
      );
      sig.sessions.restoreHandle(s, `${id}1`, "janus.plugin.videoroom", { ufrag: "u", pwd: "p" });
    };
    const kept = "AAAAAAAAAAAAAAAAAAAAAA", gone = "BBBBBBBBBBBBBBBBBBBBBB";
    record("11", "live", kept);
    record("12", "removed-endpoint", gone);
    assert.equal(f.restore(), 1, "only the endpoint still configured");
    assert.equal(f.restore(), 0, "restoring twice adds nothing");
    assert.equal(f.size, 1);
    const patch = (id: string, etag: string) =>
      ask(f, endpoint(), `/whip/live/${id}`, {
        method: "PATCH",
        body: "a=end-of-candidates",
        headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": etag },
      });
    // The resource answers by its recorded ETag: a stale one is 412, an unknown resource 404.
    const stale = await patch(kept, '"not-it"');
    await stale.body?.cancel();
    assert.equal(stale.status, 412);
    const unknown = await patch(gone, '"etag-of-' + gone + '"');
    await unknown.body?.cancel();
    assert.equal(unknown.status, 404);
    const del = await ask(f, endpoint(), `/whip/live/${kept}`, { method: "DELETE" });
    await del.body?.cancel();
    assert.equal(del.status, 200);
    assert.equal(f.size, 0);
    assert.equal(sig.sessions.get("11"), undefined, "DELETE releases the Janus session");
  });
});
