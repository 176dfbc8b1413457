// WHIP's request parsing (src/whip/protocol.ts), everything a publisher sends: PATCH bodies (RFC 8840
// trickle-ice-sdpfrag: credentials, m= and mid lines, candidates, end-of-candidates, in any mix with
// broken lines, CR/LF variants, control characters and long runs), If-Match, Authorization and
// Content-Type headers. parseSdpFrag returns or throws SdpFragError, nothing else; what it returns is
// bounded and well-formed; the ICE-restart answer built from it reads back with the same mids and
// credentials; the header readers never throw, and If-Match "matches" only the exact tag.
import {
  bearerToken,
  ifMatch,
  MAX_FRAG_LINES,
  mediaType,
  parseSdpFrag,
  restartAnswerFrag,
  type SdpFrag,
  SdpFragError,
} from "../../src/whip/protocol.ts";
import { defineTarget, expect, type Rng, threw } from "./harness.ts";

interface WhipCase {
  body: string;
  ifMatch: string | null;
  etag: string;
  authorization: string | null;
  contentType: string | null;
}

const ICE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const NOISE = "abc:= \t\r\n\x00\x7f\u00e9\u2028\"',*;/";

function line(rng: Rng): string {
  return rng.weighted<() => string>([
    [10, () => `a=ice-ufrag:${rng.text(ICE, rng.int(0, 300))}`],
    [10, () => `a=ice-pwd:${rng.text(ICE, rng.int(0, 300))}`],
    [10, () => `m=audio 9 UDP/TLS/RTP/SAVPF ${rng.int(0, 127)}`],
    [10, () => `a=mid:${rng.text(ICE + NOISE, rng.int(0, 100))}`],
    [
      15,
      () =>
        `a=candidate:1 1 udp ${rng.int(0, 2 ** 31)} 198.19.0.${rng.int(0, 255)} ${
          rng.int(0, 65535)
        } typ host`,
    ],
    [5, () => "a=end-of-candidates"],
    [5, () => `a=${rng.text(NOISE + ICE, rng.int(0, 40))}`],
    [5, () => rng.text(NOISE + ICE, rng.int(0, 60))],
    [2, () => `a=ICE-UFRAG:${rng.text(ICE, 8)}`],
  ])();
}

function generate(rng: Rng): WhipCase {
  const count = rng.weighted([[80, rng.int(0, 12)], [15, rng.int(0, 200)], [5, rng.int(400, 700)]]);
  const lines = Array.from({ length: count }, () => line(rng));
  const sep = () => rng.pick(["\r\n", "\n", "\r\n", "\r", "\n\n"]);
  const body = lines.map((l) => l + sep()).join("");
  const etag = `"${rng.text(ICE, 22)}"`;
  const header = () =>
    rng.weighted<string | null>([
      [10, null],
      [10, etag],
      [10, "*"],
      [10, `W/${etag}`],
      [10, `${rng.text(ICE + NOISE, rng.int(0, 40))}, ${etag}`],
      [10, rng.text(ICE + NOISE, rng.int(0, 80))],
    ]);
  return {
    body,
    ifMatch: header(),
    etag,
    authorization: rng.weighted<string | null>([
      [10, null],
      [10, `Bearer ${rng.text(ICE, rng.int(0, 64))}`],
      [10, `${rng.randomCase("bearer")}  ${rng.text(ICE + NOISE, rng.int(0, 40))}`],
      [10, rng.text(ICE + NOISE, rng.int(0, 80))],
    ]),
    contentType: rng.weighted<string | null>([
      [10, null],
      [10, "application/trickle-ice-sdpfrag"],
      [10, `${rng.randomCase("Application/SDP")}; charset=${rng.text(ICE, 5)}`],
      [10, rng.text(ICE + NOISE, rng.int(0, 60))],
    ]),
  };
}

function checkFrag(frag: SdpFrag, c: WhipCase): void {
  const lines = c.body.split(/\r?\n/).filter((l) => l !== "");
  expect(lines.length <= MAX_FRAG_LINES, `parsed a fragment of ${lines.length} lines`);
  for (const [name, v, min] of [["ufrag", frag.ufrag, 4], ["pwd", frag.pwd, 22]] as const) {
    if (v === undefined) continue;
    expect(/^[A-Za-z0-9+/]+$/.test(v) && v.length >= min && v.length <= 256, `${name} ${JSON.stringify(v)}`);
  }
  expect(frag.candidates.length <= lines.length, "more candidates than lines");
  for (const mid of frag.mids) {
    expect(mid.length <= 64 && /^[\x21-\x7e]*$/.test(mid), `mid ${JSON.stringify(mid)} is not a token`);
  }
  // The restart answer xRTC would send back names the same media sections and reads back.
  const creds = { ufrag: "xRTCufrag", pwd: "xRTCpasswordxRTCpassword" };
  let back: SdpFrag;
  try {
    back = parseSdpFrag(restartAnswerFrag(creds, frag.mids, []));
  } catch (e) {
    throw threw("parseSdpFrag(restartAnswerFrag(...))", e);
  }
  expect(back.ufrag === creds.ufrag && back.pwd === creds.pwd, "the answer's credentials do not read back");
  const want = frag.mids.length ? frag.mids : ["0"];
  expect(JSON.stringify(back.mids) === JSON.stringify(want), `mids ${back.mids} for ${want}`);
}

function check(c: WhipCase): void {
  let frag: SdpFrag | undefined;
  try {
    frag = parseSdpFrag(c.body);
  } catch (e) {
    if (!(e instanceof SdpFragError)) throw threw("parseSdpFrag", e);
  }
  if (frag) checkFrag(frag, c);
  let verdict: ReturnType<typeof ifMatch>;
  try {
    verdict = ifMatch(c.ifMatch, c.etag);
    bearerToken(c.authorization);
    mediaType(c.contentType);
  } catch (e) {
    throw threw("a header reader", e);
  }
  const tags = (c.ifMatch ?? "").split(",").map((t) => t.trim());
  if (verdict === "match") expect(tags.includes(c.etag), `If-Match ${c.ifMatch} matched ${c.etag}`);
  if (verdict === "any") expect(tags.includes("*"), `If-Match ${c.ifMatch} taken as "*"`);
  const token = bearerToken(c.authorization);
  if (token !== undefined) expect(/^\S+$/.test(token), `token ${JSON.stringify(token)}`);
}

function describe(c: WhipCase): string {
  return JSON.stringify(c);
}

export const whipTarget = defineTarget({ name: "whip", generate, check, describe });
