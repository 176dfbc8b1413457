// The one I/O layer every datagram socket of xRTC goes through: the shared ICE port and the
// Janus legs alike. Two backends implement it: Deno.listenDatagram and batched libc through FFI.
import type { IoBackend } from "../config/types.ts";

/** A remote transport address. Backends hand out one object per address so it can key maps. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
  /** "host:port", unique per address. */
  readonly key: string;
}

/** Called for each datagram; `data` is only valid during the call (the buffer is reused). */
export type DatagramHandler = (data: Uint8Array, from: PeerAddress, socket: DatagramSocket) => void;

export interface DatagramSocket {
  readonly localAddress: PeerAddress;
  /** Queues one datagram; `data` may be reused by the caller as soon as this returns. */
  send(data: Uint8Array, to: PeerAddress): void;
  close(): void;
}

export interface BindOptions {
  host: string;
  port: number;
  /** SO_REUSEPORT, so several processes or workers can serve one port (FFI backend only). */
  reusePort?: boolean;
}

export interface DatagramBackend {
  readonly name: IoBackend;
  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket;
  /** Turns a host and port into this backend's address object. */
  address(host: string, port: number): PeerAddress;
  /** Returns the allocator's free memory to the OS (process-wide; the FFI backend's glibc malloc_trim). */
  releaseFreeMemory?(): Promise<void>;
  /** Closes every socket; the promise, when there is one, resolves once everything is released. */
  close(): void | Promise<void>;
}

export function addressKey(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Address objects interned by key, bounded: at most `limit` kept, oldest dropped first. */
export class AddressCache {
  readonly #map = new Map<string, PeerAddress>();
  constructor(readonly limit = 200_000) {}

  get(host: string, port: number): PeerAddress {
    const key = addressKey(host, port);
    let a = this.#map.get(key);
    if (a === undefined) {
      if (this.#map.size >= this.limit) this.#map.delete(this.#map.keys().next().value!);
      a = { host, port, key };
      this.#map.set(key, a);
    }
    return a;
  }
}
