// What a bench client does with xRTC, as a browser with janus.js would: create a Janus session, attach a
// handle, offer through it (xRTC refuses ids the server never issued), then check on the shared port
// and answer xRTC's own check to its address (xRTC sends media only to an address that answered one,
// signed with the client's password).
import { iceCredentials, iceView, parseSdp } from "../src/sdp/sdp.ts";
import { buildCheck } from "../src/ice/check.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import type { DatagramBackend, DatagramSocket } from "../src/io/types.ts";
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeXorAddress,
  parseStun,
} from "../src/stun/message.ts";
import { benchSdp } from "./sdp.ts";

/** Every bench client's ICE password (its offer carries it; xRTC signs its checks to the client with it). */
export const CLIENT_PWD = "clientpasswordclientpassword";
const clientKey = new TextEncoder().encode(CLIENT_PWD);

export interface Signalled {
  /** xRTC's client-facing credentials and UDP port, from the answer. */
  ufrag: string;
  pwd: string;
  port: number;
  clientUfrag: string;
  janusSession: number;
  handle: number;
}

async function post(url: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  const reply = await r.json() as Record<string, unknown>;
  if (reply.janus === "error") throw new Error(`${body.janus}: ${JSON.stringify(reply.error)}`);
  return reply;
}

const idOf = (reply: Record<string, unknown>) => Number((reply.data as { id: number }).id);

/** create, attach and an offer through xRTC (`http` is its base URL); the echo peer answers at once. */
export async function signalOffer(http: string, clientUfrag: string): Promise<Signalled> {
  const janusSession = idOf(await post(`${http}/janus`, { janus: "create", transaction: "c" }));
  const handle = idOf(
    await post(`${http}/janus/${janusSession}`, { janus: "attach", plugin: "bench.echo", transaction: "a" }),
  );
  const reply = await post(`${http}/janus/${janusSession}/${handle}`, {
    janus: "message",
    transaction: "m",
    body: {},
    jsep: { type: "offer", sdp: benchSdp({ ufrag: clientUfrag, pwd: CLIENT_PWD, setup: "actpass" }) },
  });
  const sdp = parseSdp((reply.jsep as { sdp: string }).sdp);
  const creds = iceCredentials(sdp)!;
  const cand = iceView(sdp)[0].candidates.find((c) => c.transport === "udp")!;
  return { ...creds, port: cand.port, clientUfrag, janusSession, handle };
}

/** The client's nominating check on xRTC's port, signed with the password xRTC gave it. */
export function nominatingCheck(s: Signalled, index: number): Uint8Array {
  return buildCheck({
    receiverUfrag: s.ufrag,
    senderUfrag: s.clientUfrag,
    key: new TextEncoder().encode(s.pwd),
    priority: 1853817087,
    controlling: true,
    tieBreaker: BigInt(index + 1),
    useCandidate: true,
  });
}

/** The STUN side of a bench client's socket: answers xRTC's checks to it (signed with the client's
 * password) and reports what came. Returns "success" for a response to the client's own check,
 * "request" for xRTC's check (answered), undefined for anything else. */
export function clientStun(
  data: Uint8Array,
  from: PeerAddress,
  socket: DatagramSocket,
): "success" | "request" | undefined {
  let msg;
  try {
    msg = parseStun(data);
  } catch {
    return undefined;
  }
  if (msg.type === BINDING_SUCCESS) return "success";
  if (msg.type !== BINDING_REQUEST) return undefined;
  socket.send(
    buildStun({
      type: BINDING_SUCCESS,
      transactionId: msg.transactionId,
      attributes: [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(from, msg.transactionId)]],
      integrityKey: clientKey,
      fingerprint: true,
    }),
    from,
  );
  return "request";
}

/** One idle session's ICE from a socket of its own: the nominating check until answered, and xRTC's check
 * of the address answered; then the socket is closed (xRTC keeps the tuple bound until consent expires).
 * True when both happened within about 2 s. */
export async function connectOnce(backend: DatagramBackend, s: Signalled, index: number): Promise<boolean> {
  let answered = false, validated = false;
  const socket = backend.bind({ host: "127.0.0.1", port: 0 }, (data, from, sock) => {
    const what = data[0] <= 3 ? clientStun(data, from, sock) : undefined;
    if (what === "success") answered = true;
    else if (what === "request") validated = true;
  });
  const target = mustPeer("127.0.0.1", s.port);
  for (let attempt = 0; attempt < 20 && !(answered && validated); attempt++) {
    if (!answered) socket.send(nominatingCheck(s, index), target);
    for (let w = 0; w < 10 && !(answered && validated); w++) await new Promise((r) => setTimeout(r, 5));
  }
  socket.close();
  return answered && validated;
}
