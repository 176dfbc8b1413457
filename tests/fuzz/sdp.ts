// SDP (src/sdp/sdp.ts, src/sdp/candidate.ts): offers with several media sections, session- and
// media-level ICE lines whose attribute names are in random letter case, unique marker values (ufrags,
// passwords, candidate addresses), other attributes, odd whitespace, rejected m-lines, and some
// corrupted texts. Parsing throws only SdpError and round-trips CRLF text; a rewrite keeps none of the
// input's ICE values and exactly one ufrag and pwd per live section; stripping leaves no candidate line;
// candidate lines parse or throw CandidateError.
import {
  attrName,
  iceCredentials,
  iceView,
  MAX_SDP_LENGTH,
  parseSdp,
  rewriteIce,
  type Sdp,
  SdpError,
  serializeSdp,
  stripCandidates,
} from "../../src/sdp/sdp.ts";
import { CandidateError, formatCandidate, parseCandidate } from "../../src/sdp/candidate.ts";
import { defineTarget, expect, type Rng, sdpAttributeName as attributeName } from "./harness.ts";

interface SdpCase {
  text: string;
  /** The input's ICE values (lower case): no rewrite may keep any of them. */
  markers: string[];
  /** Candidate addresses among the markers: stripping candidates removes them too. */
  addresses: string[];
  /** Per media section: port 0. */
  rejected: boolean[];
  /** Per media section: candidate lines that are well formed. */
  candidates: number[];
  /** What was done to the text after it was built; only structural oracles hold then. */
  corruption?: string;
  endOfCandidates: boolean;
  lite: boolean;
}

/** ICE attributes xRTC replaces (RFC 8839 §5), and those stripping candidates removes. */
const ICE_NAMES = ["candidate", "end-of-candidates", "ice-ufrag", "ice-pwd", "ice-lite", "remote-candidates"];
const CANDIDATE_NAMES = ["candidate", "end-of-candidates", "remote-candidates"];
/** The rewrite's credentials: nothing generated contains "zq", so no marker can hide in them. */
const NEW_UFRAG = "xrtcNEW1";
const NEW_PWD = "xrtcnewpasswordxrtcnew";
const MARKER_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789+/";

const isIceLine = (line: string) => ICE_NAMES.includes(attributeName(line) ?? "");
const isCandidateLine = (line: string) => CANDIDATE_NAMES.includes(attributeName(line) ?? "");

class Builder {
  markers: string[] = [];
  addresses: string[] = [];
  constructor(readonly rng: Rng) {}

  marker(prefix: string, length: number): string {
    const value = prefix + this.rng.text(MARKER_CHARS, length);
    this.markers.push(value);
    return this.rng.chance(0.3) ? this.rng.randomCase(value) : value;
  }

  address(): string {
    const rng = this.rng;
    const value = rng.chance(0.8)
      ? `198.${rng.int(18, 19)}.${rng.below(256)}.${rng.int(1, 254)}`
      : `fd${rng.below(256).toString(16).padStart(2, "0")}::${rng.int(1, 0xffff).toString(16)}`;
    this.markers.push(value);
    this.addresses.push(value);
    return value;
  }

  /** "a=<name>" with the name in random letter case, as Janus and browsers accept it. */
  attr(name: string, value?: string): string {
    const spelled = this.rng.chance(0.4) ? this.rng.randomCase(name) : name;
    return value === undefined ? `a=${spelled}` : `a=${spelled}:${value}`;
  }

  /** Field separators of a candidate line: one space, or odd runs of spaces and tabs. */
  gap(): string {
    return this.rng.chance(0.85) ? " " : this.rng.pick(["  ", "\t", " \t ", "   "]);
  }

  candidate(): { line: string; wellFormed: boolean } {
    const rng = this.rng, g = () => this.gap();
    const transport = rng.pick(["udp", "UDP", "tcp", "TCP"]);
    const type = rng.pick(["host", "srflx", "prflx", "relay"]);
    let fields = [
      String(rng.below(4_000_000_000)),
      String(rng.int(1, 2)),
      transport,
      String(rng.u32()),
      this.address(),
      String(rng.below(65536)),
      "typ",
      type,
    ];
    if (type !== "host") fields.push("raddr", this.address(), "rport", String(rng.below(65536)));
    if (transport.toLowerCase() === "tcp") fields.push("tcptype", rng.pick(["active", "passive", "so"]));
    if (rng.chance(0.5)) fields.push("generation", "0", "ufrag", this.marker("zqc", 6), "network-id", "1");
    let wellFormed = true;
    if (rng.chance(0.12)) {
      wellFormed = false;
      const broken = rng.below(4);
      if (broken === 0) fields = fields.slice(0, rng.int(1, 7));
      else if (broken === 1) fields[3] = rng.pick(["x", "1.5", "Infinity", ""]);
      else if (broken === 2) fields[5] = rng.pick(["70000", "-1", "port"]);
      else fields[6] = "TYP";
    }
    const value = fields.map((f, i) => (i === 0 ? f : g() + f)).join("");
    return { line: this.attr("candidate", value) + (rng.chance(0.1) ? " \t" : ""), wellFormed };
  }

  /** ICE lines of one level: credentials, candidates, end-of-candidates, remote-candidates. */
  iceLines(level: "session" | "media"): { lines: string[]; candidates: number } {
    const rng = this.rng;
    const lines: string[] = [];
    let candidates = 0;
    const credentials = level === "media" ? 0.8 : 0.3;
    for (let n = rng.chance(0.1) ? 2 : 1; n > 0; n--) {
      // Now and then a value after a space, or a flag with no value at all.
      const pad = rng.chance(0.1) ? " " : "";
      if (rng.chance(credentials)) {
        lines.push(this.attr("ice-ufrag", pad + this.marker("zqu", rng.int(2, 8))));
      }
      if (rng.chance(credentials)) {
        lines.push(this.attr("ice-pwd", pad + this.marker("zqp", rng.int(19, 30))));
      }
      if (rng.chance(0.03)) lines.push(this.attr(rng.pick(["ice-ufrag", "ice-pwd"])));
    }
    const count = level === "media" ? rng.int(0, 4) : rng.chance(0.1) ? 1 : 0;
    for (let i = 0; i < count; i++) {
      const c = this.candidate();
      lines.push(c.line);
      if (c.wellFormed) candidates++;
    }
    if (rng.chance(0.3)) lines.push(this.attr("end-of-candidates"));
    if (rng.chance(0.15)) {
      lines.push(this.attr("remote-candidates", `1 ${this.address()} ${rng.below(65536)}`));
    }
    return { lines, candidates };
  }

  /** Attributes that are not ICE's, some named like them. */
  otherLines(): string[] {
    const rng = this.rng;
    const pool = [
      "a=sendrecv",
      "a=rtcp-mux",
      `a=setup:${rng.pick(["actpass", "active", "passive"])}`,
      "a=ice-options:trickle",
      `a=fingerprint:sha-256 ${
        Array.from({ length: 32 }, () => rng.below(256).toString(16).padStart(2, "0").toUpperCase()).join(":")
      }`,
      `a=ssrc:${rng.u32()} cname:${rng.text("abcdefgh", 8)}`,
      "a=rtpmap:111 opus/48000/2",
      "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
      "a=candidates-note:none here",
      "a=x-ice-ufrag:not-one",
      "a=ice-ufragment:neither",
      "a=msid-semantic: WMS *",
      "a=fmtp:111 minptime=10;useinbandfec=1   ",
    ];
    return Array.from({ length: rng.int(0, 6) }, () => rng.pick(pool));
  }
}

function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function corrupt(rng: Rng, text: string): { text: string; corruption: string } {
  const at = rng.below(text.length + 1);
  const kind = rng.weighted(
    [
      [5, "insert"],
      [5, "delete"],
      [2, "typeCase"],
      [2, "emptyLine"],
      [2, "noVersion"],
      [2, "duplicateLine"],
      [2, "swapLines"],
      [1, "tooLong"],
    ] as const,
  );
  switch (kind) {
    case "insert":
      return {
        text: text.slice(0, at) + rng.pick(["\0", "\r", "\n", " ", "é", "=", ":", "a=", "\r\n"]) +
          text.slice(at),
        corruption: kind,
      };
    case "delete":
      return { text: text.slice(0, at) + text.slice(at + rng.int(1, 12)), corruption: kind };
    case "typeCase":
      return { text: text.replace(/\na=/, "\nA="), corruption: kind };
    case "emptyLine":
      return { text: text.replace(/\r?\n/, "\r\n\r\n"), corruption: kind };
    case "noVersion":
      return { text: text.replace(/^v=0\r?\n/, rng.pick(["", " v=0\r\n", "x=0\r\n"])), corruption: kind };
    case "tooLong":
      return { text: text + "a=x-pad:" + "x".repeat(MAX_SDP_LENGTH) + "\r\n", corruption: kind };
  }
  const lines = text.split("\n");
  const i = rng.below(lines.length), j = rng.below(lines.length);
  if (kind === "duplicateLine") lines.splice(i, 0, lines[i]);
  else [lines[i], lines[j]] = [lines[j], lines[i]];
  return { text: lines.join("\n"), corruption: kind };
}

function generate(rng: Rng): SdpCase {
  const b = new Builder(rng);
  const session = ["v=0", `o=- ${rng.below(2 ** 31)} 2 IN IP4 127.0.0.1`, "s=-", "t=0 0"];
  const sessionAttributes = [...b.iceLines("session").lines, ...b.otherLines()];
  if (rng.chance(0.2)) sessionAttributes.push(b.attr("ice-lite"));
  session.push(...shuffle(rng, sessionAttributes));
  const sections = rng.int(rng.chance(0.05) ? 0 : 1, 5);
  const lines = [...session];
  const rejected: boolean[] = [], candidates: number[] = [];
  for (let i = 0; i < sections; i++) {
    const isRejected = rng.chance(0.2);
    const kind = rng.pick(["audio 111", "video 96 97", "application webrtc-datachannel"]);
    const [media, formats] = kind.split(/ (.*)/s);
    const proto = media === "application" ? "UDP/DTLS/SCTP" : "UDP/TLS/RTP/SAVPF";
    const port = isRejected ? 0 : rng.chance(0.8) ? 9 : rng.int(1, 65535);
    const ice = b.iceLines("media");
    lines.push(`m=${media} ${port} ${proto} ${formats}`);
    if (rng.chance(0.9)) lines.push(rng.pick(["c=IN IP4 0.0.0.0", "c=IN IP6 ::", "c=IN IP4 127.0.0.1"]));
    lines.push(...shuffle(rng, [`a=mid:${i}`, ...ice.lines, ...b.otherLines()]));
    rejected.push(isRejected);
    candidates.push(ice.candidates);
  }
  const ending = rng.weighted([[14, "\r\n"], [3, "\n"], [2, "mixed"]] as const);
  let text = lines.map((l) => l + (ending === "mixed" ? rng.pick(["\r\n", "\n"]) : ending)).join("");
  if (rng.chance(0.05)) text = text.replace(/\r?\n$/, "");
  const c: SdpCase = {
    text,
    markers: b.markers.map((m) => m.toLowerCase()),
    addresses: b.addresses.map((a) => a.toLowerCase()),
    rejected,
    candidates,
    endOfCandidates: rng.chance(0.5),
    lite: rng.chance(0.3),
  };
  if (rng.chance(0.2)) Object.assign(c, corrupt(rng, c.text));
  return c;
}

/** The value of the first line of an attribute in lines (as RFC 8866 reads it), or undefined. */
function firstValue(lines: readonly string[], name: string): string | undefined {
  const line = lines.find((l) => attributeName(l) === name);
  if (line === undefined) return undefined;
  const colon = line.indexOf(":");
  return colon < 0 ? "" : line.slice(colon + 1);
}

const count = (lines: readonly string[], name: string) =>
  lines.filter((l) => attributeName(l) === name).length;
const isRejectedSection = (section: readonly string[]) => section[0].split(" ")[1] === "0";

function checkCandidateLines(c: SdpCase, sdp: Sdp): void {
  for (const line of [...sdp.session, ...sdp.media.flat()]) {
    if (attributeName(line) !== "candidate") continue;
    let formatted: string;
    try {
      formatted = formatCandidate(parseCandidate(line));
    } catch (e) {
      if (!(e instanceof CandidateError)) throw e;
      continue;
    }
    // Parsing what was formatted gives the same candidate back.
    const again = formatCandidate(parseCandidate(formatted));
    expect(
      again === formatted,
      `candidate ${JSON.stringify(formatted)} formats back as ${JSON.stringify(again)}`,
    );
    if (c.corruption === undefined) {
      const address = formatted.split(" ")[4].toLowerCase();
      expect(c.addresses.includes(address), `candidate address ${address} was never generated`);
    }
  }
}

/** Lines that are not of `names` are kept, in order, at each level. */
function checkOthersKept(what: string, before: Sdp, after: Sdp, drop: (l: string) => boolean): void {
  const kept = (lines: readonly string[]) => lines.filter((l) => !drop(l)).join("\n");
  expect(
    kept(before.session) === kept(after.session),
    `${what} changed session-level lines that are not ICE's`,
  );
  expect(before.media.length === after.media.length, `${what} changed the number of media sections`);
  before.media.forEach((m, i) => {
    expect(
      kept(m) === kept(after.media[i]),
      `${what} changed lines of media section ${i} that are not ICE's`,
    );
  });
}

function checkRewrite(c: SdpCase, sdp: Sdp): void {
  const out = rewriteIce(sdp, {
    ufrag: NEW_UFRAG,
    pwd: NEW_PWD,
    candidates: [],
    endOfCandidates: c.endOfCandidates,
    lite: c.lite,
  });
  const text = serializeSdp(out).toLowerCase();
  checkOthersKept("rewriteIce", sdp, out, isIceLine);
  expect(
    !out.session.some((l) => isIceLine(l) && attributeName(l) !== "ice-lite"),
    "ICE lines left at session level",
  );
  expect(count(out.session, "ice-lite") === (c.lite ? 1 : 0), `ice-lite ${c.lite ? "missing" : "kept"}`);
  out.media.forEach((m, i) => {
    const ufrags = m.filter((l) => attributeName(l) === "ice-ufrag");
    const pwds = m.filter((l) => attributeName(l) === "ice-pwd");
    expect(
      count(m, "candidate") === 0 && count(m, "remote-candidates") === 0,
      `candidates left in section ${i}`,
    );
    expect(count(m, "ice-lite") === 0, `ice-lite in media section ${i}`);
    expect(
      ufrags.length === pwds.length && ufrags.length <= 1,
      `section ${i}: ${ufrags.length} ufrags, ${pwds.length} pwds`,
    );
    expect(ufrags.every((l) => l === `a=ice-ufrag:${NEW_UFRAG}`), `section ${i}: ufrag ${ufrags[0]}`);
    expect(pwds.every((l) => l === `a=ice-pwd:${NEW_PWD}`), `section ${i}: pwd ${pwds[0]}`);
    // A corrupted m-line may be neither clearly live nor clearly rejected: only bounds hold then.
    const eoc = count(m, "end-of-candidates");
    if (c.corruption !== undefined) return expect(eoc <= 1, `section ${i}: ${eoc} end-of-candidates`);
    const live = !isRejectedSection(m);
    if (live) expect(ufrags.length === 1, `live section ${i} has no ufrag`);
    expect(eoc === (live && c.endOfCandidates ? 1 : 0), `section ${i}: ${eoc} end-of-candidates`);
  });
  if (c.corruption !== undefined) return;
  for (const marker of c.markers) expect(!text.includes(marker), `ICE value ${marker} survives rewriteIce`);
}

function checkStrip(c: SdpCase, sdp: Sdp): void {
  const out = stripCandidates(sdp, c.endOfCandidates);
  checkOthersKept("stripCandidates", sdp, out, isCandidateLine);
  expect(!out.session.some(isCandidateLine), "candidate lines left at session level");
  out.media.forEach((m, i) => {
    expect(
      count(m, "candidate") === 0 && count(m, "remote-candidates") === 0,
      `candidates left in section ${i}`,
    );
    const eoc = count(m, "end-of-candidates");
    if (c.corruption !== undefined) return expect(eoc <= 1, `section ${i}: ${eoc} end-of-candidates`);
    const live = !isRejectedSection(m);
    expect(eoc === (live && c.endOfCandidates ? 1 : 0), `section ${i}: ${eoc} end-of-candidates`);
  });
  if (c.corruption !== undefined) return;
  const text = serializeSdp(out).toLowerCase();
  for (const a of c.addresses) expect(!text.includes(a), `candidate address ${a} survives stripCandidates`);
}

function check(c: SdpCase): void {
  let sdp: Sdp;
  try {
    sdp = parseSdp(c.text);
  } catch (e) {
    if (!(e instanceof SdpError)) throw e;
    expect(c.corruption !== undefined, `a generated SDP does not parse: ${e.message}`);
    return;
  }
  if (/^(?:[^\n]*\r\n)+$/.test(c.text)) {
    expect(serializeSdp(sdp) === c.text, "serializeSdp(parseSdp(x)) differs from a CRLF text x");
  }
  // xRTC's attrName reads every line as RFC 8866 does, letter case aside.
  for (const line of [...sdp.session, ...sdp.media.flat()]) {
    expect(attrName(line) === attributeName(line), `attrName(${JSON.stringify(line)}) is ${attrName(line)}`);
  }
  const views = iceView(sdp);
  iceCredentials(sdp);
  if (c.corruption === undefined) {
    expect(
      views.length === c.rejected.length,
      `${views.length} sections read, ${c.rejected.length} generated`,
    );
    views.forEach((v, i) => {
      expect(v.candidates.length === c.candidates[i], `section ${i}: ${v.candidates.length} candidates read`);
      const ufrag = firstValue(sdp.media[i], "ice-ufrag") ?? firstValue(sdp.session, "ice-ufrag");
      expect(
        v.ufrag === ufrag,
        `section ${i}: ufrag ${JSON.stringify(v.ufrag)} read, ${JSON.stringify(ufrag)} written`,
      );
    });
  }
  checkCandidateLines(c, sdp);
  checkRewrite(c, sdp);
  checkStrip(c, sdp);
}

function describe(c: SdpCase): string {
  return JSON.stringify({
    corruption: c.corruption,
    endOfCandidates: c.endOfCandidates,
    lite: c.lite,
    text: c.text,
  });
}

export const sdpTarget = defineTarget({ name: "sdp", generate, check, describe });
