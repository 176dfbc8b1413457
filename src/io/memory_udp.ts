// An in-memory datagram network for tests without sockets, in the spirit of pion's vnet: sockets bound
// on it exchange datagrams through a queue that the test delivers when it chooses (deterministic), and
// the test can inject a datagram from any source address (spoofing is as easy as it is on the wire).
import { anyAddress, mustPeer, type PeerAddress } from "./address.ts";
import {
  type BindOptions,
  type DatagramBackend,
  type DatagramHandler,
  type DatagramSocket,
  MAX_DATAGRAM,
} from "./types.ts";

interface Queued {
  data: Uint8Array;
  from: PeerAddress;
  to: PeerAddress;
}

export class MemoryNetwork {
  readonly #sockets = new Map<PeerAddress["key"], MemorySocket>();
  #queue: Queued[] = [];
  #nextPort = 40_000;
  /** Every datagram sent, for assertions (cleared by the test when it likes). */
  readonly sent: Queued[] = [];

  backend(): MemoryBackend {
    return new MemoryBackend(this);
  }

  bind(host: string, port: number, onPacket: DatagramHandler, owner: MemoryBackend): MemorySocket {
    const p = port || this.#nextPort++;
    const local = mustPeer(host || anyAddress(4), p);
    if (this.#sockets.has(local.key)) throw new Error(`address in use: ${local.text}`);
    const s = new MemorySocket(this, local, onPacket, owner);
    this.#sockets.set(local.key, s);
    return s;
  }

  unbind(s: MemorySocket): void {
    if (this.#sockets.get(s.localAddress.key) === s) this.#sockets.delete(s.localAddress.key);
  }

  enqueue(data: Uint8Array, from: PeerAddress, to: PeerAddress): void {
    const q = { data: data.slice(), from, to };
    this.#queue.push(q);
    this.sent.push(q);
  }

  /** Injects a datagram as if `from` had sent it (any source: spoofed ones too). */
  inject(data: Uint8Array, from: PeerAddress, to: PeerAddress): void {
    this.#queue.push({ data: data.slice(), from, to });
  }

  /** Delivers queued datagrams (and those their handlers send) until the network is quiet or `limit`
   * deliveries have happened. Datagrams to an address nobody bound are lost, as on the wire. */
  deliver(limit = 100_000): number {
    let n = 0;
    while (this.#queue.length && n < limit) {
      const batch = this.#queue;
      this.#queue = [];
      for (const q of batch) {
        const target = this.#sockets.get(q.to.key) ??
          this.#sockets.get(mustPeer(anyAddress(q.to.family), q.to.port).key);
        if (target && q.data.length <= MAX_DATAGRAM) target.onPacket(q.data, q.from, target);
        n++;
      }
    }
    return n;
  }

  get queued(): number {
    return this.#queue.length;
  }
}

export class MemoryBackend implements DatagramBackend {
  readonly name = "memory" as const;
  readonly #sockets = new Set<MemorySocket>();
  constructor(readonly network: MemoryNetwork) {}

  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket {
    const s = this.network.bind(opts.host, opts.port, onPacket, this);
    this.#sockets.add(s);
    return s;
  }

  forget(s: MemorySocket): void {
    this.#sockets.delete(s);
  }

  get openSockets(): number {
    return this.#sockets.size;
  }

  close(): void {
    for (const s of [...this.#sockets]) s.close();
  }
}

export class MemorySocket implements DatagramSocket {
  #closed = false;
  constructor(
    readonly network: MemoryNetwork,
    readonly localAddress: PeerAddress,
    readonly onPacket: DatagramHandler,
    readonly owner: MemoryBackend,
  ) {}

  send(data: Uint8Array, to: PeerAddress): void {
    if (!this.#closed && data.length <= MAX_DATAGRAM) this.network.enqueue(data, this.localAddress, to);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.network.unbind(this);
    this.owner.forget(this);
  }
}
