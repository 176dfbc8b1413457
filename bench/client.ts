// What a bench client says to xRTC: an offer through its Janus API, then a nominating check.
import { iceCredentials, iceView, parseSdp } from "../src/sdp/sdp.ts";
import { buildCheck } from "../src/ice/check.ts";
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
