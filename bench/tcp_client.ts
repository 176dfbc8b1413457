// A bench client's ICE-TCP connection to xRTC (RFC 6544 passive candidate, RFC 4571 framing), used as the
// generator uses a UDP socket: send() frames a datagram, and the datagrams sent in one turn leave in one
// write (a browser's TCP stack coalesces the same way); received frames go to the handler one by one.
import { FrameDecoder } from "../src/io/framing.ts";
import { FramedWriter, sendWithoutDelay } from "../src/io/tcp.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import type { DatagramHandler, DatagramSocket } from "../src/io/types.ts";

export class TcpDatagrams implements DatagramSocket {
  readonly #writer: FramedWriter;
  #closed = false;

  private constructor(
    readonly conn: Deno.TcpConn,
    readonly localAddress: PeerAddress,
    onPacket: DatagramHandler,
  ) {
    // xRTC's own framed writer: the frames queued in one task leave in one write. The generator never
    // cuts itself off as a slow reader would be.
    this.#writer = new FramedWriter(conn, () => this.close(), Infinity);
    this.#read(onPacket);
  }

  static async connect(port: number, onPacket: DatagramHandler): Promise<TcpDatagrams> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    sendWithoutDelay(conn);
    const local = conn.localAddr as Deno.NetAddr;
    return new TcpDatagrams(conn, mustPeer(local.hostname, local.port), onPacket);
  }

  /** Frames `data` for the connection (`to` is the connection's far end, whatever is passed). */
  send(data: Uint8Array, _to?: PeerAddress): void {
    this.#writer.sendFrame(data);
  }

  async #read(onPacket: DatagramHandler): Promise<void> {
    const decoder = new FrameDecoder();
    const remote = this.conn.remoteAddr as Deno.NetAddr;
    const from = mustPeer(remote.hostname, remote.port);
    const buf = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        decoder.push(buf.subarray(0, n), (frame) => onPacket(frame, from, this));
      }
    } catch { /* closed */ }
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close();
  }
}
