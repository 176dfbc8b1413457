// Batched UDP through libc on Linux (Deno.dlopen): recvmmsg/sendmmsg, one epoll reactor for every
// socket, 8 MiB socket buffers. Measured here (../shared/perf/FACTS.md) this reaches the C relay's
// ceiling where Deno.listenDatagram reaches a quarter of it.
// Memory rules for FFI: every buffer whose address libc holds stays referenced by this module for the
// socket's life, and is at least 256 bytes so V8 keeps it off-heap and never moves it.
// IPv4 only: the portable backend serves IPv6.
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

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_REUSEPORT = 15;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const EPOLLIN = 1;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;

/** sizeof(struct mmsghdr) and its field offsets on 64-bit Linux. */
const MMSG = 64;
const OFF_NAME = 0, OFF_NAMELEN = 8, OFF_IOV = 16, OFF_IOVLEN = 24, OFF_FLAGS = 48, OFF_LEN = 56;
const NAME = 32; // room for a sockaddr_in6, aligned
const EPOLL_EVENT = 12; // packed struct epoll_event on x86_64
/** Datagrams per recvmmsg call and the largest datagram received; datagrams queued for sendmmsg and the
 * largest one sent (media fits in 1500). Both batches are shared by every socket of the backend, so a
 * socket costs a file descriptor and little else. */
export const BATCH = 64;
export const SLOT = 4096;
export const TX_BATCH = 256;
export const TX_SLOT = 2048;
const SOCKET_BUFFER = 8 * 1024 * 1024;
/** Batches drained from one socket per wakeup, so one busy socket cannot starve the others. */
const MAX_BATCHES_PER_WAKEUP = 8;
/** Busy rounds before the reactor yields to the event loop (timers, HTTP, TCP). */
const MAX_BUSY_ROUNDS = 16;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // Off the event loop: trimming hundreds of MB takes ~15 ms, which media must not wait for.
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  epoll_wait_blocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

export class FfiUnavailable extends Error {
  override name = "FfiUnavailable";
}

function address(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

/** IPv4 text to a 32-bit number; undefined when it is not a dotted quad. */
function ipv4Number(host: string): number | undefined {
  const parts = host.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255) || !Number.isInteger(p))) {
    return undefined;
  }
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

function writeSockaddr(view: DataView, offset: number, ip: number, port: number): void {
  view.setUint16(offset, AF_INET, true);
  view.setUint16(offset + 2, port, false);
  view.setUint32(offset + 4, ip, false);
}

export class FfiUdpBackend implements DatagramBackend {
  readonly name = "ffi" as const;
  readonly #addresses = new AddressCache();
  /** IPv4 sockaddr (address << 16 | port) -> interned address, so the hot path builds no strings. */
  readonly #byNumber = new Map<number, PeerAddress>();
  readonly #sockets = new Map<number, FfiSocket>();
  /** The IPv4 number of each address object: sends write a sockaddr without parsing text per packet. */
  readonly #ipOf = new WeakMap<PeerAddress, number>();
  readonly #events = new Uint8Array(Math.max(256, BATCH * EPOLL_EVENT));
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #epollEvent = new Uint8Array(256);
  #running = true;
  #releasing?: Promise<void>;
  #flushScheduled = false;
  readonly rx = new Batch(BATCH, SLOT);
  readonly #tx = new Batch(TX_BATCH, TX_SLOT);
  /** The socket of each queued datagram. */
  readonly #txFd = new Int32Array(TX_BATCH);
  #txCount = 0;

  private constructor(
    readonly lib: Deno.DynamicLibrary<typeof SYMBOLS>,
    readonly libc: Libc,
    readonly epfd: number,
  ) {
    this.#loop();
  }

  static open(): FfiUdpBackend {
    if (Deno.build.os !== "linux") {
      throw new FfiUnavailable(
        `the ffi UDP backend needs Linux (this is ${Deno.build.os}); use io_backend: deno`,
      );
    }
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch (e) {
      const why = e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied
        ? "FFI is not permitted: run with --allow-ffi"
        : `cannot load libc.so.6: ${e instanceof Error ? e.message : e}`;
      throw new FfiUnavailable(`the ffi UDP backend is unavailable: ${why}; use io_backend: deno`);
    }
    const epfd = lib.symbols.epoll_create1(0);
    if (epfd < 0) throw new FfiUnavailable("epoll_create1 failed");
    return new FfiUdpBackend(lib, lib.symbols, epfd);
  }

  address(host: string, port: number): PeerAddress {
    return this.#addresses.get(host, port);
  }

  /** The interned address of the sockaddr_in at `offset` of `names`. */
  peerAt(names: DataView, offset: number): PeerAddress {
    const port = names.getUint16(offset + 2, false);
    const ip = names.getUint32(offset + 4, false);
    const key = ip * 65536 + port;
    let a = this.#byNumber.get(key);
    if (a === undefined) {
      a = this.#addresses.get(`${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`, port);
      this.#ipOf.set(a, ip);
      if (this.#byNumber.size >= this.#addresses.limit) this.#byNumber.clear();
      this.#byNumber.set(key, a);
    }
    return a;
  }

  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket {
    const c = this.libc;
    const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) throw new Error("socket() failed");
    const opt = new Int32Array(64);
    const setopt = (name: number, value: number) => {
      opt[0] = value;
      return c.setsockopt(fd, SOL_SOCKET, name, opt, 4);
    };
    setopt(SO_RCVBUF, SOCKET_BUFFER);
    setopt(SO_SNDBUF, SOCKET_BUFFER);
    if (opts.reusePort) {
      setopt(SO_REUSEADDR, 1);
      setopt(SO_REUSEPORT, 1);
    }
    const sa = new Uint8Array(256);
    const bindIp = ipv4Number(opts.host || "0.0.0.0");
    if (bindIp === undefined) throw new Error(`the ffi backend binds IPv4 addresses only, not ${opts.host}`);
    writeSockaddr(new DataView(sa.buffer), 0, bindIp, opts.port);
    if (c.bind(fd, sa, 16) !== 0) {
      c.close(fd);
      throw new Error(`cannot bind udp ${opts.host || "0.0.0.0"}:${opts.port} (address in use or not local)`);
    }
    const len = new Uint32Array(64);
    len[0] = 16;
    c.getsockname(fd, sa, len);
    const dv = new DataView(sa.buffer);
    const local = this.address(
      `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`,
      dv.getUint16(2, false),
    );
    const socket = new FfiSocket(this, fd, local, onPacket);
    this.#sockets.set(fd, socket);
    const ev = new DataView(this.#epollEvent.buffer);
    ev.setUint32(0, EPOLLIN, true);
    ev.setBigUint64(4, BigInt(fd), true);
    if (c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, this.#epollEvent) !== 0) {
      throw new Error("epoll_ctl failed");
    }
    return socket;
  }

  /** Queues a datagram; it leaves with the next flush (end of the reactor turn, or of this microtask). */
  enqueue(fd: number, data: Uint8Array, to: PeerAddress): void {
    if (data.length > TX_SLOT) {
      counters.inc("udp_send_too_large");
      return;
    }
    let ip = this.#ipOf.get(to);
    if (ip === undefined) {
      ip = ipv4Number(to.host);
      if (ip === undefined) {
        counters.inc("udp_send_not_ipv4");
        return;
      }
      this.#ipOf.set(to, ip);
    }
    if (this.#txCount === TX_BATCH) this.flush();
    const i = this.#txCount++;
    const tx = this.#tx;
    tx.slots.set(data, i * TX_SLOT);
    tx.iov[2 * i + 1] = BigInt(data.length);
    writeSockaddr(tx.namesView, i * NAME, ip, to.port);
    tx.msgsView.setUint32(i * MMSG + OFF_NAMELEN, 16, true);
    this.#txFd[i] = fd;
    if (i === 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** One sendmmsg per run of datagrams for the same socket, in queue order. */
  flush(): void {
    this.#flushScheduled = false;
    const n = this.#txCount;
    let start = 0;
    while (start < n) {
      const fd = this.#txFd[start];
      let end = start + 1;
      while (end < n && this.#txFd[end] === fd) end++;
      let off = start;
      while (off < end) {
        const sent = this.libc.sendmmsg(fd, this.#tx.msgs.subarray(off * MMSG), end - off, MSG_DONTWAIT);
        if (sent <= 0) {
          // Socket buffer full (EAGAIN) or an error: UDP semantics, the rest of this run is dropped.
          counters.inc("udp_send_dropped", end - off);
          break;
        }
        off += sent;
      }
      start = end;
    }
    this.#txCount = 0;
  }

  forget(fd: number): void {
    this.#sockets.delete(fd);
    this.libc.epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, this.#epollEvent);
  }

  async #loop(): Promise<void> {
    let busy = 0;
    while (this.#running) {
      // Drain without a thread hop while busy; wait in a worker thread only when idle or to yield.
      let n = busy < MAX_BUSY_ROUNDS ? this.libc.epoll_wait(this.epfd, this.#events, BATCH, 0) : 0;
      if (n <= 0) {
        busy = 0;
        n = await this.libc.epoll_wait_blocking(this.epfd, this.#events, BATCH, 200);
        if (!this.#running) return;
        if (n <= 0) continue;
      } else busy++;
      for (let i = 0; i < n; i++) {
        const fd = Number(this.#eventsView.getBigUint64(i * EPOLL_EVENT + 4, true));
        this.#sockets.get(fd)?.drain();
      }
      this.flush();
    }
  }

  /** glibc keeps memory freed after a burst (session set-up churn) in its arenas; give it back. */
  async releaseFreeMemory(): Promise<void> {
    if (!this.#running || this.#releasing) return;
    this.#releasing = this.libc.malloc_trim(0n).then(() => {});
    await this.#releasing;
    this.#releasing = undefined;
  }

  /** Resolves once the library is unloaded (a worker must not end before that). */
  close(): Promise<void> {
    for (const s of [...this.#sockets.values()]) s.close();
    this.#running = false;
    // The reactor's pending epoll_wait returns within its 200 ms timeout; the library stays loaded
    // until then (closing it under a running call would crash).
    return new Promise((resolve) =>
      setTimeout(async () => {
        await this.#releasing; // a call in flight on another thread must finish first, too
        this.libc.close(this.epfd);
        this.lib.close();
        resolve();
      }, 400)
    );
  }
}

/** Packet slots, addresses, iovecs and mmsghdrs for one recvmmsg or sendmmsg vector, kept referenced. */
class Batch {
  readonly slots: Uint8Array;
  readonly names: Uint8Array;
  readonly namesView: DataView;
  readonly iov: BigUint64Array;
  readonly msgs: Uint8Array;
  readonly msgsView: DataView;

  constructor(readonly count: number, readonly slot: number) {
    this.slots = new Uint8Array(count * slot);
    this.names = new Uint8Array(Math.max(256, count * NAME));
    this.namesView = new DataView(this.names.buffer);
    this.iov = new BigUint64Array(Math.max(32, count * 2));
    this.msgs = new Uint8Array(count * MMSG);
    this.msgsView = new DataView(this.msgs.buffer);
    const slots = address(this.slots), names = address(this.names), iov = address(this.iov);
    for (let i = 0; i < count; i++) {
      this.iov[2 * i] = slots + BigInt(i * slot);
      this.iov[2 * i + 1] = BigInt(slot);
      const o = i * MMSG;
      this.msgsView.setBigUint64(o + OFF_NAME, names + BigInt(i * NAME), true);
      this.msgsView.setUint32(o + OFF_NAMELEN, NAME, true);
      this.msgsView.setBigUint64(o + OFF_IOV, iov + BigInt(i * 16), true);
      this.msgsView.setBigUint64(o + OFF_IOVLEN, 1n, true);
    }
  }
}

class FfiSocket implements DatagramSocket {
  #closed = false;

  constructor(
    readonly backend: FfiUdpBackend,
    readonly fd: number,
    readonly localAddress: PeerAddress,
    readonly onPacket: DatagramHandler,
  ) {}

  /** Reads what is queued, in batches, handing each datagram to the handler (synchronously). */
  drain(): void {
    const rx = this.backend.rx;
    for (let round = 0; round < MAX_BATCHES_PER_WAKEUP && !this.#closed; round++) {
      for (let i = 0; i < BATCH; i++) {
        rx.msgsView.setUint32(i * MMSG + OFF_NAMELEN, NAME, true);
        rx.msgsView.setUint32(i * MMSG + OFF_FLAGS, 0, true);
      }
      const n = this.backend.libc.recvmmsg(this.fd, rx.msgs, BATCH, MSG_DONTWAIT, null);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const o = i * MMSG;
        const len = rx.msgsView.getUint32(o + OFF_LEN, true);
        if (rx.msgsView.getUint32(o + OFF_FLAGS, true) & MSG_TRUNC) {
          counters.inc("udp_drop_truncated");
          continue;
        }
        if (rx.namesView.getUint16(i * NAME, true) !== AF_INET) continue;
        const from = this.backend.peerAt(rx.namesView, i * NAME);
        try {
          this.onPacket(rx.slots.subarray(i * SLOT, i * SLOT + len), from, this);
        } catch (e) {
          counters.inc("packet_handler_errors");
          log("error", "packet_handler_error", { local: this.localAddress.key, error: e });
        }
      }
      if (n < BATCH) return;
    }
  }

  send(data: Uint8Array, to: PeerAddress): void {
    if (!this.#closed) this.backend.enqueue(this.fd, data, to);
  }

  close(): void {
    if (this.#closed) return;
    this.backend.flush();
    this.#closed = true;
    this.backend.forget(this.fd);
    this.backend.libc.close(this.fd);
  }
}
