// The bench's echo peer, standing where Janus stands: bench/c_load.c's echo (its datagrams: an ICE
// responder that answers Binding requests with the peer's credentials, and an echo of every other datagram
// to its sender, stamped with when its socket received it and when it sent it back: stamps.ts), behind a
// Janus-like HTTP API here (server info, create, attach, and a plugin message that replies synchronously
// with an answer naming a port of the echo's).
// Labelled "project-owned echo, not Janus" wherever its figures are printed.
//   deno run -A bench/peer.ts <c_load binary>      prints "PEER <udp port> <http port>" when ready
import { benchSdp } from "./sdp.ts";
import { LineChannel } from "./procs.ts";

export const PEER_UFRAG = "peer";
export const PEER_PWD = "benchpeerpasswordbenchpeer";

// Like Janus, one datagram per send and per receive (no GSO, no GRO), whatever xRTC does.
const echo = LineChannel.start(Deno.args[0], ["echo", PEER_UFRAG, PEER_PWD]);
const firstPort = Number((await echo.next()).split(" ")[1]);

// Like Janus, a port of its own for each session (a handle's PeerConnection).
const MAX_SESSION_SOCKETS = 15_000;
let sessionSockets = 0;
async function sessionPort(): Promise<number> {
  if (sessionSockets >= MAX_SESSION_SOCKETS) return firstPort;
  sessionSockets++;
  return Number((await echo.request("bind")).split(" ")[1]);
}

/** Janus-style ids: positive integers below 2^53, never reused in a run. */
let nextId = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000);

// Its HTTP port is the kernel's choice, printed when ready with the UDP port.
const onListen = ({ port }: { port: number }) => console.log(`PEER ${firstPort} ${port}`);
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
        sdp: benchSdp({
          ufrag: PEER_UFRAG,
          pwd: PEER_PWD,
          setup: "active",
          candidatePort: await sessionPort(),
        }),
      },
    });
  }
  if (["hangup", "detach", "destroy"].includes(body.janus)) {
    return Response.json({ janus: "success", transaction });
  }
  return Response.json({ janus: "ack", transaction });
});
