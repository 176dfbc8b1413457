// A scriptable WebRTC client for the tests: werift, signalling with Janus through xRTC over HTTP
// (long-poll with maxev) or WebSocket. Runs inside the client namespace; prints one line
// "RESULT <json>" with what it saw.
//   deno run -A tests/tools/werift_client.ts '<json options>'
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from "werift";

interface Options {
  signal: "http" | "ws";
  /** xRTC's HTTP base, e.g. http://198.19.0.1:8080 */
  base: string;
  scenario: "echotest" | "videoroom";
  tag: string;
  messages: number;
  rtp: number;
  iceTcp?: boolean;
  /** Gather and use IPv6 addresses only (the client namespace's ULA). */
  ipv6?: boolean;
  timeoutMs?: number;
  /** Time between RTP packets (20 ms unless set). */
  rtpIntervalMs?: number;
  /** Echoes counted apart for the packets sent after this many ms of RTP (e.g. after a restart). */
  countAfterMs?: number;
  /** Restart ICE (RFC 8445 §9: new credentials, a new offer through xRTC) after this many ms of RTP. */
  iceRestartAtMs?: number;
  /** Echotest sessions at once in this process, each its own handle and PeerConnection. */
  sessions?: number;
  /** Independent clients at once in this process: each its own Janus session (and connection), one
   * echotest each. */
  clients?: number;
}

type Msg = Record<string, unknown>;
const opts: Options = JSON.parse(Deno.args[0]);
const result: Record<string, unknown> = {
  tag: opts.tag,
  answerCandidates: [],
  offerCandidates: [],
  errors: [],
};
const errors = result.errors as string[];
const deadline = setTimeout(() => finish("timeout"), opts.timeoutMs ?? 40_000);

/** Janus API over HTTP long-poll or WebSocket. */
class Janus {
  session = 0;
  #ws?: WebSocket;
  #waiters = new Map<string, { resolve: (m: Msg) => void; ackIsReply: boolean }>();
  #listeners: Array<(m: Msg) => void> = [];
  #closed = false;

  async connect(): Promise<void> {
    if (opts.signal === "ws") {
      const ws = new WebSocket(opts.base.replace(/^http/, "ws") + "/", "janus-protocol");
      await new Promise((res, rej) => {
        ws.onopen = res;
        ws.onerror = () => rej(new Error("ws error"));
      });
      result.wsProtocol = ws.protocol;
      ws.onmessage = (ev) => this.#dispatch(JSON.parse(ev.data));
      this.#ws = ws;
    }
    const created = await this.request({ janus: "create" });
    this.session = (created.data as Msg).id as number;
    if (opts.signal === "http") this.#poll();
    setInterval(() => this.request({ janus: "keepalive", session_id: this.session }).catch(() => {}), 20_000);
  }

  on(f: (m: Msg) => void) {
    this.#listeners.push(f);
  }

  #dispatch(m: Msg) {
    const t = m.transaction as string | undefined;
    const w = t ? this.#waiters.get(t) : undefined;
    // trickle and keepalive are answered by an ack; everything else by its reply or event.
    if (w && (m.janus !== "ack" || w.ackIsReply)) {
      this.#waiters.delete(t!);
      w.resolve(m);
      return;
    }
    if (m.janus === "ack") return;
    for (const f of this.#listeners) f(m);
  }

  async #poll() {
    while (!this.#closed) {
      try {
        const r = await fetch(`${opts.base}/janus/${this.session}?rid=${Date.now()}&maxev=10`);
        const body = await r.json();
        if (Array.isArray(body)) result.sawArray = true;
        for (const m of Array.isArray(body) ? body : [body]) this.#dispatch(m);
      } catch {
        // A long-poll that fails (xRTC restarting) is polled again, as janus.js does; counted apart.
        if (!this.#closed) result.pollFailures = (result.pollFailures as number ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async request(body: Msg, path = ""): Promise<Msg> {
    const transaction = crypto.randomUUID();
    const msg = { ...body, transaction };
    if (this.#ws) {
      const ackIsReply = body.janus === "trickle" || body.janus === "keepalive";
      const p = new Promise<Msg>((resolve) => this.#waiters.set(transaction, { resolve, ackIsReply }));
      this.#ws.send(JSON.stringify(msg));
      return await p;
    }
    const r = await fetch(`${opts.base}/janus${path}`, { method: "POST", body: JSON.stringify(msg) });
    return await r.json();
  }

  /** A plugin message; resolves with the event that carries its transaction (or the sync reply). */
  async message(handle: number, body: Msg, jsep?: Msg): Promise<Msg> {
    const transaction = crypto.randomUUID();
    const event = new Promise<Msg>((resolve) =>
      this.#waiters.set(transaction, { resolve, ackIsReply: false })
    );
    const msg: Msg = { janus: "message", body, transaction, session_id: this.session, handle_id: handle };
    if (jsep) msg.jsep = jsep;
    if (this.#ws) this.#ws.send(JSON.stringify(msg));
    else {
      const r = await (await fetch(`${opts.base}/janus/${this.session}/${handle}`, {
        method: "POST",
        body: JSON.stringify(msg),
      })).json();
      if (r.janus !== "ack") {
        this.#waiters.delete(transaction);
        return r;
      }
    }
    return await event;
  }

  async attach(plugin: string): Promise<number> {
    const r = await this.request({ janus: "attach", plugin, session_id: this.session }, `/${this.session}`);
    return (r.data as Msg).id as number;
  }

  async trickle(handle: number, candidate: Msg): Promise<Msg> {
    return await this.request(
      { janus: "trickle", candidate, session_id: this.session, handle_id: handle },
      `/${this.session}/${handle}`,
    );
  }

  close() {
    this.#closed = true;
  }
}

function candidatesOf(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l.startsWith("a=candidate:"));
}

function makePc(): RTCPeerConnection {
  return new RTCPeerConnection({
    codecs: { video: [new RTCRtpCodecParameters({ mimeType: "video/VP8", clockRate: 90000 })], audio: [] },
    iceUseTcp: opts.iceTcp ?? false,
    iceUseIpv4: !opts.ipv6,
    iceUseIpv6: opts.ipv6 ?? false,
  });
}

function rtpFor(seq: number, marker: string): RtpPacket {
  const payload = new TextEncoder().encode(`\x10\x00\x00${marker}#${seq}#`.padEnd(200, "x"));
  return new RtpPacket(
    new RtpHeader({ sequenceNumber: seq, timestamp: seq * 3000, payloadType: 96, marker: true }),
    Buffer.from(payload),
  );
}

let finished = false;
function finish(reason: string) {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  result.end = reason;
  console.log("RESULT " + JSON.stringify(result));
  setTimeout(() => Deno.exit(0), 100);
}

/** One echotest session; its figures go to `r`. */
async function echotest(janus: Janus, r: Record<string, unknown> = result) {
  const handle = await janus.attach("janus.plugin.echotest");
  const pc = makePc();
  const track = new MediaStreamTrack({ kind: "video" });
  pc.addTransceiver(track, { direction: "sendrecv" });
  const dc = pc.createDataChannel("xrtc");
  const echoes: string[] = [];
  dc.onMessage.subscribe((m) => echoes.push(typeof m === "string" ? m : new TextDecoder().decode(m)));
  const marker = `${opts.tag}-${crypto.randomUUID().slice(0, 8)}`;
  let rtpEchoed = 0, foreign = 0, echoedLate = 0;
  const lateFrom = opts.countAfterMs === undefined
    ? Infinity
    : Math.floor(opts.countAfterMs / (opts.rtpIntervalMs ?? 20));
  pc.onTrack.subscribe((t) => {
    t.onReceiveRtp.subscribe((rtp) => {
      const text = new TextDecoder().decode(rtp.payload);
      if (text.includes(marker)) {
        rtpEchoed++;
        if (Number(text.split("#")[1]) >= lateFrom) echoedLate++;
      } else if (text.includes("#")) foreign++;
    });
  });
  pc.iceConnectionStateChange.subscribe((s) => {
    if (s === "connected") r.iceConnected = true;
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise((r) => setTimeout(r, 300)); // let werift gather
  const local = pc.localDescription!;
  r.offerCandidates = candidatesOf(local.sdp);
  const reply = await janus.message(handle, { audio: false, video: true, data: true }, {
    type: "offer",
    sdp: local.sdp,
  });
  const jsep = reply.jsep as Msg | undefined;
  if (!jsep) throw new Error(`no answer: ${JSON.stringify(reply)}`);
  r.answerCandidates = candidatesOf(jsep.sdp as string);
  r.answerLite = (jsep.sdp as string).includes("a=ice-lite");
  r.trickleAck = (await janus.trickle(handle, { completed: true })).janus;
  await pc.setRemoteDescription({ type: "answer", sdp: jsep.sdp as string });
  await new Promise<void>((res) => {
    const check = setInterval(() => {
      if (dc.readyState === "open") {
        clearInterval(check);
        res();
      }
    }, 50);
  });
  r.dcOpen = true;
  for (let i = 0; i < opts.messages; i++) dc.send(`${marker}:msg${i}`);
  const restartAt = opts.iceRestartAtMs === undefined
    ? -1
    : Math.floor(opts.iceRestartAtMs / (opts.rtpIntervalMs ?? 20));
  for (let i = 0; i < opts.rtp; i++) {
    if (i === restartAt) void restartIce(janus, handle, pc, r);
    track.writeRtp(rtpFor(i, marker));
    await new Promise((res) => setTimeout(res, opts.rtpIntervalMs ?? 20));
  }
  await new Promise((r) => setTimeout(r, 1500));
  r.dcEchoes = echoes.filter((e) => e.includes(marker)).length;
  r.dcForeign = echoes.filter((e) => !e.includes(marker)).length;
  r.rtpEchoed = rtpEchoed;
  r.rtpForeign = foreign;
  r.rtpEchoedLate = echoedLate;
  const stats = await pc.getStats();
  for (const s of stats.values()) {
    const st = s as unknown as Record<string, unknown>;
    if (st.type === "candidate-pair" && (st.nominated || st.state === "succeeded")) {
      const remote = stats.get(st.remoteCandidateId as string) as unknown as
        | Record<string, unknown>
        | undefined;
      if (remote) r.selectedRemote = `${remote.protocol}:${remote.address ?? remote.ip}:${remote.port}`;
    }
  }
  if (Deno.env.get("XRTC_CLIENT_HANGUP") !== "0") {
    await janus.request(
      { janus: "hangup", session_id: janus.session, handle_id: handle },
      `/${janus.session}/${handle}`,
    );
  }
  await pc.close();
}

/** An ICE restart by the client: new credentials in a new offer, sent to Janus through xRTC. */
async function restartIce(janus: Janus, handle: number, pc: RTCPeerConnection, r: Record<string, unknown>) {
  try {
    pc.restartIce();
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const reply = await janus.message(handle, { audio: false, video: true, data: true }, {
      type: "offer",
      sdp: pc.localDescription!.sdp,
    });
    const jsep = reply.jsep as Msg | undefined;
    if (!jsep) throw new Error(`no answer to the ICE restart: ${JSON.stringify(reply)}`);
    await pc.setRemoteDescription({ type: "answer", sdp: jsep.sdp as string });
    r.iceRestarted = true;
  } catch (e) {
    (r.errors as string[]).push(`ice restart: ${e}`);
  }
}

async function videoroom(janus: Janus) {
  // Publisher: the client offers.
  const pub = await janus.attach("janus.plugin.videoroom");
  const joined = await janus.message(pub, {
    request: "join",
    ptype: "publisher",
    room: 1234,
    display: opts.tag,
  });
  const feed = ((joined.plugindata as Msg).data as Msg).id as number;
  const pcPub = makePc();
  const track = new MediaStreamTrack({ kind: "video" });
  pcPub.addTransceiver(track, { direction: "sendonly" });
  await pcPub.setLocalDescription(await pcPub.createOffer());
  await new Promise((r) => setTimeout(r, 300));
  const pubReply = await janus.message(pub, { request: "publish", audio: false, video: true }, {
    type: "offer",
    sdp: pcPub.localDescription!.sdp,
  });
  const pubJsep = pubReply.jsep as Msg;
  result.answerCandidates = candidatesOf(pubJsep.sdp as string);
  await pcPub.setRemoteDescription({ type: "answer", sdp: pubJsep.sdp as string });
  const marker = `${opts.tag}-vr`;
  let sending = true;
  (async () => {
    for (let i = 0; sending; i++) {
      track.writeRtp(rtpFor(i, marker));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  // Subscriber: Janus offers.
  const sub = await janus.attach("janus.plugin.videoroom");
  // The feed exists once the publisher's PeerConnection is up.
  let offerEvent: Msg = {};
  for (let i = 0; i < 20 && !offerEvent.jsep; i++) {
    await new Promise((r) => setTimeout(r, 500));
    offerEvent = await janus.message(sub, { request: "join", ptype: "subscriber", room: 1234, feed });
  }
  const offer = offerEvent.jsep as Msg | undefined;
  if (!offer) throw new Error(`no offer for the subscriber: ${JSON.stringify(offerEvent)}`);
  result.offerCandidates = candidatesOf(offer.sdp as string);
  result.offerLite = (offer.sdp as string).includes("a=ice-lite");
  const pcSub = makePc();
  let received = 0;
  pcSub.onTrack.subscribe((t) =>
    t.onReceiveRtp.subscribe((rtp) => {
      if (new TextDecoder().decode(rtp.payload).includes(marker)) received++;
    })
  );
  await pcSub.setRemoteDescription({ type: "offer", sdp: offer.sdp as string });
  await pcSub.setLocalDescription(await pcSub.createAnswer());
  await janus.message(sub, { request: "start", room: 1234 }, {
    type: "answer",
    sdp: pcSub.localDescription!.sdp,
  });
  await new Promise((r) => setTimeout(r, 6000));
  sending = false;
  result.subscriberRtp = received;
  result.iceConnected = pcSub.iceConnectionState === "connected" || pcSub.iceConnectionState === "completed";
  await pcPub.close();
  await pcSub.close();
}

/** Many independent clients: each its own Janus session through whatever node the front picks. */
async function independentClients(n: number) {
  const each = Array.from(
    { length: n },
    (_, i) => ({ tag: `${opts.tag}-${i}`, errors: [] as string[] } as Record<string, unknown>),
  );
  await Promise.all(each.map(async (r) => {
    const janus = new Janus();
    try {
      await janus.connect();
      r.session = janus.session;
      await echotest(janus, r);
    } catch (e) {
      (r.errors as string[]).push(String(e));
    } finally {
      janus.close();
      await janus.request({ janus: "destroy", session_id: janus.session }, `/${janus.session}`).catch(
        () => {},
      );
    }
  }));
  result.perClient = each.map((r) => ({
    session: r.session,
    rtpEchoed: r.rtpEchoed,
    dcEchoes: r.dcEchoes,
    rtpForeign: r.rtpForeign,
    answerCandidates: r.answerCandidates,
    selectedRemote: r.selectedRemote,
    errors: r.errors,
  }));
  errors.push(...each.flatMap((r) => r.errors as string[]));
}

async function oneClient() {
  const janus = new Janus();
  await janus.connect();
  if (opts.scenario === "videoroom") await videoroom(janus);
  else if ((opts.sessions ?? 1) === 1) await echotest(janus);
  else {
    // Many sessions at once: each with its own figures, summed here.
    const each = Array.from(
      { length: opts.sessions! },
      (_, i) => ({ tag: `${opts.tag}-${i}`, errors: [] as string[] } as Record<string, unknown>),
    );
    await Promise.all(
      each.map((r) => echotest(janus, r).catch((e) => (r.errors as string[]).push(String(e)))),
    );
    result.sessions = each.length;
    result.perSession = each.map((r) => ({
      rtpEchoed: r.rtpEchoed,
      rtpEchoedLate: r.rtpEchoedLate,
      dcEchoes: r.dcEchoes,
      errors: r.errors,
    }));
    errors.push(...each.flatMap((r) => r.errors as string[]));
  }
  // Leave nothing behind: Janus's hangup events cannot reach xRTC once this client stops polling.
  janus.close();
  await janus.request({ janus: "destroy", session_id: janus.session }, `/${janus.session}`).catch(() => {});
}

try {
  if (opts.clients) await independentClients(opts.clients);
  else await oneClient();
  finish("done");
} catch (e) {
  errors.push(String(e instanceof Error ? e.stack : e));
  finish("error");
}
