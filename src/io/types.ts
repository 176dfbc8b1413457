// The one I/O layer every datagram socket of xRTC goes through: the shared ICE ports and the Janus
// legs alike. Three backends implement it: Deno.listenDatagram, batched libc through FFI, and an
// in-memory network for tests without sockets.
import type { PeerAddress } from "./address.ts";
import type { PeriodicTask, PeriodicWork } from "./periodic.ts";

export type IoBackendName = "deno" | "ffi" | "memory";

/** Called for each datagram; `data` is only valid during the call (the buffer is reused, and the view
 * object may be handed out again for a later datagram): copy what is kept. */
export type DatagramHandler = (data: Uint8Array, from: PeerAddress, socket: DatagramSocket) => void;

export interface DatagramSocket {
  readonly localAddress: PeerAddress;
  /** Queues one datagram; `data` may be reused by the caller as soon as this returns. */
  send(data: Uint8Array, to: PeerAddress): void;
  close(): void;
}

export interface BindOptions {
  /** An IP address; "" binds every IPv4 interface, "::" every interface of both families. */
  host: string;
  port: number;
  /** SO_REUSEPORT, so several processes or workers can serve one port (FFI backend only). */
  reusePort?: boolean;
}

export interface DatagramBackend {
  readonly name: IoBackendName;
  /** UDP GSO in use (ffi backend): datagrams of one size to one destination leave as one send. */
  readonly gso?: boolean;
  /** UDP GRO in use (ffi backend): a flow's datagrams that arrive together are received as one. */
  readonly gro?: boolean;
  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket;
  /** Something on this thread waits on Deno's event loop for its I/O (a TCP connection); call the
   * result when it no longer does. A backend that waits for datagrams on its own thread (ffi, in a shard
   * worker) waits through the event loop meanwhile, so that I/O is not delayed. */
  holdEventLoop?(): () => void;
  /** Runs `work` on this backend's thread at most every `ms`, and when it says it next has something to
   * do (periodic.ts), until stopped. A backend that waits for datagrams on its own thread (ffi, in a
   * shard worker) runs it from that wait, on time, where an event-loop timer would wait for the loop's
   * next turn; without it, use everyOnEventLoop. */
  every?(ms: number, work: PeriodicWork): PeriodicTask;
  /** Runs `task` once, right after this backend next sends what it has queued: at the end of the batch
   * of received datagrams or periodic tasks being handled, or of the current task (ffi). For work that
   * must leave with that batch where a microtask would wait for an own-thread slice to end. */
  afterFlush?(task: () => void): void;
  /** A backend that blocks its thread in its own wait (ffi, in a shard worker, given turns): the eventfd
   * in that wait's epoll set, which other threads write to get a turn of its event loop (turns.ts). */
  readonly wakeFd?: number;
  /** Writes another thread's wakeFd (a TurnRequester's wake; ffi). */
  wake?(fd: number): void;
  /** Returns the allocator's free memory to the OS (process-wide; the FFI backend's glibc malloc_trim). */
  releaseFreeMemory?(): Promise<void>;
  /** Closes every socket; the promise, when there is one, resolves once everything is released. */
  close(): void | Promise<void>;
}

/** The largest datagram xRTC receives or sends. WebRTC keeps datagrams under the path MTU (DTLS
 * fragments its flights, RFC 6347 §4.1.1; media is packetised under 1,500 bytes), so anything larger
 * is not WebRTC: received larger datagrams are dropped as truncated, and the same bound holds for every
 * send, so a datagram the full proxy receives can always be sent on. */
export const MAX_DATAGRAM = 4096;
