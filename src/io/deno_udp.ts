// Portable backend: Deno.listenDatagram. One reused receive buffer per socket (receive() without one
// allocates 64 KB per datagram: ../shared/perf/FACTS.md). Sends copy, since the caller reuses its buffer.
import { counters } from "../metrics.ts";
import { log } from "../log.ts";
import {
  AddressCache,
  type BindOptions,
  type DatagramBackend,
  type DatagramHandler,
  type DatagramSocket,
  type PeerAddress,
} from "./types.ts";

/** Receive buffer per socket. WebRTC keeps datagrams under the path MTU (DTLS fragments its flights,
 * RFC 6347 §4.1.1), so 8 KiB holds any of them; larger datagrams arrive truncated and are dropped. */
export const MAX_DATAGRAM = 8192;

export class DenoUdpBackend implements DatagramBackend {
  readonly name = "deno" as const;
  readonly #addresses = new AddressCache();
  readonly #sockets = new Set<DenoUdpSocket>();

  address(host: string, port: number): PeerAddress {
    return this.#addresses.get(host, port);
  }

  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: opts.host || "0.0.0.0", port: opts.port });
    const s = new DenoUdpSocket(conn, this.#addresses, onPacket, () => this.#sockets.delete(s));
    this.#sockets.add(s);
    return s;
  }

  close(): void {
    for (const s of [...this.#sockets]) s.close();
  }
}

class DenoUdpSocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  readonly #targets = new WeakMap<PeerAddress, Deno.NetAddr>();
  #closed = false;

  constructor(
    readonly conn: Deno.DatagramConn,
    readonly addresses: AddressCache,
    readonly onPacket: DatagramHandler,
    readonly onClose: () => void,
  ) {
    const local = conn.addr as Deno.NetAddr;
    this.localAddress = addresses.get(local.hostname, local.port);
    this.#loop();
  }

  async #loop(): Promise<void> {
    const buf = new Uint8Array(MAX_DATAGRAM);
    while (!this.#closed) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.conn.receive(buf);
      } catch (e) {
        if (this.#closed) return;
        counters.inc("udp_receive_errors");
        log("warn", "udp_receive_error", { local: this.localAddress.key, error: e });
        continue;
      }
      if (data.length === MAX_DATAGRAM) {
        counters.inc("udp_drop_truncated");
        continue;
      }
      const addr = from as Deno.NetAddr;
      try {
        this.onPacket(data, this.addresses.get(addr.hostname, addr.port), this);
      } catch (e) {
        counters.inc("packet_handler_errors");
        log("error", "packet_handler_error", { local: this.localAddress.key, error: e });
      }
    }
  }

  send(data: Uint8Array, to: PeerAddress): void {
    if (this.#closed) return;
    let target = this.#targets.get(to);
    if (target === undefined) {
      target = { transport: "udp", hostname: to.host, port: to.port };
      this.#targets.set(to, target);
    }
    this.conn.send(data.slice(), target).catch(() => counters.inc("udp_send_errors"));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.onClose();
  }
}
