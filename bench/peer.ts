// The bench's echo peer, standing where Janus stands: a project-owned ICE responder that answers
// Binding requests with its credentials and echoes every other datagram to its sender, plus a
// Janus-like HTTP API whose plugin message replies synchronously with an answer naming this peer.
// Labelled "project-owned echo, not Janus" wherever its figures are printed.
//   deno run -A bench/peer.ts <http port>      prints "PEER <udp port>" when ready
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramSocket } from "../src/io/types.ts";
import type { PeerAddress } from "../src/io/address.ts";
import { benchSdp } from "./sdp.ts";
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
      jsep: {
        type: "answer",
        sdp: benchSdp({ ufrag: PEER_UFRAG, pwd: PEER_PWD, setup: "active", candidatePort: sessionPort() }),
      },
    });
  }
  return Response.json({ janus: "ack", transaction: body.transaction ?? "" });
});
console.log(`PEER ${socket.localAddress.port}`);
