// A bench client's ICE-TCP connection to xRTC (RFC 6544 passive candidate, RFC 4571 framing), used as the
// generator uses a UDP socket: send() frames a datagram, and the datagrams sent in one turn leave in one
// write (a browser's TCP stack coalesces the same way); received frames go to the handler one by one.
import { encodeFrame, FrameDecoder } from "../src/io/framing.ts";
import { mustPeer, type PeerAddress } from "../src/io/address.ts";
import type { DatagramHandler, DatagramSocket } from "../src/io/types.ts";

export class TcpDatagrams implements DatagramSocket {
  #queue: Uint8Array[] = [];
  #writing = false;
  #closed = false;

  private constructor(
    readonly conn: Deno.TcpConn,
    readonly localAddress: PeerAddress,
    onPacket: DatagramHandler,
  ) {
    this.#read(onPacket);
  }

  static async connect(port: number, onPacket: DatagramHandler): Promise<TcpDatagrams> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const local = conn.localAddr as Deno.NetAddr;
    return new TcpDatagrams(conn, mustPeer(local.hostname, local.port), onPacket);
  }

  /** Frames `data` for the connection (`to` is the connection's far end, whatever is passed). */
  send(data: Uint8Array, _to?: PeerAddress): void {
    if (this.#closed) return;
    this.#queue.push(encodeFrame(data));
    if (!this.#writing) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    await Promise.resolve(); // the rest of this turn's datagrams join the write
    try {
      while (this.#queue.length && !this.#closed) {
        const frames = this.#queue;
        this.#queue = [];
        const size = frames.reduce((n, f) => n + f.length, 0);
        const out = new Uint8Array(size);
        let at = 0;
        for (const f of frames) {
          out.set(f, at);
          at += f.length;
        }
        for (let off = 0; off < out.length;) off += await this.conn.write(out.subarray(off));
      }
    } catch {
      this.close();
    } finally {
      this.#writing = false;
    }
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
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}
