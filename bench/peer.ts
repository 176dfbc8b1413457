// The bench's echo peer, standing where Janus stands: a project-owned ICE responder that answers
// Binding requests with its credentials and echoes every other datagram to its sender, plus a
// Janus-like HTTP API whose plugin message replies synchronously with an answer naming this peer.
// Labelled "project-owned echo, not Janus" wherever its figures are printed.
//   deno run -A bench/peer.ts <http port>      prints "PEER <udp port>" when ready
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramSocket, PeerAddress } from "../src/io/types.ts";
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeXorAddress,
  getUsername,
  parseStun,
  verifyIntegrity,
} from "../src/stun/message.ts";

export const PEER_UFRAG = "peer";
export const PEER_PWD = "benchpeerpasswordbenchpeer";
const key = new TextEncoder().encode(PEER_PWD);
const httpPort = Number(Deno.args[0] ?? 18088);

const backend = FfiUdpBackend.open();
const handler = (data: Uint8Array, from: PeerAddress, s: DatagramSocket) => {
  if (data[0] > 3) return s.send(data, from); // media: echo
  try {
    const msg = parseStun(data);
    if (
      msg.type !== BINDING_REQUEST || !getUsername(msg)?.startsWith(`${PEER_UFRAG}:`) ||
      !verifyIntegrity(msg, key)
    ) return;
    s.send(
      buildStun({
        type: BINDING_SUCCESS,
        transactionId: msg.transactionId,
        attributes: [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(from, msg.transactionId)]],
        integrityKey: key,
        fingerprint: true,
      }),
      from,
    );
  } catch { /* not STUN */ }
};
// Like Janus, a port of its own for each session (a handle's PeerConnection).
const socket = backend.bind({ host: "127.0.0.1", port: 0 }, handler);
const MAX_SESSION_SOCKETS = 15_000;
let sessionSockets = 0;
function sessionPort(): number {
  if (sessionSockets >= MAX_SESSION_SOCKETS) return socket.localAddress.port;
  sessionSockets++;
  return backend.bind({ host: "127.0.0.1", port: 0 }, handler).localAddress.port;
}

export function answerSdp(udpPort: number): string {
  return [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 127.0.0.1",
    `a=ice-ufrag:${PEER_UFRAG}`,
    `a=ice-pwd:${PEER_PWD}`,
    "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
    "a=setup:active",
    "a=mid:0",
    "a=sctp-port:5000",
    `a=candidate:1 1 udp 2130706431 127.0.0.1 ${udpPort} typ host`,
    "a=end-of-candidates",
    "",
  ].join("\r\n");
}

Deno.serve({ hostname: "127.0.0.1", port: httpPort, onListen: () => {} }, async (req) => {
  const url = new URL(req.url);
  const body = req.method === "POST" ? await req.json() : {};
  const ids = url.pathname.split("/").filter((s) => /^\d+$/.test(s)).map(Number);
  if (body.janus === "message" && body.jsep) {
    return Response.json({
      janus: "success",
      session_id: ids[0],
      sender: ids[1],
      transaction: body.transaction,
      plugindata: { plugin: "bench.echo", data: {} },
      jsep: { type: "answer", sdp: answerSdp(sessionPort()) },
    });
  }
  return Response.json({ janus: "ack", transaction: body.transaction ?? "" });
});
console.log(`PEER ${socket.localAddress.port}`);
