// xRTC in the test process (root namespace), between the client and server namespaces, configured
// through the real routes.yml loader.
import { loadConfigText } from "../../src/config/load.ts";
import { start, type Xrtc } from "../../src/app.ts";
import type { IoBackendChoice } from "../../src/io/backend.ts";
import { makeTopology, type Topology } from "./topology.ts";
import { type Janus, type JanusOptions, startJanus } from "./janus.ts";
import { run, sleep } from "./run.ts";
import { readMetricsOf } from "./metrics.ts";
import { iceCredentials, parseSdp } from "../../src/sdp/sdp.ts";
import assert from "node:assert/strict";
import { buildCheck } from "../../src/ice/check.ts";
import { FrameDecoder } from "../../src/io/framing.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const PORTS = { udp: 6001, tcp: 6443, http: 8080 };

export interface XrtcTestOptions {
  icedirect?: boolean;
  icetcp?: boolean;
  tls?: { crt: string; key: string };
  /** Extra YAML under `options:`. */
  options?: string;
  /** Overrides XRTC_TEST_IO. */
  ioBackend?: IoBackendChoice;
  /** An admin listener: its address ("127.0.0.1:9090") and, optionally, its bearer token. */
  admin?: { addr: string; token?: string };
  /** Extra YAML of the janus upstream service (health:, backends:...), indented under it. */
  upstream?: string;
  /** The listeners' http.root (the project's html/ unless set). */
  root?: string;
  /** Two Janus servers (instances 0 and 1 of tests/lib/janus.ts) as named backends janus-a and janus-b,
   * instead of the one Janus of `servers:`. */
  twoJanus?: boolean;
  /** WHIP endpoints (YAML mappings of tag to endpoint, indented by two) on the \`web\` listener. */
  whip?: string;
  /** The shared UDP port dual-stack ("[::]") with candidates on both families (IPv4 and the client
   * link's ULA). */
  dualStack?: boolean;
}

/** The backend every integration test runs on: XRTC_TEST_IO (deno unless set). */
export const TEST_BACKEND = (Deno.env.get("XRTC_TEST_IO") ?? "deno") as IoBackendChoice;

export function testConfigYaml(t: Topology, o: XrtcTestOptions = {}): string {
  const route = `
      routes:
        janus:
          upstream: http://janus
          icedirect: ${o.icedirect ?? false}
          icetcp: ${o.icetcp ?? false}
          paths: [/janus]
          protos: [ws@janus-protocol]`;
  const tls = o.tls ? `\n      tls_crt_file: ${o.tls.crt}\n      tls_key_file: ${o.tls.key}` : "";
  return `
options:
${o.options ?? "  consent_timeout: 30s"}
services:
  janus:
    proto: upstream
    mode: rr
    ${
    o.twoJanus
      ? `backends:
      - { name: janus-a, http: "http://${t.janusAddr}:8088", ws: "ws://${t.janusAddr}:8188" }
      - { name: janus-b, http: "http://${t.janusAddr}:8089", ws: "ws://${t.janusAddr}:8189" }`
      : `servers: [http://${t.janusAddr}:8088, ws://${t.janusAddr}:8188]`
  }${o.upstream ?? ""}${
    o.admin
      ? `
  admin:
    proto: admin
    net: { addr: "${o.admin.addr}" }${o.admin.token ? `\n    token: ${o.admin.token}` : ""}`
      : ""
  }
  ice_udp:
    proto: udp
    net:
      addr: ${o.dualStack ? `"[::]:${PORTS.udp}"` : `${t.xrtcPublic}:${PORTS.udp}`}
      enable_ice: true
      candidate_ips: [${t.xrtcPublic}${o.dualStack ? `, "${t.xrtcPublic6}"` : ""}]
  ice_tcp:
    proto: tcp
    net:
      addr: ${t.xrtcPublic}:${PORTS.tcp}
      enable_ice: true
      candidate_ips: [${t.xrtcPublic}]${tls}
    enable_http: true
    http:
      root: ${o.root ?? `${ROOT}html`}${route}
  web:
    proto: http
    net:
      addr: ${t.xrtcPublic}:${PORTS.http}
    http:
      root: ${o.root ?? `${ROOT}html`}${route}${
    o.whip ? `\n      whip:\n${o.whip.split("\n").map((l) => `        ${l}`).join("\n")}` : ""
  }
`;
}

export async function startXrtc(t: Topology, o: XrtcTestOptions = {}): Promise<Xrtc> {
  const { config } = loadConfigText(testConfigYaml(t, o), "test-routes.yml");
  const x = await start(config, { ioBackend: o.ioBackend ?? TEST_BACKEND });
  readMetricsOf(x.shards);
  return x;
}

/** True when every candidate line names xRTC's public address. */
export function onlyXrtcCandidates(t: Topology, lines: string[]): boolean {
  return lines.length > 0 && lines.every((l) => l.includes(` ${t.xrtcPublic} `));
}

/** A werift echotest through the half proxy on the UDP port: everything echoed, nothing foreign. */
export function assertEcho(t: Topology, r: Record<string, unknown>) {
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  assert.ok(r.iceConnected, "ICE connected");
  assert.equal(r.dcEchoes, 5, "every data-channel message echoed");
  assert.ok((r.rtpEchoed as number) >= 27, `RTP echoed: ${r.rtpEchoed}/30`);
  assert.equal(r.rtpForeign, 0, "no other client's RTP");
  assert.equal(r.dcForeign, 0, "no other client's messages");
  assert.ok(onlyXrtcCandidates(t, r.answerCandidates as string[]), "answer carries only xRTC's candidates");
  assert.equal(r.selectedRemote, `udp:${t.xrtcPublic}:${PORTS.udp}`);
  assert.ok(r.answerLite, "xRTC is ICE-lite towards clients");
  assert.equal(r.trickleAck, "ack");
}

/** A werift echotest through the full proxy: relayed end to end, Janus's full ICE, nothing foreign. */
export function assertRelayed(t: Topology, r: Record<string, unknown>, transport: "udp" | "tcp") {
  assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
  assert.equal(r.dcEchoes, 5);
  assert.ok((r.rtpEchoed as number) >= 27, `RTP echoed ${r.rtpEchoed}`);
  assert.equal(r.rtpForeign, 0);
  assert.equal(
    r.selectedRemote,
    `${transport}:${t.xrtcPublic}:${transport === "udp" ? PORTS.udp : PORTS.tcp}`,
  );
  const cands = r.answerCandidates as string[];
  assert.ok(
    cands.length > 0 && cands.every((c) => c.includes(` ${t.xrtcPublic} `)),
    "only xRTC's candidates",
  );
  assert.equal(r.answerLite, false, "Janus's full ICE runs end to end");
}

export interface ClientResult {
  [key: string]: unknown;
  errors: string[];
  answerCandidates: string[];
  offerCandidates: string[];
}

/** The werift echotest every test runs: 5 data-channel messages and 30 RTP packets. */
export async function runEchotest(
  t: Topology,
  base: string,
  tag: string,
  o: { signal?: "http" | "ws"; iceTcp?: boolean } = {},
): Promise<ClientResult> {
  return await runWeriftClient(t, {
    signal: o.signal ?? "http",
    base,
    scenario: "echotest",
    tag,
    messages: 5,
    rtp: 30,
    iceTcp: o.iceTcp ?? false,
  });
}

/** Runs the werift client inside the client namespace. */
export async function runWeriftClient(t: Topology, opts: Record<string, unknown>): Promise<ClientResult> {
  const out = await run(
    t.inClient([
      `${ROOT}node_modules/.bin/deno`,
      "run",
      "-A",
      `--config=${ROOT}deno.json`,
      `${ROOT}tests/tools/werift_client.ts`,
      JSON.stringify(opts),
    ]),
    { allowFail: true },
  );
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`werift client printed no result:\n${out.slice(-4000)}`);
  return JSON.parse(line.slice(7));
}

export interface Stack {
  topo: Topology;
  janus: Janus;
  xrtc: Xrtc;
  base: string;
}

/** Topology, Janus and xRTC for one test, torn down whatever happens. */
export async function withStack(
  o: { janus?: JanusOptions; xrtc?: XrtcTestOptions },
  fn: (s: Stack) => Promise<void>,
): Promise<void> {
  const topo = await makeTopology();
  let janus: Janus | undefined;
  let xrtc: Xrtc | undefined;
  try {
    janus = await startJanus(topo, o.janus ?? {});
    xrtc = await startXrtc(topo, o.xrtc ?? {});
    await fn({ topo, janus, xrtc, base: `http://${topo.xrtcPublic}:${PORTS.http}` });
  } finally {
    readMetricsOf(undefined);
    await xrtc?.stop();
    await janus?.stop();
    await topo.close();
  }
}

const FIXTURE_OFFER = Deno.readTextFileSync(new URL("../fixtures/chromium-offer.sdp", import.meta.url));

/** Opens an echotest session through xRTC's HTTP API with the captured Chromium offer; returns the
 * credentials xRTC gave the client, the client's own ufrag, and the answer's candidate lines. */
export async function openEchoSession(
  base: string,
): Promise<
  { sid: number; hid: number; ufrag: string; pwd: string; clientUfrag: string; candidates: string[] }
> {
  const post = async (path: string, body: unknown) =>
    await (await fetch(`${base}/janus${path}`, { method: "POST", body: JSON.stringify(body) })).json();
  const sid = (await post("", { janus: "create", transaction: "c" })).data.id;
  const hid =
    (await post(`/${sid}`, { janus: "attach", plugin: "janus.plugin.echotest", transaction: "a" })).data.id;
  await post(`/${sid}/${hid}`, {
    janus: "message",
    transaction: "m",
    body: { audio: true, video: true },
    jsep: { type: "offer", sdp: FIXTURE_OFFER },
  });
  for (let i = 0; i < 10; i++) {
    const events = await (await fetch(`${base}/janus/${sid}?maxev=5`)).json();
    for (const e of Array.isArray(events) ? events : [events]) {
      if (e.jsep) {
        return {
          sid,
          hid,
          ...iceCredentials(parseSdp(e.jsep.sdp))!,
          clientUfrag: iceCredentials(parseSdp(FIXTURE_OFFER))!.ufrag,
          candidates: (e.jsep.sdp as string).split(/\r?\n/).filter((l) => l.startsWith("a=candidate:")),
        };
      }
    }
  }
  throw new Error("no answer from Janus through xRTC");
}

/** A client's Binding request to xRTC's ufrag, signed with `pwd` (RFC 8445 §7.2.2), with FINGERPRINT. */
export function signedCheck(
  localUfrag: string,
  remoteUfrag: string,
  pwd: string,
  o: { useCandidate?: boolean } = {},
): Uint8Array {
  return buildCheck({
    receiverUfrag: localUfrag,
    senderUfrag: remoteUfrag,
    key: new TextEncoder().encode(pwd),
    priority: 1853817087,
    controlling: true,
    tieBreaker: 12345n,
    useCandidate: o.useCandidate,
  });
}

/** A WHIP publisher's POST of an offer (RFC 9725 §4.2): asserts 201 and returns the resource's Location,
 * ETag and the answer, with the response for further header checks. */
export async function whipPublish(
  endpoint: string,
  offer: string,
): Promise<{ response: Response; answer: string; location: string; etag: string }> {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: offer,
  });
  const answer = await response.text();
  assert.equal(response.status, 201, answer);
  return {
    response,
    answer,
    location: response.headers.get("location")!,
    etag: response.headers.get("etag")!,
  };
}

/** The RFC 4571 frames an ICE-TCP connection receives within `ms`, once at least one arrived: responses
 * only (xRTC's own Binding requests, validating the client's address, are not answers). Null when xRTC
 * closed the connection. */
export async function readStunResponses(conn: Deno.Conn, ms: number): Promise<Uint8Array[] | null> {
  const dec = new FrameDecoder();
  const frames: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  const end = Date.now() + ms;
  while (Date.now() < end && frames.length === 0) {
    const n = await Promise.race([conn.read(buf), sleep(end - Date.now()).then(() => -1)]);
    if (n === null) return null;
    if (n === -1) break;
    dec.push(buf.subarray(0, n), (f) => !(f[0] === 0 && f[1] === 1) && frames.push(f.slice()));
  }
  return frames;
}
