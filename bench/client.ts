// What a bench client says to xRTC: an offer through its Janus API, then a nominating check.
import { iceCredentials, iceView, parseSdp } from "../src/sdp/sdp.ts";
import {
  Attr,
  BINDING_REQUEST,
  buildStun,
  encodeString,
  encodeUint32,
  encodeUint64,
  randomTransactionId,
} from "../src/stun/message.ts";
import { benchSdp } from "./sdp.ts";

export interface Signalled {
  /** xRTC's client-facing credentials and UDP port, from the answer. */
  ufrag: string;
  pwd: string;
  port: number;
  clientUfrag: string;
}

/** Signals one offer through xRTC (`http` is its base URL); the echo peer answers at once. */
export async function signalOffer(http: string, id: number, clientUfrag: string): Promise<Signalled> {
  const r = await fetch(`${http}/janus/${id}/${id + 1}`, {
    method: "POST",
    body: JSON.stringify({
      janus: "message",
      transaction: `t${id}`,
      body: {},
      jsep: {
        type: "offer",
        sdp: benchSdp({ ufrag: clientUfrag, pwd: "clientpasswordclientpassword", setup: "actpass" }),
      },
    }),
  });
  const reply = await r.json();
  const sdp = parseSdp(reply.jsep.sdp);
  const creds = iceCredentials(sdp)!;
  const cand = iceView(sdp)[0].candidates.find((c) => c.transport === "udp")!;
  return { ...creds, port: cand.port, clientUfrag };
}

/** The client's nominating check on xRTC's port, signed with the password xRTC gave it. */
export function nominatingCheck(s: Signalled, index: number): Uint8Array {
  return buildStun({
    type: BINDING_REQUEST,
    transactionId: randomTransactionId(),
    attributes: [
      [Attr.USERNAME, encodeString(`${s.ufrag}:${s.clientUfrag}`)],
      [Attr.PRIORITY, encodeUint32(1853817087)],
      [Attr.ICE_CONTROLLING, encodeUint64(BigInt(index + 1))],
      [Attr.USE_CANDIDATE, new Uint8Array(0)],
    ],
    integrityKey: new TextEncoder().encode(s.pwd),
    fingerprint: true,
  });
}
