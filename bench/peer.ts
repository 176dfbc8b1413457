// The bench's echo peer, standing where Janus stands: a project-owned ICE responder that answers
// Binding requests with its credentials and echoes every other datagram to its sender (stamped with when
// its socket received it and when it sent it back: stamps.ts), plus a
// Janus-like HTTP API (server info, create, attach, and a plugin message that replies synchronously with
// an answer naming this peer).
// Labelled "project-owned echo, not Janus" wherever its figures are printed.
//   deno run -A bench/peer.ts      prints "PEER <udp port> <http port>" when ready
import { FfiUdpBackend } from "../src/io/ffi_udp.ts";
import type { DatagramSocket } from "../src/io/types.ts";
import type { PeerAddress } from "../src/io/address.ts";
import { benchSdp } from "./sdp.ts";
import { Stamp, STAMPED_BYTES, wallMs } from "./stamps.ts";
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

// Like Janus (one datagram per send and per receive), whatever xRTC does: no GSO, no GRO.
const backend = FfiUdpBackend.open({ gso: false, gro: false, receiveTimes: true });
const handler = (data: Uint8Array, from: PeerAddress, s: DatagramSocket) => {
  if (data[0] > 3) { // media: echo
    if (data.length >= STAMPED_BYTES) {
      const stamps = new DataView(data.buffer, data.byteOffset, STAMPED_BYTES);
      stamps.setFloat64(Stamp.peerReceived, backend.receivedAt);
      stamps.setFloat64(Stamp.peerSent, wallMs());
    }
    return s.send(data, from);
  }
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

/** Janus-style ids: positive integers below 2^53, never reused in a run. */
let nextId = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000);

// Its HTTP port is the kernel's choice, printed when ready with the UDP port.
const onListen = ({ port }: { port: number }) => console.log(`PEER ${socket.localAddress.port} ${port}`);
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen }, async (req) => {
  const url = new URL(req.url);
  if (req.method === "GET" && url.pathname === "/janus/info") {
    return Response.json({ janus: "server_info", name: "xRTC bench echo peer (not Janus)" });
  }
  const body = req.method === "POST" ? await req.json() : {};
  const ids = url.pathname.split("/").filter((s) => /^\d+$/.test(s)).map(Number);
  const transaction = body.transaction ?? "";
  if (body.janus === "create" || body.janus === "attach") {
    const data = { id: nextId++ };
    return Response.json({ janus: "success", transaction, ...(ids[0] ? { session_id: ids[0] } : {}), data });
  }
  if (body.janus === "message" && body.jsep) {
    return Response.json({
      janus: "success",
      session_id: ids[0],
      sender: ids[1],
      transaction,
      plugindata: { plugin: "bench.echo", data: {} },
      jsep: {
        type: "answer",
        sdp: benchSdp({ ufrag: PEER_UFRAG, pwd: PEER_PWD, setup: "active", candidatePort: sessionPort() }),
      },
    });
  }
  if (["hangup", "detach", "destroy"].includes(body.janus)) {
    return Response.json({ janus: "success", transaction });
  }
  return Response.json({ janus: "ack", transaction });
});
