// Janus signalling (src/signalling/janus.ts) with a real Negotiator whose sink is plain data. Each input is
// one sequence: client requests over HTTP and WebSocket with odd ids, Janus's replies (now, later or
// never) with real or bogus ids, Janus events and maxev arrays carrying jsep offers and answers (the
// fixtures' real SDP and garbage), trickles, hangups, deep JSON and non-JSON text, the clock moving on.
// Nothing may throw out of fromClient, replied or rewriteJanusText; no client candidate reaches Janus and
// none of Janus's reaches the client; sessions exist only for ids Janus issued; capacity is never
// exceeded and none is left once every Janus session is gone.
import {
  type ClientContext,
  isObject,
  JanusSignalling,
  type Json,
  type Pending,
  rewriteJanusText,
} from "../../src/signalling/janus.ts";
import { BackendPool } from "../../src/signalling/backends.ts";
import { defaultOptions } from "../../src/config/load.ts";
import type { Limits } from "../../src/config/types.ts";
import { makeClientCandidates, Negotiator, type RouteMode } from "../../src/ice/negotiation/negotiator.ts";
import type { SessionSpec, SpecSink, SpecUpdate } from "../../src/ice/negotiation/spec.ts";
import { ClaimBoard } from "../../src/ice/shards/claims.ts";
import { ManualClock } from "../../src/io/clock.ts";
import { MAX_JANUS_CANDIDATES } from "../../src/ice/timing.ts";
import { KINDS } from "../../src/telemetry/catalog.ts";
import { JANUS_VERBS } from "../../src/signalling/janus_api.ts";
import {
  defineTarget,
  expect,
  OracleFailure,
  type Rng,
  sdpAttributeName as attributeName,
  threw,
} from "./harness.ts";

const CLIENT_OFFER = Deno.readTextFileSync(new URL("../fixtures/chromium-offer.sdp", import.meta.url));
const JANUS_ANSWER = Deno.readTextFileSync(new URL("../fixtures/janus-answer.sdp", import.meta.url));
/** The one candidate clients may see: xRTC's. */
const XRTC_ADDRESS = "198.18.0.1";
/** Janus's candidates (the fixture's, and one more of each family): never shown to the client. */
const JANUS_ADDRESSES = ["198.18.0.2", "fd00::2"];
const DEFAULTS = defaultOptions();
/** Keys that shadow what every object inherits: JSON may carry them anywhere. */
const POISON_KEYS = ["toString", "valueOf", "__proto__", "constructor", "hasOwnProperty"];

// ---- JSON text, with values JSON.parse cannot give back exactly (big or odd numbers, deep nesting) ----

/** JSON text written as is. */
class Raw {
  constructor(readonly text: string) {}
}
type Value = null | boolean | number | string | Raw | Value[] | { [key: string]: Value | undefined };

function jsonText(v: Value): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(jsonText).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v).filter((e): e is [string, Value] => e[1] !== undefined);
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** An object with one more key, which may be one an ordinary object literal would not keep ("__proto__"). */
function withKey(
  o: { [key: string]: Value | undefined },
  key: string,
  value: Value,
): { [key: string]: Value | undefined } {
  const out: { [key: string]: Value | undefined } = Object.assign(Object.create(null), o);
  out[key] = value;
  return out;
}

function deep(rng: Rng, levels: number): Raw {
  return rng.chance(0.5)
    ? new Raw("[".repeat(levels) + "1" + "]".repeat(levels))
    : new Raw('{"a":'.repeat(levels) + '"x"' + "}".repeat(levels));
}

/** A value that is not a Janus id, in every shape a client or a broken Janus could send. */
function oddValue(rng: Rng): Value {
  return rng.pick<() => Value>([
    () => 0,
    () => -rng.int(1, 1000),
    () => rng.int(1, 1000) + 0.5,
    () => new Raw("12345678901234567890123"),
    () => new Raw(`${rng.int(1, 9)}.0`),
    () => new Raw("-0"),
    () => new Raw("1e3"),
    () => 2 ** 53 + 2,
    () => "abc",
    () => "0012",
    () => "",
    () => ({}),
    () => [],
    () => [rng.int(1, 9)],
    () => null,
    () => true,
    () => deep(rng, rng.int(100, 600)),
    () => withKey({}, rng.pick(POISON_KEYS), 1),
  ])();
}

// ---- the input ----

interface PlannedReply {
  /** Janus's reply text; undefined when Janus could not be reached. */
  text?: string;
  /** Answered by a later step (or never, when the connection goes). */
  later: boolean;
}

type Step =
  | {
    kind: "client";
    protocol: "http" | "ws";
    client: string;
    /** HTTP: the ids in the request path. */
    pathSession?: string;
    pathHandle?: string;
    text: string;
    reply: PlannedReply;
  }
  | { kind: "late"; pick: number }
  | { kind: "janus"; protocol: "http" | "ws"; pathSession?: string; pathHandle?: string; text: string }
  | { kind: "clock"; ms: number }
  | { kind: "shardEnded"; key: string }
  | { kind: "wsClosed" };

interface SignallingCase {
  route: RouteMode;
  limits: Limits;
  maxSessions: number;
  consentTimeoutMs: number;
  /** Addresses of the client's candidates, in its SDP and trickles (lower case). */
  clientAddresses: string[];
  steps: Step[];
}

// ---- generation ----

/** What the generator believes Janus issued; requests mostly name these, so sequences get far. */
class Story {
  readonly sessionIds: number[];
  readonly handleIds: number[];
  readonly sessions: number[] = [];
  readonly handles: Array<[number, number]> = [];
  readonly clientAddresses: string[] = [];
  transactions = 0;

  constructor(readonly rng: Rng) {
    const id = () => rng.chance(0.5) ? rng.int(1, 999) : rng.int(1, Number.MAX_SAFE_INTEGER);
    this.sessionIds = Array.from({ length: rng.int(1, 3) }, id);
    this.handleIds = Array.from({ length: rng.int(1, 4) }, id);
  }

  session(): number {
    return this.sessions.length && this.rng.chance(0.85)
      ? this.rng.pick(this.sessions)
      : this.rng.pick(this.sessionIds);
  }

  handle(): [number, number] {
    return this.handles.length && this.rng.chance(0.85)
      ? this.rng.pick(this.handles)
      : [this.session(), this.rng.pick(this.handleIds)];
  }

  /** An id as a client writes it: usually the number, sometimes its text, now and then not an id. */
  idValue(id: number): Value {
    return this.rng.weighted<() => Value>([
      [85, () => id],
      [10, () => String(id)],
      [5, () => oddValue(this.rng)],
    ])();
  }

  transaction(): Value {
    return this.rng.chance(0.95) ? `t${++this.transactions}` : oddValue(this.rng);
  }

  clientAddress(): string {
    const rng = this.rng;
    const a = rng.chance(0.8)
      ? `198.${rng.pick([18, 19])}.${rng.int(7, 255)}.${rng.int(1, 254)}`
      : `fd00::7:${rng.int(1, 0xffff).toString(16)}`;
    this.clientAddresses.push(a);
    return a;
  }

  clientCandidate(): string {
    const rng = this.rng;
    const transport = rng.pick(["udp", "UDP", "tcp"]);
    const tcp = transport === "tcp" ? " tcptype active" : "";
    const fields = [rng.below(1e9), 1, transport, rng.u32(), this.clientAddress(), rng.below(65536)];
    return `candidate:${fields.join(" ")} typ host${tcp}`;
  }
}

function sdpLines(text: string): string[] {
  return text.split("\r\n").filter((l) => l !== "");
}

function joinSdp(rng: Rng, lines: string[]): string {
  const eol = rng.chance(0.85) ? "\r\n" : "\n";
  return lines.join(eol) + eol;
}

/** Inserts lines at random places after the first line of each media section they are given for. */
function insertInSections(rng: Rng, lines: string[], extra: () => string, count: number): void {
  const media = lines.flatMap((l, i) => (l.startsWith("m=") ? [i] : []));
  for (let n = 0; n < count && media.length > 0; n++) {
    const start = rng.pick(media);
    const end = media.find((i) => i > start) ?? lines.length;
    const at = rng.int(start + 1, end);
    lines.splice(at, 0, extra());
    for (let k = 0; k < media.length; k++) if (media[k] >= at) media[k]++;
  }
}

/** The client's SDP: Chromium's offer with candidates (any case) added, or broken in some way. */
function clientSdp(story: Story): string {
  const rng = story.rng;
  const shape = rng.weighted(
    [
      [70, "candidates"],
      [8, "restart"],
      [6, "noCredentials"],
      [6, "garbage"],
      [5, "empty"],
      [1, "long"],
    ] as const,
  );
  if (shape === "empty") return rng.pick(["", "v=0", "\r\n"]);
  let lines = sdpLines(CLIENT_OFFER);
  const name = () => (rng.chance(0.4) ? rng.randomCase("candidate") : "candidate");
  insertInSections(
    rng,
    lines,
    () => `a=${name()}:${story.clientCandidate().slice("candidate:".length)}`,
    rng.int(0, 5),
  );
  if (rng.chance(0.2)) {
    insertInSections(rng, lines, () => rng.pick(["a=end-of-candidates", "a=End-Of-Candidates"]), 1);
  }
  if (rng.chance(0.1)) {
    insertInSections(rng, lines, () => `a=REMOTE-candidates:1 ${story.clientAddress()} 9`, 1);
  }
  if (rng.chance(0.3)) {
    lines = lines.map((l) => l.replace(/^a=ice-(ufrag|pwd):/, (m) => `a=${rng.randomCase(m.slice(2, -1))}:`));
  }
  if (shape === "restart") {
    const ufrag = rng.text("abcdefgh", 4), pwd = rng.text("abcdefghijklmnop", 24);
    lines = lines.map((l) =>
      l.replace(/^a=ice-ufrag:.*/i, `a=ice-ufrag:${ufrag}`).replace(/^a=ice-pwd:.*/i, `a=ice-pwd:${pwd}`)
    );
  }
  if (shape === "noCredentials") lines = lines.filter((l) => !/^a=ice-(ufrag|pwd):/i.test(l));
  if (shape === "garbage") lines.splice(rng.below(lines.length), 0, rng.pick(["", "A=x", " a=y", "garbage"]));
  if (shape === "long") lines.push(`a=x-pad:${"p".repeat(300_000)}`);
  return joinSdp(rng, lines);
}

/** Janus's SDP: the fixture's answer (or it as an offer) with more candidates, any case, or broken. */
function janusSdp(rng: Rng): string {
  const respell = (l: string) =>
    l.startsWith("a=candidate:") && rng.chance(0.3) ? `a=${rng.randomCase("candidate")}:${l.slice(12)}` : l;
  let lines = sdpLines(JANUS_ANSWER).map(respell);
  const extra = () => {
    const address = rng.pick(JANUS_ADDRESSES), port = rng.int(1024, 65535);
    return rng.chance(0.5)
      ? `a=candidate:2 1 tcp 1518280447 ${address} ${port} typ host tcptype passive`
      : `a=Candidate:3 1 udp 1686052607 ${address} ${port} typ srflx raddr ${address} rport 9`;
  };
  insertInSections(rng, lines, extra, rng.int(0, 3));
  const shape = rng.weighted(
    [
      [70, "as is"],
      [8, "restart"],
      [6, "noCredentials"],
      [8, "unparsable"],
      [4, "empty"],
      [4, "text"],
    ] as const,
  );
  if (shape === "empty") return "";
  if (shape === "text") return rng.pick(["garbage", "v=0", "<html></html>"]);
  if (shape === "restart") {
    const ufrag = rng.text("ABCD", 4), pwd = rng.text("abcdefghijklmnopqrstuv", 22);
    lines = lines.map((l) =>
      l.replace(/^a=ice-ufrag:.*/, `a=ice-ufrag:${ufrag}`).replace(/^a=ice-pwd:.*/, `a=ice-pwd:${pwd}`)
    );
  }
  if (shape === "noCredentials") lines = lines.filter((l) => !/^a=ice-(ufrag|pwd):/.test(l));
  // Unparsable, with every candidate still on a line of its own (as any SDP reader would see it).
  if (shape === "unparsable") lines.splice(rng.below(lines.length), 0, rng.pick(["", "A=x", "x"]));
  return joinSdp(rng, lines);
}

function jsepType(rng: Rng, usual: "offer" | "answer"): Value {
  return rng.weighted<() => Value>([
    [90, () => usual],
    [4, () => (usual === "offer" ? "answer" : "offer")],
    [3, () => rng.pick(["OFFER", "pranswer", "rollback", ""])],
    [2, () => rng.pick<Value>([1, null, {}, []])],
    [1, () => withKey({}, rng.pick(POISON_KEYS), 1)],
  ])();
}

/** The request verb: as Janus documents it, or in another case, or not a verb at all. */
function verb(rng: Rng, usual: string): Value {
  return rng.weighted<() => Value>([
    [994, () => usual],
    [3, () => rng.randomCase(usual)],
    [1, () => rng.pick(POISON_KEYS)],
    [1, () => rng.pick(["ping", "", "info", "event"])],
    [1, () => rng.pick<Value>([1, null, {}, [usual]])],
  ])();
}

type Fields = { [key: string]: Value | undefined };

/** Janus's reply to a request, as the generator expects Janus to answer it. */
function plannedReply(
  story: Story,
  request: string,
  tx: Value,
  sessionId?: number,
  handleId?: number,
): PlannedReply {
  const rng = story.rng;
  const later = rng.chance(0.15);
  const shape = rng.weighted(
    [[80, "usual"], [8, "error"], [5, "unreachable"], [4, "garbage"], [3, "poison"]] as const,
  );
  if (shape === "unreachable") return { later };
  if (shape === "garbage") {
    return { later, text: rng.pick(["", "not json", "[]", "null", '{"janus":', jsonText(deep(rng, 300))]) };
  }
  const base: Fields = { transaction: tx, session_id: sessionId };
  if (shape === "error") {
    return {
      later,
      text: jsonText({ ...base, janus: "error", error: { code: rng.pick([458, 459, 490]), reason: "no" } }),
    };
  }
  const success = (data?: Value): string => jsonText({ janus: "success", ...base, data });
  let text: string;
  switch (request) {
    case "create": {
      const id = rng.chance(0.9) ? rng.pick(story.sessionIds) : undefined;
      if (id !== undefined && !later && !story.sessions.includes(id)) story.sessions.push(id);
      text = success({ id: id ?? oddValue(rng) });
      break;
    }
    case "attach": {
      const id = rng.chance(0.9) ? rng.pick(story.handleIds) : undefined;
      if (id !== undefined && sessionId !== undefined && !later) story.handles.push([sessionId, id]);
      text = success({ id: id ?? oddValue(rng) });
      break;
    }
    case "message":
      text = rng.weighted<() => string>([
        [6, () => jsonText({ janus: "ack", ...base })],
        [
          2,
          () =>
            jsonText({
              janus: "success",
              ...base,
              sender: handleId,
              plugindata: { plugin: "janus.plugin.echotest", data: { result: "ok" } },
            }),
        ],
        [2, () => janusEvent(story, sessionId, handleId, "answer")],
        [
          1,
          () =>
            jsonText({
              janus: "event",
              ...base,
              sender: handleId,
              plugindata: { plugin: "janus.plugin.echotest", data: { error_code: 411, error: "no" } },
            }),
        ],
      ])();
      break;
    default:
      text = rng.chance(0.5) ? success() : jsonText({ janus: "ack", ...base });
  }
  if (shape === "poison") {
    const parsed = JSON.parse(text) as { [key: string]: Value };
    text = jsonText(withKey(parsed, rng.pick(POISON_KEYS), rng.chance(0.5) ? 1 : withKey({}, "toString", 1)));
  }
  return { later, text };
}

/** A Janus event carrying a jsep (an answer to the client's offer, or Janus's own offer). */
function janusEvent(
  story: Story,
  sessionId: number | undefined,
  handleId: number | undefined,
  type: "offer" | "answer",
): string {
  const rng = story.rng;
  let jsep: Value = { type: jsepType(rng, type), sdp: janusSdp(rng) };
  if (rng.chance(0.02)) jsep = rng.pick<Value>([{ type }, { type, sdp: 5 }, "x", deep(rng, 200)]);
  return jsonText({
    janus: "event",
    session_id: sessionId === undefined ? undefined : rng.chance(0.95) ? sessionId : oddValue(rng),
    sender: handleId === undefined ? undefined : rng.chance(0.95) ? handleId : oddValue(rng),
    transaction: rng.chance(0.3) ? `t${story.transactions}` : undefined,
    plugindata: { plugin: "janus.plugin.echotest", data: { echotest: "event", result: "ok" } },
    jsep,
  });
}

/** One event object from Janus (not as text: maxev arrays gather several). */
function janusObject(story: Story): Value {
  const rng = story.rng;
  const [sid, hid] = rng.chance(0.9) ? story.handle() : [story.session(), undefined];
  const ids: Fields = { session_id: rng.chance(0.9) ? sid : undefined, sender: hid };
  const candidate = (): Value => {
    const address = rng.pick(JANUS_ADDRESSES);
    return rng.weighted<() => Value>([
      [
        6,
        () => ({
          sdpMid: "0",
          sdpMLineIndex: 0,
          candidate: `candidate:1 1 udp 2015363327 ${address} ${rng.int(1024, 65535)} typ host`,
        }),
      ],
      [2, () => ({ completed: true })],
      [1, () => ({ candidate: rng.pick<Value>(["garbage", "candidate:1 1 udp x y z typ host", 5, null]) })],
      [1, () => withKey({}, rng.pick(POISON_KEYS), "x")],
    ])();
  };
  return rng.weighted<() => Value>([
    [30, () => JSON.parse(janusEvent(story, sid, hid, rng.chance(0.7) ? "answer" : "offer")) as Value],
    [
      20,
      () => ({
        janus: "trickle",
        ...ids,
        candidate: rng.chance(0.8) ? candidate() : Array.from({ length: rng.int(0, 40) }, candidate),
      }),
    ],
    [12, () => ({ janus: rng.pick(["hangup", "detached", "timeout"]), ...ids, reason: "fuzz" })],
    [
      10,
      () => ({ janus: rng.pick(["webrtcup", "media", "slowlink", "keepalive", "ack", "success"]), ...ids }),
    ],
    [
      6,
      () => ({
        janus: "event",
        ...ids,
        plugindata: { plugin: "janus.plugin.echotest", data: { error_code: 411, error: "no" } },
      }),
    ],
    [4, () => ({ janus: rng.pick(["HANGUP", "Trickle", "event", 5]), ...ids })],
    [3, () => withKey({ janus: "event", ...ids }, rng.pick(POISON_KEYS), withKey({}, "toString", 1))],
    [2, () => ({ janus: "event", ...ids, plugindata: deep(rng, rng.int(100, 600)) })],
  ])();
}

function janusText(story: Story): string {
  const rng = story.rng;
  return rng.weighted<() => string>([
    [70, () => jsonText(janusObject(story))],
    [
      20,
      () =>
        jsonText(
          Array.from({ length: rng.int(0, 5) }, () => (rng.chance(0.9) ? janusObject(story) : oddValue(rng))),
        ),
    ],
    [5, () => rng.pick(["", "not json", "<html>", "{", "[1,", "\u0000"])],
    [5, () => jsonText(deep(rng, rng.int(100, 800)))],
  ])();
}

/** A client request and the reply Janus is planned to give it. */
function clientStep(story: Story): Step {
  const rng = story.rng;
  const protocol = rng.chance(0.5) ? "http" : "ws";
  const request = rng.weighted(
    [
      [14, "create"],
      [14, "attach"],
      [16, "offer"],
      [6, "answer"],
      [4, "message"],
      [5, "trickle"],
      [3, "keepalive"],
      [3, "hangup"],
      [2, "detach"],
      [2, "destroy"],
      [2, "claim"],
      [2, "unknown"],
      [1, "notObject"],
    ] as const,
  );
  if (request === "notObject") {
    const text = rng.pick(["", "not json", "[1,2]", "null", "5", jsonText(deep(rng, 500))]);
    return { kind: "client", protocol, client: "198.18.5.1", text, reply: { later: false } };
  }
  const janusVerb = request === "offer" || request === "answer"
    ? "message"
    : request === "unknown"
    ? rng.pick(["info", "ping", "x-fuzz", "list"])
    : request;
  const needsHandle = ["offer", "answer", "message", "trickle", "hangup", "detach"].includes(request) ||
    (request === "keepalive" && rng.chance(0.2));
  const needsSession = needsHandle || !["create", "unknown"].includes(request) || rng.chance(0.05);
  const [sid, hid] = needsHandle ? story.handle() : [needsSession ? story.session() : undefined, undefined];
  const tx = story.transaction();
  const fields: Fields = { janus: verb(rng, janusVerb), transaction: rng.chance(0.97) ? tx : undefined };
  let pathSession: string | undefined, pathHandle: string | undefined;
  if (protocol === "ws") {
    if (sid !== undefined) fields.session_id = story.idValue(sid);
    if (hid !== undefined) fields.handle_id = story.idValue(hid);
    // Sometimes ids where the request has none, or none where it needs them.
    if (rng.chance(0.03)) fields.session_id = oddValue(rng);
    if (rng.chance(0.03)) delete fields.handle_id;
  } else {
    // HTTP ids come from the path, already id-shaped (up to 20 digits).
    const idText = () => `${rng.int(1, 9)}${rng.text("0123456789", rng.chance(0.5) ? 0 : 19)}`;
    pathSession = sid === undefined ? undefined : rng.chance(0.97) ? String(sid) : idText();
    pathHandle = hid === undefined ? undefined : rng.chance(0.97) ? String(hid) : idText();
    // HTTP Janus also reads ids from the body when the path has none.
    if (rng.chance(0.05) && sid !== undefined) fields.session_id = sid;
    if (rng.chance(0.05) && hid !== undefined) fields.handle_id = hid;
  }
  switch (request) {
    case "attach":
      fields.plugin = rng.chance(0.9) ? "janus.plugin.echotest" : oddValue(rng);
      break;
    case "offer":
    case "answer":
      fields.body = rng.chance(0.9) ? { audio: true, video: true } : deep(rng, 300);
      fields.jsep = rng.chance(0.97)
        ? { type: jsepType(rng, request), sdp: clientSdp(story), trickle: rng.chance(0.5) ? true : undefined }
        : rng.pick<Value>([{ type: request }, { sdp: 5 }, [], "x"]);
      break;
    case "message":
      fields.body = { request: "configure" };
      break;
    case "trickle": {
      const one = (): Value => ({ sdpMid: "0", sdpMLineIndex: 0, candidate: story.clientCandidate() });
      if (rng.chance(0.7)) fields.candidate = rng.chance(0.85) ? one() : { completed: true };
      else fields.candidates = Array.from({ length: rng.int(0, 5) }, one);
      break;
    }
  }
  const text = jsonText(
    rng.chance(0.02) ? withKey(fields, rng.pick(POISON_KEYS), withKey({}, "toString", 1)) : fields,
  );
  const reply = plannedReply(story, janusVerb, tx, sid, hid);
  const client = rng.pick(["198.18.5.1", "198.18.5.2", "fd00::5"]);
  return { kind: "client", protocol, client, pathSession, pathHandle, text, reply };
}

function generate(rng: Rng): SignallingCase {
  const story = new Story(rng);
  const small = (usual: number) => (rng.chance(0.3) ? rng.int(1, 3) : usual);
  const limits: Limits = {
    ...DEFAULTS.limits,
    maxJanusSessions: small(DEFAULTS.limits.maxJanusSessions),
    janusSessionsPerAddress: small(DEFAULTS.limits.janusSessionsPerAddress),
    janusSessionRatePerAddress: small(DEFAULTS.limits.janusSessionRatePerAddress),
    iceSessionsPerAddress: small(DEFAULTS.limits.iceSessionsPerAddress),
    handlesPerSession: small(DEFAULTS.limits.handlesPerSession),
  };
  const steps: Step[] = [];
  // Most sequences open a session and a handle first, so they reach offers and answers.
  if (rng.chance(0.7)) {
    const sid = rng.pick(story.sessionIds), hid = rng.pick(story.handleIds);
    story.sessions.push(sid);
    story.handles.push([sid, hid]);
    const ok = (data: Value) => ({
      later: false,
      text: jsonText({ janus: "success", transaction: "t0", data }),
    });
    steps.push({
      kind: "client",
      protocol: "http",
      client: "198.18.5.1",
      text: '{"janus":"create","transaction":"t0"}',
      reply: ok({ id: sid }),
    });
    steps.push({
      kind: "client",
      protocol: "http",
      client: "198.18.5.1",
      pathSession: String(sid),
      text: '{"janus":"attach","transaction":"t0","plugin":"janus.plugin.echotest"}',
      reply: ok({ id: hid }),
    });
  }
  const count = rng.int(1, 24);
  for (let i = 0; i < count; i++) {
    const step = rng.weighted<() => Step>([
      [60, () => clientStep(story)],
      [25, () => {
        const [sid, hid] = story.handle();
        const http = rng.chance(0.5);
        return {
          kind: "janus",
          protocol: http ? "http" : "ws",
          pathSession: http && rng.chance(0.8) ? String(sid) : undefined,
          pathHandle: http && rng.chance(0.2) ? String(hid) : undefined,
          text: janusText(story),
        };
      }],
      [6, () => ({ kind: "late", pick: rng.below(8) })],
      [
        5,
        () => ({
          kind: "clock",
          ms: rng.weighted([[6, rng.int(0, 2000)], [2, rng.int(2000, 40_000)], [1, rng.int(60_000, 90_000)]]),
        }),
      ],
      [3, () => ({ kind: "shardEnded", key: story.handle().join("/") })],
      [1, () => ({ kind: "wsClosed" })],
    ])();
    steps.push(step);
  }
  return {
    route: { icedirect: rng.chance(0.4), icetcp: rng.chance(0.3) },
    limits,
    maxSessions: rng.chance(0.4) ? rng.int(1, 3) : 16,
    consentTimeoutMs: rng.pick([5_000, 30_000]),
    clientAddresses: story.clientAddresses.map((a) => a.toLowerCase()),
    steps,
  };
}

// ---- checking ----

/** A SpecSink that keeps what it was told, and what was wrong with it. */
class RecordingSink implements SpecSink {
  readonly live = new Map<string, SessionSpec>();
  readonly problems: string[] = [];

  open(spec: SessionSpec): void {
    if (this.live.has(spec.id)) this.problems.push(`session ${spec.id} opened twice`);
    for (const other of this.live.values()) {
      if (other.localUfrag === spec.localUfrag) {
        this.problems.push(`ufrag ${spec.localUfrag} given to two sessions`);
      }
    }
    if (spec.janusCandidates.length > MAX_JANUS_CANDIDATES) {
      this.problems.push(`${spec.id}: too many Janus candidates`);
    }
    this.live.set(spec.id, spec);
  }

  restore(spec: SessionSpec): void {
    this.open(spec); // no restore happens without a state directory: counted like an open
  }

  update(id: string, u: SpecUpdate): void {
    if (!this.live.has(id)) this.problems.push(`update (${u.kind}) of session ${id}, which is not open`);
  }

  end(id: string): void {
    if (!this.live.delete(id)) this.problems.push(`end of session ${id}, which is not open`);
  }
}

const candidateLines = (sdp: string) => sdp.split(/\r?\n/).filter((l) => attributeName(l) === "candidate");

/** Calls into xRTC: anything it throws is a failure, named after the call. */
function within<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof OracleFailure) throw e;
    throw threw(what, e);
  }
}

function parseJson(text: string): Json | undefined {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface Waiting {
  pending: Pending;
  reply: PlannedReply;
  protocol: "http" | "ws";
  pathSession?: string;
  pathHandle?: string;
}

class Sequence {
  readonly clock = new ManualClock();
  readonly pool = BackendPool.fromUrl("http://127.0.0.1:1", {
    intervalMs: 1000,
    timeoutMs: 100,
    fall: 1,
    rise: 1,
  });
  readonly sink = new RecordingSink();
  readonly negotiator: Negotiator;
  readonly sig: JanusSignalling;
  readonly connection = {};
  /** Ids Janus's success replies issued, as text (xRTC keys sessions and handles by it). */
  readonly issued = new Set<string>();
  readonly waiting: Waiting[] = [];

  constructor(readonly c: SignallingCase) {
    this.negotiator = new Negotiator({
      sink: this.sink,
      claims: ClaimBoard.create(c.maxSessions),
      clientCandidates: makeClientCandidates([{ proto: "udp", ips: [XRTC_ADDRESS], port: 6001 }]),
      consentTimeoutMs: c.consentTimeoutMs,
      maxSessions: c.maxSessions,
      autoSweep: false,
      clock: this.clock,
    });
    this.sig = new JanusSignalling(this.negotiator, {
      limits: c.limits,
      timers: DEFAULTS.janus,
      clock: this.clock,
    });
  }

  /** A request xRTC forwarded, as Janus reads it: the kind xRTC saw, and no candidate of the client's. */
  checkToJanus(text: string, pending: Pending): void {
    const kinds: readonly string[] = KINDS;
    expect(
      kinds.includes(pending.kind),
      `a request's kind is not a kind: ${String(pending.kind).slice(0, 40)}`,
    );
    const msg = parseJson(text);
    if (!isObject(msg) || typeof msg.janus !== "string") return;
    const janusVerb = msg.janus.toLowerCase();
    const jsep = msg.jsep;
    if (janusVerb === "message" && isObject(jsep) && typeof jsep.sdp === "string") {
      const sdp = jsep.sdp.toLowerCase();
      for (const a of this.c.clientAddresses) {
        expect(!sdp.includes(a), `client address ${a} forwarded to Janus in an SDP`);
      }
      expect(
        candidateLines(jsep.sdp).length === 0,
        `candidate lines forwarded to Janus: ${candidateLines(jsep.sdp)[0]}`,
      );
    }
    if (janusVerb === "trickle") {
      const sent = JSON.stringify([msg.candidate, msg.candidates]).toLowerCase();
      for (const a of this.c.clientAddresses) {
        expect(!sent.includes(a), `client candidate ${a} forwarded to Janus in a trickle`);
      }
    }
    if ((JANUS_VERBS as readonly string[]).includes(janusVerb)) {
      expect(
        pending.kind === janusVerb,
        `Janus dispatches "${msg.janus}" as ${janusVerb}; xRTC handled it as ${pending.kind}`,
      );
    }
  }

  /** What the client gets from Janus through xRTC: only xRTC's candidate, no trickle of Janus's. */
  checkToClient(text: string | undefined): void {
    if (text === undefined) return;
    const parsed = parseJson(text);
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!isObject(item)) continue;
      expect(item.janus !== "trickle", "a Janus trickle reached the client");
      const jsep = item.jsep;
      if (!isObject(jsep) || typeof jsep.sdp !== "string") continue;
      const sdp = jsep.sdp.toLowerCase();
      for (const a of JANUS_ADDRESSES) {
        expect(!sdp.includes(a), `Janus's address ${a} in an SDP to the client`);
      }
      for (const line of candidateLines(jsep.sdp)) {
        const address = line.trim().split(/\s+/)[4];
        expect(address === XRTC_ADDRESS, `candidate to the client that is not xRTC's: ${line}`);
      }
    }
  }

  reply(w: Waiting, text: string | undefined): void {
    const parsed = text === undefined ? undefined : parseJson(text);
    if (isObject(parsed) && parsed.janus === "success" && isObject(parsed.data)) {
      const id = parsed.data.id;
      if (typeof id === "number" || typeof id === "string") this.issued.add(String(id));
    }
    const backend = text === undefined ? undefined : this.pool.backends[0];
    within("replied", () => this.sig.replied(w.pending, parsed, backend));
    if (text === undefined) return;
    const http = w.protocol === "http";
    const ctx = http ? { sessionId: w.pathSession, handleId: w.pathHandle } : {};
    const replacement = http ? '{"janus":"keepalive"}' : undefined;
    this.checkToClient(within("rewriteJanusText", () => rewriteJanusText(text, this.sig, ctx, replacement)));
  }

  run(step: Step): void {
    switch (step.kind) {
      case "client": {
        const msg = parseJson(step.text);
        // The HTTP and WebSocket proxies refuse what is not a JSON object before signalling sees it.
        if (!isObject(msg)) return;
        const ctx: ClientContext = {
          protocol: step.protocol,
          client: step.client,
          route: this.c.route,
          pool: this.pool,
          sessionId: step.pathSession,
          handleId: step.pathHandle,
          conn: step.protocol === "ws" ? this.connection : undefined,
        };
        const verdict = within("fromClient", () => this.sig.fromClient(msg, ctx));
        if (verdict.action === "reply") {
          within("JSON.stringify(reply)", () => JSON.stringify(verdict.reply));
          return;
        }
        this.checkToJanus(verdict.changed ? JSON.stringify(msg) : step.text, verdict.pending);
        const { protocol, pathSession, pathHandle, reply } = step;
        const w: Waiting = { pending: verdict.pending, reply, protocol, pathSession, pathHandle };
        if (step.reply.later) this.waiting.push(w);
        else this.reply(w, step.reply.text);
        return;
      }
      case "late": {
        if (this.waiting.length === 0) return;
        const [w] = this.waiting.splice(step.pick % this.waiting.length, 1);
        return this.reply(w, w.reply.text);
      }
      case "janus": {
        const http = step.protocol === "http";
        const ctx = http ? { sessionId: step.pathSession, handleId: step.pathHandle } : {};
        const replacement = http ? '{"janus":"keepalive"}' : undefined;
        return this.checkToClient(
          within("rewriteJanusText", () => rewriteJanusText(step.text, this.sig, ctx, replacement)),
        );
      }
      case "clock":
        this.clock.advance(step.ms);
        within("Negotiator.sweep", () => this.negotiator.sweep());
        return within("JanusSessions.sweep", () => this.sig.sessions.sweep());
      case "shardEnded":
        within("Negotiator.ended", () => this.negotiator.ended(step.key, "consent_expired"));
        return within("iceSessionEnded", () => this.sig.iceSessionEnded(step.key));
      case "wsClosed":
        return within("connectionClosed", () => this.sig.sessions.connectionClosed(this.connection));
    }
  }

  checkState(after: string): void {
    const sessions = [...this.sig.sessions.sessions()];
    expect(this.sink.problems.length === 0, `after ${after}: ${this.sink.problems[0]}`);
    expect(
      sessions.length <= this.issued.size,
      `after ${after}: ${sessions.length} sessions, ${this.issued.size} ids issued`,
    );
    for (const s of sessions) {
      expect(this.issued.has(s.id), `after ${after}: session ${s.id} was never issued by Janus`);
      expect(
        s.handles.size <= this.c.limits.handlesPerSession,
        `after ${after}: session ${s.id} has ${s.handles.size} handles`,
      );
      for (const h of s.handles.keys()) {
        expect(this.issued.has(h), `after ${after}: handle ${h} was never issued by Janus`);
      }
    }
    const committed = this.negotiator.committed;
    expect(
      committed <= this.c.maxSessions,
      `after ${after}: ${committed} sessions committed, limit ${this.c.maxSessions}`,
    );
    expect(
      this.sink.live.size === this.negotiator.sessionCount,
      `after ${after}: ${this.sink.live.size} sessions open on the shards, ${this.negotiator.sessionCount} negotiated`,
    );
  }

  /** Every request still waiting fails (the connection went), every Janus session goes: nothing may be left. */
  finish(): void {
    for (const w of this.waiting.splice(0)) this.reply(w, undefined);
    within("JanusSessions.close", () => this.sig.sessions.close());
    this.checkState("the end");
    expect(
      this.negotiator.committed === 0,
      `${this.negotiator.committed} sessions still committed with no Janus session`,
    );
    expect(this.sink.live.size === 0, `${this.sink.live.size} sessions still open on the shards`);
    expect(
      this.sig.sessions.handleCount === 0,
      `${this.sig.sessions.handleCount} handles counted with no session`,
    );
    expect(
      this.sig.sessions.trackedClients === 0,
      `${this.sig.sessions.trackedClients} client addresses still tracked`,
    );
  }
}

function check(c: SignallingCase): void {
  const sequence = new Sequence(c);
  try {
    c.steps.forEach((step, i) => {
      try {
        sequence.run(step);
      } catch (e) {
        if (!(e instanceof OracleFailure)) throw e;
        throw new OracleFailure(`step ${i} (${step.kind}): ${e.message}`, { cause: e.cause });
      }
      sequence.checkState(`step ${i} (${step.kind})`);
    });
    sequence.finish();
  } finally {
    sequence.pool.stop();
  }
}

function describe(c: SignallingCase): string {
  return JSON.stringify(c, null, 1);
}

export const signallingTarget = defineTarget({ name: "signalling", generate, check, describe });
