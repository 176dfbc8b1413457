// WHIP ingest (RFC 9725) into a Janus VideoRoom, a second signalling front-end beside the Janus API on
// the same listeners. A POST of an offer makes xRTC itself a Janus API client: it creates a Janus
// session, attaches the VideoRoom, joins and configures as a publisher with the offer, and answers
// 201 Created with Janus's answer. Every Janus message goes through JanusSignalling exactly as a
// client's would, so the offer and answer are rewritten by the Negotiator (the publisher sees only
// xRTC's candidates), the session is in the registry (limits, status page, metrics, state) and acts
// on Janus's replies only. xRTC keeps the Janus session alive (a long-poll for its events and
// keepalives) for as long as the WHIP session lives, and ends it on DELETE, when the publisher's ICE
// session ends (consent lost), or when Janus ends it.
//
// Bounds: resources at most MAX_WHIP_SESSIONS and an endpoint's max_publishers (sessions being set up
// count); nothing is kept for a POST until Janus has created its session; every Janus request and the
// whole set-up have deadlines; no exception leaves `handle`.
import type { HttpConfig, WhipEndpoint } from "../config/types.ts";
import { iceCredentials, parseSdp, SdpError } from "../sdp/sdp.ts";
import type { BackendPool, BackendState } from "../signalling/backends.ts";
import {
  type ClientContext,
  idOf,
  isObject,
  type JanusSignalling,
  type Json,
  type JsonObject,
} from "../signalling/janus.ts";
import { janusRequest } from "../signalling/janus_client.ts";
import type { HandleEntry, JanusSessionEntry } from "../signalling/sessions.ts";
import { readBody } from "../http/body.ts";
import { type ClientInfo, forwardedHeaders } from "../http/proxy.ts";
import { type ClusterDeps, forwardToNode } from "../http/forward.ts";
import { FORWARDED_BY } from "../signalling/directory.ts";
import { linkSignals } from "../http/signals.ts";
import {
  trickles,
  upstreamRequests,
  WHIP_STATUSES,
  type WhipEndReason,
  whipRequests,
  whipSessions,
  whipSessionsEnded,
  whipSetup,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";
import {
  bearerToken,
  firstMid,
  ifMatch,
  mediaType,
  newEtag,
  newResourceId,
  parseSdpFrag,
  RESOURCE_ID,
  restartAnswerFrag,
  sameSecret,
  SDP_TYPE,
  SDPFRAG_TYPE,
  SdpFragError,
} from "./protocol.ts";

/** WHIP sessions on the node at most (each is also a Janus session under the node's limits). */
export const MAX_WHIP_SESSIONS = 10_000;
/** From the POST's body to Janus's answer: create, attach, join and the VideoRoom's answer event. */
export const SETUP_TIMEOUT_MS = 15_000;
/** A long-poll GET for the session's events: Janus answers within 30 s. */
const LONG_POLL_TIMEOUT_MS = 45_000;
/** Keepalives to Janus at most this far apart (and at most a third of Janus's session timeout). */
const KEEPALIVE_INTERVAL_MS = 20_000;
const SWEEP_INTERVAL_MS = 1_000;
/** A PATCH body: a fragment of one bundled m-line with its candidates. */
const MAX_PATCH_BYTES = 64 * 1024;
const VIDEOROOM = "janus.plugin.videoroom";

/** VideoRoom error codes (janus_videoroom.c) and what a WHIP client is told for each. */
const VIDEOROOM_ERRORS: Record<number, { status: number; detail: string }> = {
  426: { status: 502, detail: "the endpoint's VideoRoom room does not exist on Janus" },
  431: { status: 422, detail: "Janus refused the offer (invalid SDP type)" },
  432: { status: 503, detail: "the room is full (maximum number of publishers reached)" },
  433: { status: 502, detail: "Janus refused the endpoint's room credentials" },
  436: { status: 409, detail: "a publisher with this id is already in the room" },
  437: { status: 422, detail: "Janus refused the offer (invalid SDP)" },
};

export interface WhipDeps {
  signalling: JanusSignalling;
  /** The backend pool of an endpoint's upstream. */
  pool: (endpoint: WhipEndpoint) => BackendPool;
  /** An endpoint of the configuration in effect, by its tag (restoring sessions after a restart). */
  endpoint: (tag: string) => WhipEndpoint | undefined;
  /** Several nodes: a PATCH or DELETE for a resource another node holds is served there. */
  cluster?: ClusterDeps;
  shutdown: AbortSignal;
}

type SetupOutcome =
  | { sdp: string; feed?: string }
  | { status: number; detail: string };

/** One WHIP session: its resource, and the Janus session and VideoRoom handle xRTC holds for it. */
class WhipSession {
  etag = newEtag();
  closed = false;
  /** Janus answered the offer (the 201 went out). */
  established = false;
  lastKeepalive: number;
  /** Ends the long-poll. */
  readonly stop = new AbortController();
  handle?: HandleEntry;
  /** The offer's first media section (the one a bundled fragment names). */
  mid?: string;
  /** Waits for the VideoRoom's answer to the offer (or its error). */
  awaiting?: (o: SetupOutcome) => void;
  constructor(
    readonly id: string,
    readonly endpoint: WhipEndpoint,
    readonly session: JanusSessionEntry,
    readonly ctx: ClientContext,
  ) {
    this.lastKeepalive = Date.now();
  }
  get backend(): BackendState {
    return this.session.backend;
  }
  get location(): string {
    return `${this.endpoint.path}/${this.id}`;
  }
}

function problem(status: number, detail: string, headers: Record<string, string> = {}): Response {
  return new Response(`${detail}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

const CORS_EXPOSED = "Location, ETag, Accept-Patch, Accept-Post, Content-Type";

/** CORS for browser publishers (RFC 9725 §4.2: the endpoint answers OPTIONS, pre-flight included). */
function withCors(res: Response, methods: string): Response {
  const h = res.headers;
  h.set("access-control-allow-origin", "*");
  h.set("access-control-expose-headers", CORS_EXPOSED);
  h.set("access-control-allow-methods", methods);
  h.set("access-control-allow-headers", "Authorization, Content-Type, If-Match");
  return res;
}

export class WhipFront {
  readonly #sessions = new Map<string, WhipSession>();
  /** POSTs of each endpoint between admission and their 201 (or failure). */
  readonly #settingUp = new Map<string, number>();
  readonly #client = Deno.createHttpClient({ poolIdleTimeout: 30_000 });
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(readonly deps: WhipDeps) {
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    whipSessions.collectWith((set) => set({}, this.#sessions.size));
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** A request under an endpoint's path. Never throws. */
  async handle(
    req: Request,
    url: URL,
    client: ClientInfo,
    endpoint: WhipEndpoint,
    http: HttpConfig,
  ): Promise<Response> {
    const rest = url.pathname.slice(endpoint.path.length);
    const onEndpoint = rest === "" || rest === "/";
    const methods = onEndpoint ? "POST, OPTIONS" : "PATCH, DELETE, OPTIONS";
    let res: Response;
    try {
      res = await this.#dispatch(req, rest, onEndpoint, methods, client, endpoint, http);
    } catch (e) {
      log("error", "whip_handler_error", { endpoint: endpoint.tag, method: req.method, error: e });
      res = problem(502, "xRTC could not complete the request");
    }
    const method = ["POST", "PATCH", "DELETE", "OPTIONS"].includes(req.method) ? req.method : "other";
    const status = String(res.status);
    whipRequests.inc({
      method: method as "POST",
      status: (WHIP_STATUSES as readonly string[]).includes(status) ? status as "502" : "502",
    });
    return withCors(res, methods);
  }

  async #dispatch(
    req: Request,
    rest: string,
    onEndpoint: boolean,
    methods: string,
    client: ClientInfo,
    endpoint: WhipEndpoint,
    http: HttpConfig,
  ): Promise<Response> {
    if (req.method === "OPTIONS") {
      const h: Record<string, string> = { allow: methods };
      if (onEndpoint) h["accept-post"] = SDP_TYPE;
      else h["accept-patch"] = SDPFRAG_TYPE;
      return new Response(null, { status: 204, headers: h });
    }
    const resourceId = onEndpoint ? undefined : rest.slice(1);
    if (resourceId !== undefined && (rest.lastIndexOf("/") !== 0 || !RESOURCE_ID.test(resourceId))) {
      return problem(404, "no such WHIP session");
    }
    const allowed = onEndpoint ? req.method === "POST" : req.method === "PATCH" || req.method === "DELETE";
    if (!allowed) return problem(405, `${req.method} is not allowed here`, { allow: methods });
    // RFC 9725 §4.5: the endpoint's token authorizes the POST and every request on its sessions.
    if (endpoint.token !== undefined) {
      const given = bearerToken(req.headers.get("authorization"));
      if (given === undefined || !sameSecret(given, endpoint.token)) {
        return problem(401, "a valid bearer token is required", {
          "www-authenticate": given === undefined ? 'Bearer realm="whip"' : 'Bearer error="invalid_token"',
        });
      }
    }
    if (onEndpoint) return await this.#post(req, client, endpoint, http);
    const ws = this.#sessions.get(resourceId!);
    if (!ws && this.deps.cluster && !req.headers.has(FORWARDED_BY)) {
      return await this.#viaOwner(this.deps.cluster, req, client, resourceId!);
    }
    if (!ws || ws.endpoint.tag !== endpoint.tag) {
      return problem(404, "no such WHIP session");
    }
    if (req.method === "DELETE") {
      await this.#end(ws, "deleted");
      return new Response(null, { status: 200 });
    }
    return await this.#patch(req, ws, http);
  }

  /** A PATCH or DELETE for a resource this node does not hold: served by the node that holds it (a
   * load balancer may send a publisher's requests to any node). */
  async #viaOwner(
    cluster: ClusterDeps,
    req: Request,
    client: ClientInfo,
    resource: string,
  ): Promise<Response> {
    const owner = await cluster.directory.locateWhip(resource);
    if (owner.where === "unknown") return problem(404, "no such WHIP session");
    if (owner.where !== "node") {
      return problem(503, "the node holding this WHIP session cannot be reached now", { "retry-after": "1" });
    }
    let body: Uint8Array | null = null;
    if (req.method === "PATCH") {
      const read = await readBody(req.body, MAX_PATCH_BYTES, 10_000, req.signal);
      if ("error" in read) {
        return read.error === "too_large"
          ? problem(413, "the fragment is too large")
          : problem(400, "no body");
      }
      body = read.bytes;
    }
    const url = new URL(req.url);
    const result = await forwardToNode(
      owner,
      url.pathname + url.search,
      {
        method: req.method,
        headers: forwardedHeaders(req.headers, client),
        body: body ? new TextDecoder().decode(body) : null,
      },
      "whip",
      `whip:${resource}`,
      cluster,
      req.signal,
    );
    if ("error" in result) {
      return problem(503, `the node holding this WHIP session did not answer`, { "retry-after": "1" });
    }
    const r = result.response;
    const text = await readBody(r.body, MAX_PATCH_BYTES, 10_000, req.signal);
    const headers = new Headers();
    for (const h of ["content-type", "etag", "accept-patch", "allow", "retry-after", "www-authenticate"]) {
      const v = r.headers.get(h);
      if (v !== null) headers.set(h, v);
    }
    return new Response(
      "error" in text || text.bytes.length === 0 ? null : new TextDecoder().decode(text.bytes),
      {
        status: r.status,
        headers,
      },
    );
  }

  // ---- POST: a new publisher (RFC 9725 §4.2) ----

  async #post(req: Request, client: ClientInfo, endpoint: WhipEndpoint, http: HttpConfig): Promise<Response> {
    const sig = this.deps.signalling;
    if (sig.draining) return problem(503, "this node is draining: no new sessions", { "retry-after": "5" });
    if (mediaType(req.headers.get("content-type")) !== SDP_TYPE) {
      return problem(415, `the offer must be ${SDP_TYPE}`, { "accept-post": SDP_TYPE });
    }
    const read = await readBody(
      req.body,
      Math.min(http.maxBodyBytes, 256 * 1024),
      http.bodyTimeoutMs,
      req.signal,
    );
    if ("error" in read) {
      if (read.error === "too_large") return problem(413, "the offer is too large");
      return problem(400, "the offer did not arrive");
    }
    const offer = new TextDecoder().decode(read.bytes);
    // Checked before anything is asked of Janus: an offer xRTC cannot use costs nothing.
    try {
      if (!iceCredentials(parseSdp(offer))) return problem(400, "the offer has no ice-ufrag/ice-pwd");
    } catch (e) {
      if (e instanceof SdpError) return problem(400, `the offer is not SDP: ${e.message}`);
      throw e;
    }
    const busy = this.#settingUp.get(endpoint.tag) ?? 0;
    const live = [...this.#sessions.values()].filter((s) => s.endpoint.tag === endpoint.tag).length;
    if (endpoint.maxPublishers > 0 && live + busy >= endpoint.maxPublishers) {
      return problem(503, `this endpoint takes ${endpoint.maxPublishers} publisher(s) at once`, {
        "retry-after": "5",
      });
    }
    if (this.#sessions.size + busy >= MAX_WHIP_SESSIONS) {
      return problem(503, "at the limit of WHIP sessions", { "retry-after": "5" });
    }
    this.#settingUp.set(endpoint.tag, busy + 1);
    const started = performance.now();
    const deadline = AbortSignal.timeout(SETUP_TIMEOUT_MS);
    const { signal, dispose } = linkSignals(deadline, this.deps.shutdown);
    try {
      const res = await this.#setup(offer, client, endpoint, signal);
      if (res.status === 201) whipSetup.observe({}, (performance.now() - started) / 1000);
      return res;
    } finally {
      dispose();
      const n = (this.#settingUp.get(endpoint.tag) ?? 1) - 1;
      if (n > 0) this.#settingUp.set(endpoint.tag, n);
      else this.#settingUp.delete(endpoint.tag);
    }
  }

  async #setup(
    offer: string,
    client: ClientInfo,
    endpoint: WhipEndpoint,
    signal: AbortSignal,
  ): Promise<Response> {
    const sig = this.deps.signalling;
    const ctx: ClientContext = {
      protocol: "http",
      client: client.remoteHost,
      route: { icedirect: endpoint.icedirect, icetcp: endpoint.icetcp },
      pool: this.deps.pool(endpoint),
    };
    // 1. A Janus session, placed like any new one (the next backend when one does not answer).
    const create: JsonObject = { janus: "create" };
    const created = sig.fromClient(create, ctx);
    if (created.action === "reply") return refusal(created.status, created.reply);
    let reply: JsonObject | undefined, backend: BackendState | undefined;
    for (const b of created.backends) {
      if (signal.aborted) break;
      reply = await janusRequest(b, "", create, this.#client);
      if (reply) {
        backend = b;
        break;
      }
    }
    sig.replied(created.pending, reply, backend);
    const sid = reply?.janus === "success" && isObject(reply.data) ? idOf(reply.data.id) : undefined;
    const session = sid === undefined ? undefined : sig.sessions.get(sid);
    if (!session) {
      return problem(created.backends.length ? 502 : 503, "Janus did not create a session", {
        "retry-after": "5",
      });
    }
    session.whip = endpoint.tag;
    const ws = new WhipSession(newResourceId(), endpoint, session, { ...ctx, sessionId: session.id });
    ws.mid = firstMid(offer);
    const fail = async (status: number, detail: string): Promise<Response> => {
      await this.#release(ws);
      log("warn", "whip_setup_failed", { endpoint: endpoint.tag, janus_session: session.id, status, detail });
      return problem(status, detail);
    };
    // 2. The VideoRoom handle.
    const attach: JsonObject = { janus: "attach", plugin: VIDEOROOM };
    const attaching = sig.fromClient(attach, ws.ctx);
    if (attaching.action === "reply") {
      return await fail(refusalStatus(attaching.status), "Janus refused the attach");
    }
    reply = await janusRequest(session.backend, `/${session.id}`, attach, this.#client);
    sig.replied(attaching.pending, reply, session.backend);
    const hid = reply?.janus === "success" && isObject(reply.data) ? idOf(reply.data.id) : undefined;
    ws.handle = hid === undefined ? undefined : session.handles.get(hid);
    if (!ws.handle) return await fail(502, "Janus did not attach the VideoRoom");
    // 3. Janus's events (the answer comes as one) from here on.
    const answered = new Promise<SetupOutcome>((resolve) => ws.awaiting = resolve);
    void this.#poll(ws);
    // 4. Join as a publisher with the offer: the Negotiator gives Janus the offer with xRTC's
    // credentials and no candidates.
    const body: JsonObject = { request: "joinandconfigure", ptype: "publisher", room: endpoint.room };
    if (endpoint.pin !== undefined) body.pin = endpoint.pin;
    if (endpoint.display !== undefined) body.display = endpoint.display;
    const join: JsonObject = { janus: "message", body, jsep: { type: "offer", sdp: offer } };
    const joining = sig.fromClient(join, { ...ws.ctx, handleId: ws.handle.id });
    if (joining.action === "reply") {
      const reason = isObject(joining.reply.error) ? String(joining.reply.error.reason ?? "") : "";
      return await fail(joining.status === 200 ? 400 : refusalStatus(joining.status), reason || "refused");
    }
    reply = await janusRequest(session.backend, `/${session.id}/${ws.handle.id}`, join, this.#client);
    sig.replied(joining.pending, reply, session.backend);
    if (reply?.janus === "error") {
      const reason = isObject(reply.error) ? String(reply.error.reason ?? "").slice(0, 200) : "";
      return await fail(422, `Janus refused the offer: ${reason}`);
    }
    if (reply?.janus !== "ack" && reply?.janus !== "success") {
      return await fail(502, "Janus did not take the offer");
    }
    const outcome = await Promise.race([
      answered,
      new Promise<SetupOutcome>((resolve) => {
        const timedOut = () => resolve({ status: 504, detail: "Janus did not answer in time" });
        if (signal.aborted) timedOut();
        signal.addEventListener("abort", timedOut, { once: true });
      }),
    ]);
    ws.awaiting = undefined;
    if ("status" in outcome) return await fail(outcome.status, outcome.detail);
    if (!ws.handle.ice.spec && this.deps.signalling.negotiator) {
      return await fail(502, "Janus's answer was not usable");
    }
    if (ws.closed) return problem(502, "Janus ended the session");
    ws.established = true;
    this.#sessions.set(ws.id, ws);
    this.#record(ws);
    log("info", "whip_session_open", {
      endpoint: endpoint.tag,
      resource: ws.id,
      session: ws.handle.key,
      client: client.remoteHost,
      feed: outcome.feed,
    });
    return new Response(outcome.sdp, {
      status: 201,
      headers: {
        "content-type": SDP_TYPE,
        location: ws.location,
        etag: ws.etag,
        "accept-patch": SDPFRAG_TYPE,
      },
    });
  }

  // ---- Janus's events for a session ----

  /** The long-poll of a WHIP session's Janus session, for as long as it lives. Every event goes
   * through JanusSignalling (which rewrites Janus's answer and absorbs its trickles) first. */
  async #poll(ws: WhipSession): Promise<void> {
    let failures = 0;
    while (!ws.closed) {
      const { signal, dispose } = linkSignals(ws.stop.signal, AbortSignal.timeout(LONG_POLL_TIMEOUT_MS));
      let events: Json | undefined;
      try {
        const r = await fetch(`${ws.backend.backend.httpUrl}/janus/${ws.session.id}?maxev=10`, {
          signal,
          client: this.#client,
        });
        events = await r.json() as Json;
        failures = 0;
      } catch (e) {
        if (ws.closed) break;
        upstreamRequests.inc({ backend: ws.backend.name, outcome: "error" });
        if (++failures >= 3) {
          log("warn", "whip_janus_unreachable", { resource: ws.id, janus_session: ws.session.id, error: e });
          this.#settle(ws, { status: 502, detail: "Janus stopped answering" });
          void this.#end(ws, "janus_gone");
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
        continue;
      } finally {
        dispose();
      }
      for (const ev of Array.isArray(events) ? events : [events]) {
        if (isObject(ev)) this.#event(ws, ev);
      }
    }
  }

  #event(ws: WhipSession, ev: JsonObject): void {
    const sig = this.deps.signalling;
    // The Janus session answered a poll: it is alive (the registry's idleness clock).
    if (sig.sessions.get(ws.session.id) === ws.session) sig.sessions.touch(ws.session);
    if (ev.janus === "error") {
      // 458: Janus no longer knows the session.
      this.#settle(ws, { status: 502, detail: "Janus lost the session" });
      void this.#end(ws, "janus_gone");
      return;
    }
    sig.fromJanus(ev, { sessionId: ws.session.id });
    const handle = ws.handle;
    const fromHandle = handle !== undefined && idOf(ev.sender) === handle.id;
    switch (ev.janus) {
      case "event": {
        if (!fromHandle) return;
        const pd = isObject(ev.plugindata) && isObject(ev.plugindata.data) ? ev.plugindata.data : undefined;
        const code = typeof pd?.error_code === "number" ? pd.error_code : undefined;
        if (code !== undefined) {
          this.#settle(
            ws,
            VIDEOROOM_ERRORS[code] ?? { status: 502, detail: `Janus's VideoRoom refused (${code})` },
          );
          return;
        }
        const jsep = isObject(ev.jsep) ? ev.jsep : undefined;
        if (jsep?.type === "answer" && typeof jsep.sdp === "string") {
          this.#settle(ws, { sdp: jsep.sdp, feed: pd?.id === undefined ? undefined : String(pd.id) });
        }
        return;
      }
      case "webrtcup":
        if (fromHandle) log("info", "whip_media_up", { resource: ws.id, session: handle!.key });
        return;
      case "hangup":
      case "detached":
        if (!fromHandle) return;
        this.#settle(ws, { status: 502, detail: "Janus hung up" });
        if (ws.established) void this.#end(ws, ws.handle?.ice.spec ? "janus_gone" : "ice_ended");
        return;
      case "timeout":
        this.#settle(ws, { status: 502, detail: "Janus timed the session out" });
        void this.#end(ws, "janus_gone");
        return;
    }
  }

  #settle(ws: WhipSession, o: SetupOutcome): void {
    const resolve = ws.awaiting;
    ws.awaiting = undefined;
    resolve?.(o);
  }

  // ---- PATCH: trickle and ICE restart (RFC 9725 §4.3, §4.4) ----

  async #patch(req: Request, ws: WhipSession, http: HttpConfig): Promise<Response> {
    if (mediaType(req.headers.get("content-type")) !== SDPFRAG_TYPE) {
      return problem(415, `a PATCH carries ${SDPFRAG_TYPE}`, { "accept-patch": SDPFRAG_TYPE });
    }
    const match = ifMatch(req.headers.get("if-match"), ws.etag);
    if (match === "missing") {
      return problem(428, 'If-Match is required (the ETag, or "*" for an ICE restart)');
    }
    if (match === "mismatch") return problem(412, "the ETag does not match the session's");
    const read = await readBody(req.body, MAX_PATCH_BYTES, http.bodyTimeoutMs, req.signal);
    if ("error" in read) {
      return read.error === "too_large" ? problem(413, "the fragment is too large") : problem(400, "no body");
    }
    let frag;
    try {
      frag = parseSdpFrag(new TextDecoder().decode(read.bytes));
    } catch (e) {
      if (e instanceof SdpFragError) return problem(400, `not an SDP fragment: ${e.message}`);
      throw e;
    }
    const spec = ws.handle?.ice.spec;
    if (!spec || ws.closed) return problem(404, "the WHIP session has ended");
    const current = spec.client;
    const restart = frag.ufrag !== undefined && frag.pwd !== undefined &&
      (frag.ufrag !== current?.ufrag || frag.pwd !== current?.pwd);
    if (!restart) {
      // §4.3.1: candidates of the current ICE session. xRTC learns the client's addresses from its
      // authentic checks, so they are counted and absorbed, never sent anywhere.
      if (frag.ufrag !== undefined && frag.ufrag !== current?.ufrag) {
        return problem(409, "the fragment names an ICE ufrag that is not the session's");
      }
      if (match === "any" && frag.candidates.length === 0 && !frag.endOfCandidates) {
        return problem(400, "an ICE restart needs a new ice-ufrag and ice-pwd");
      }
      for (let i = 0; i < frag.candidates.length; i++) trickles.inc({ from: "client" });
      return new Response(null, { status: 204 });
    }
    // §4.4: an ICE restart, answered by xRTC alone (the half proxy): new client-facing credentials,
    // Janus's leg untouched, so Janus sees no renegotiation.
    const negotiator = this.deps.signalling.negotiator;
    const fresh = negotiator && ws.handle
      ? negotiator.clientIceRestart(ws.handle.ice, { ufrag: frag.ufrag!, pwd: frag.pwd! })
      : undefined;
    if (!fresh || !negotiator) {
      return problem(
        422,
        "ICE restarts are answered by the half proxy only (this endpoint relays ICE to Janus)",
      );
    }
    ws.etag = newEtag();
    this.#record(ws);
    log("info", "whip_ice_restart", { resource: ws.id, session: ws.handle!.key });
    const mids = frag.mids.length ? frag.mids : [ws.mid ?? "0"];
    return new Response(restartAnswerFrag(fresh, mids, negotiator.clientCandidates), {
      status: 200,
      headers: { "content-type": SDPFRAG_TYPE, etag: ws.etag },
    });
  }

  // ---- the end of a WHIP session ----

  async #end(ws: WhipSession, reason: WhipEndReason): Promise<void> {
    if (ws.closed) return;
    ws.closed = true;
    const wasListed = this.#sessions.delete(ws.id);
    ws.stop.abort();
    if (wasListed) {
      whipSessionsEnded.inc({ reason });
      log("info", "whip_session_end", { resource: ws.id, janus_session: ws.session.id, reason });
    }
    await this.#release(ws);
  }

  /** Leaves the room, detaches and destroys on Janus, through signalling so the registry follows
   * Janus's replies; a session Janus cannot be told about is dropped here all the same (Janus's own
   * session timeout ends it there). */
  async #release(ws: WhipSession): Promise<void> {
    ws.closed = true;
    ws.stop.abort();
    this.#settle(ws, { status: 502, detail: "the session ended" });
    const sig = this.deps.signalling;
    const s = ws.session;
    const send = async (msg: JsonObject, path: string, handleId?: string) => {
      if (sig.sessions.get(s.id) !== s) return;
      const v = sig.fromClient(msg, { ...ws.ctx, handleId });
      if (v.action === "reply") return;
      const reply = await janusRequest(s.backend, path, msg, this.#client);
      sig.replied(v.pending, reply, s.backend);
    };
    const h = ws.handle;
    if (h && s.handles.get(h.id) === h) {
      await send({ janus: "message", body: { request: "leave" } }, `/${s.id}/${h.id}`, h.id);
      await send({ janus: "detach" }, `/${s.id}/${h.id}`, h.id);
    }
    await send({ janus: "destroy" }, `/${s.id}`);
    if (sig.sessions.get(s.id) === s) sig.sessions.removeSession(s, "destroyed");
  }

  /** Keepalives, and the end of sessions whose ICE session or Janus session is gone. */
  #sweep(): void {
    const sig = this.deps.signalling;
    const now = Date.now();
    const interval = Math.min(KEEPALIVE_INTERVAL_MS, Math.max(1_000, sig.opts.timers.sessionTimeoutMs / 3));
    for (const ws of [...this.#sessions.values()]) {
      if (sig.sessions.get(ws.session.id) !== ws.session) {
        void this.#end(ws, "janus_gone");
      } else if (!ws.handle?.ice.spec && sig.negotiator) {
        // The publisher's ICE session ended: consent lost (RFC 7675) or never connected.
        void this.#end(ws, "ice_ended");
      } else if (now - ws.lastKeepalive >= interval) {
        ws.lastKeepalive = now;
        const msg: JsonObject = { janus: "keepalive" };
        const v = sig.fromClient(msg, ws.ctx);
        if (v.action === "reply") continue;
        void janusRequest(ws.backend, `/${ws.session.id}`, msg, this.#client).then((reply) =>
          sig.replied(v.pending, reply, ws.backend)
        );
      }
    }
  }

  /** The resource goes into the session's record (the state directory): a restart serves it on. */
  #record(ws: WhipSession): void {
    if (!ws.handle) return;
    this.deps.signalling.sessions.setWhip(ws.session, {
      endpoint: ws.endpoint.tag,
      resource: ws.id,
      etag: ws.etag,
      handle: ws.handle.id,
      mid: ws.mid,
    });
  }

  /** After a restart (or an upgrade's catch-up): the WHIP sessions of the restored Janus sessions are
   * served on, under the same resource and ETag, with their long-poll and keepalives. Returns how many. */
  restore(): number {
    const sig = this.deps.signalling;
    let restored = 0;
    for (const s of sig.sessions.sessions()) {
      const r = s.whipResource;
      if (!r || this.#sessions.has(r.resource) || this.#sessions.size >= MAX_WHIP_SESSIONS) continue;
      const endpoint = this.deps.endpoint(r.endpoint);
      const handle = s.handles.get(r.handle);
      if (!endpoint || !handle || !RESOURCE_ID.test(r.resource)) {
        // Not servable any more (the endpoint left the configuration): Janus's session timeout ends it,
        // as xRTC sends it no keepalive.
        log("warn", "whip_restore_skipped", {
          resource: r.resource,
          janus_session: s.id,
          reason: !endpoint ? `no endpoint ${r.endpoint} now` : "no handle",
        });
        continue;
      }
      const ws = new WhipSession(r.resource, endpoint, s, {
        protocol: "http",
        client: s.client,
        route: { icedirect: endpoint.icedirect, icetcp: endpoint.icetcp },
        pool: this.deps.pool(endpoint),
        sessionId: s.id,
      });
      ws.etag = r.etag;
      ws.mid = r.mid;
      ws.handle = handle;
      ws.established = true;
      this.#sessions.set(ws.id, ws);
      void this.#poll(ws);
      restored++;
      log("info", "whip_session_restored", { endpoint: endpoint.tag, resource: ws.id, session: handle.key });
    }
    return restored;
  }

  /** xRTC stops: the long-polls end; the Janus sessions and their records stay, so a restart or the
   * process taking over serves every WHIP session on (a drain is how an operator ends them). */
  close(): void {
    clearInterval(this.#sweeper);
    for (const ws of this.#sessions.values()) {
      ws.closed = true;
      ws.stop.abort();
    }
    this.#sessions.clear();
    this.#client.close();
  }
}

/** A JanusSignalling refusal as a WHIP status: limits are 429 or 503, anything else a gateway error. */
function refusalStatus(status: number): number {
  return status === 429 || status === 503 ? status : 502;
}

function refusal(status: number, reply: JsonObject): Response {
  const reason = isObject(reply.error) ? String(reply.error.reason ?? "refused") : "refused";
  const s = refusalStatus(status);
  return problem(s, reason, s === 502 ? {} : { "retry-after": "5" });
}
