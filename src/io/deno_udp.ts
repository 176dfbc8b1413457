// Portable backend: Deno.listenDatagram. One reused receive buffer per socket (receive() without one
// allocates 64 KiB per datagram). Sends copy, since the caller reuses its buffer.
import { drop, socketErrors } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";
import { anyAddress, mustPeer, type PeerAddress, peerAddress } from "./address.ts";
import {
  type BindOptions,
  type DatagramBackend,
  type DatagramHandler,
  type DatagramSocket,
  MAX_DATAGRAM,
} from "./types.ts";

/** Sources remembered as address objects; beyond this the cache starts again (addresses are compared
 * by value, so forgetting one changes nothing but a parse). */
const PEER_CACHE = 65_536;

export class DenoUdpBackend implements DatagramBackend {
  readonly name = "deno" as const;
  readonly #sockets = new Set<DenoUdpSocket>();

  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket {
    // Deno binds a shared port by taking it over (the newest socket receives): right for a process
    // taking over from another, not for shards of one process (those need the ffi backend).
    const conn = Deno.listenDatagram({
      transport: "udp",
      hostname: opts.host || anyAddress(4),
      port: opts.port,
      reuseAddress: opts.reusePort ?? false,
    });
    const s = new DenoUdpSocket(conn, onPacket, () => this.#sockets.delete(s));
    this.#sockets.add(s);
    return s;
  }

  close(): void {
    for (const s of [...this.#sockets]) s.close();
  }
}

class DenoUdpSocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  readonly #v6: boolean;
  readonly #targets = new Map<PeerAddress["key"], Deno.NetAddr>();
  readonly #peers = new Map<string, PeerAddress>();
  #closed = false;

  constructor(
    readonly conn: Deno.DatagramConn,
    readonly onPacket: DatagramHandler,
    readonly onClose: () => void,
  ) {
    const local = conn.addr as Deno.NetAddr;
    this.#v6 = local.hostname.includes(":");
    this.localAddress = mustPeer(local.hostname, local.port);
    this.#loop();
  }

  #peer(addr: Deno.NetAddr): PeerAddress | undefined {
    const k = `${addr.hostname}|${addr.port}`;
    let p = this.#peers.get(k);
    if (p === undefined) {
      p = peerAddress(addr.hostname, addr.port);
      if (p === undefined) return undefined;
      if (this.#peers.size >= PEER_CACHE) this.#peers.clear();
      this.#peers.set(k, p);
    }
    return p;
  }

  async #loop(): Promise<void> {
    const buf = new Uint8Array(MAX_DATAGRAM + 1);
    while (!this.#closed) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.conn.receive(buf);
      } catch (e) {
        if (this.#closed) return;
        socketErrors.inc({ op: "receive" });
        log("warn", "udp_receive_error", { local: this.localAddress.text, error: e });
        continue;
      }
      if (data.length > MAX_DATAGRAM) {
        drop.truncated_datagram.inc();
        continue;
      }
      const peer = this.#peer(from as Deno.NetAddr);
      if (!peer) continue;
      try {
        this.onPacket(data, peer, this);
      } catch (e) {
        drop.handler_error.inc();
        log("error", "packet_handler_error", { local: this.localAddress.text, error: e });
      }
    }
  }

  send(data: Uint8Array, to: PeerAddress): void {
    if (this.#closed) return;
    if (data.length > MAX_DATAGRAM) {
      drop.send_too_large.inc();
      return;
    }
    if (to.family === 6 && !this.#v6) {
      drop.unsupported_family.inc();
      return;
    }
    let target = this.#targets.get(to.key);
    if (target === undefined) {
      // A dual-stack socket reaches IPv4 peers through their v4-mapped address.
      const hostname = this.#v6 && to.family === 4 ? `::ffff:${to.host}` : to.host;
      target = { transport: "udp", hostname, port: to.port };
      if (this.#targets.size >= PEER_CACHE) this.#targets.clear();
      this.#targets.set(to.key, target);
    }
    this.conn.send(data.slice(), target).catch(() => {
      socketErrors.inc({ op: "send" });
      drop.send_failed.inc();
    });
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
