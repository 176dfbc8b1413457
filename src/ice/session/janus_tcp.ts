// The Janus side of a full-proxy session over ICE-TCP (route icetcp: true, RFC 6544 active client
// towards Janus's passive candidate, RFC 4571 framing). Packets queued before the connection is up
// are sent once it is.
import type { ConnectIceTcp, JanusTarget } from "./full_session.ts";
import { FrameDecoder, MAX_ICE_TCP_FRAME } from "../../io/framing.ts";
import { connectTcp, FramedWriter, sendWithoutDelay } from "../../io/tcp.ts";
import { TIMING } from "../timing.ts";
import { log } from "../../telemetry/log.ts";

/** Packets held while the connection to Janus opens. */
const EARLY_PACKET_LIMIT = 64;

export const connectJanusIceTcp: ConnectIceTcp = (remote, onPacket, onClose) => {
  let closed = false;
  const early: Uint8Array[] = [];
  let writer: FramedWriter | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    // The writer closes the connection; before there is one, no connection is open (connectTcp has not
    // resolved, or failed).
    writer?.close();
    onClose();
  };
  (async () => {
    let conn: Deno.TcpConn;
    try {
      conn = await connectTcp(remote.host, remote.port, TIMING.janusLegConnectTimeoutMs);
    } catch (e) {
      log("warn", "janus_tcp_connect_error", { janus: remote.text, error: e });
      return close();
    }
    if (closed) return conn.close();
    sendWithoutDelay(conn);
    writer = new FramedWriter(conn, () => close());
    for (const p of early) writer.sendFrame(p);
    early.length = 0;
    const decoder = new FrameDecoder(MAX_ICE_TCP_FRAME);
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        decoder.push(buf.subarray(0, n), onPacket);
      }
    } catch { /* reset or bad framing */ }
    close();
  })();
  const target: JanusTarget = {
    remote,
    transport: "tcp",
    send(data) {
      if (writer) writer.sendFrame(data);
      else if (!closed && early.length < EARLY_PACKET_LIMIT) early.push(data.slice());
    },
    close,
  };
  return target;
};
