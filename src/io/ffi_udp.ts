// Batched UDP through libc on Linux (Deno.dlopen): recvmmsg/sendmmsg, one epoll reactor for every
// socket, 8 MiB socket buffers. Measured on the project's machines, this reaches a C recvmmsg relay's
// ceiling where Deno.listenDatagram reaches a quarter of it. IPv4 and IPv6 sockets; a socket bound to
// "::" is dual-stack and sees IPv4 peers as v4-mapped addresses, which sockaddr.ts turns back into IPv4.
// Memory rules for FFI: every buffer whose address libc holds stays referenced by this module for the
// socket's life, and is at least 256 bytes so V8 keeps it off-heap and never moves it.
import { drop, internalErrors, shardWakeups, udpCoalesced, udpSegmented } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";
import { anyAddress, type Family, parseIp, type PeerAddress, peerFromBytes } from "./address.ts";
import { everyOnEventLoop, Periodic, type PeriodicTask, type PeriodicWork } from "./periodic.ts";
import { TurnWaiter } from "./turns.ts";
import { AF_INET, AF_INET6, PeerReader, SOCKADDR_IN6, SOCKADDR_SLOT, writeSockaddr } from "./sockaddr.ts";
import {
  type BindOptions,
  type DatagramBackend,
  type DatagramHandler,
  type DatagramSocket,
  MAX_DATAGRAM,
} from "./types.ts";

const SEGMENTED = udpSegmented.with({});
const COALESCED = udpCoalesced.with({});
const WAKEUPS = shardWakeups.with({});
const AFTER_FLUSH_ERRORS = internalErrors.with({ where: "after_flush" });

const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_REUSEPORT = 15;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const MSG_DONTWAIT = 0x40;
/** UDP generic segmentation offload (Linux 4.18+): one sendmmsg entry carries several datagrams of one
 * size to one destination, which cross the stack once and are cut apart at the device (or the receiving
 * socket). cmsg level SOL_UDP, type UDP_SEGMENT, a u16 segment size. */
const SOL_UDP = 17;
/** errno values that mean "not this way" rather than "not now" (EAGAIN). */
const EIO = 5, EINVAL = 22, EOPNOTSUPP = 95;
const UDP_SEGMENT = 103;
/** CMSG_SPACE(sizeof(uint16_t)) and CMSG_LEN(sizeof(uint16_t)) on 64-bit Linux. */
const GSO_CMSG_SPACE = 24, GSO_CMSG_LEN = 18;
/** The kernel's UDP_MAX_SEGMENTS, and what one entry may carry in all (an IP datagram's payload). */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65_000;
/** Datagrams larger than this go alone: a segment must fit the path MTU unfragmented (1,500 less the
 * IPv6 and UDP headers), or the kernel refuses the whole entry. WebRTC media stays well under it. */
const GSO_MAX_SEGMENT = 1_400;
/** Destinations a flush groups at a time: the groups started last (a batch's repeats are a few busy
 * flows; a destination seen longer ago starts a new group). */
const GSO_OPEN_GROUPS = 8;
/** UDP generic receive offload (Linux 5.0+): datagrams of one flow that arrive together (a NIC's or
 * veth's GRO, or a GSO send on the same host) reach the socket as one buffer of equal segments, the last
 * one possibly shorter; a cmsg (SOL_UDP, UDP_GRO, an int) gives the segment size. Without the option
 * the kernel never coalesces UDP for a socket, and cuts a GSO send apart before queueing it. */
const UDP_GRO = 104;
/** CMSG_SPACE(sizeof(int)) on 64-bit Linux; the cmsg's data starts after its 16-byte header. */
const GRO_CMSG_SPACE = 24, CMSG_DATA = 16;
/** A coalesced receive is at most an IP datagram's payload (the kernel's GRO limit of 64 KiB). */
const GRO_MAX_BYTES = 65_536;
/** Kernel receive times (SO_TIMESTAMPNS, x86_64 numbering): a cmsg (SOL_SOCKET, SCM_TIMESTAMPNS, a
 * struct timespec on CLOCK_REALTIME) per datagram, stamped as the datagram reached the socket's stack. */
const SO_TIMESTAMPNS = 35, SCM_TIMESTAMPNS = 35;
/** CMSG_SPACE(sizeof(struct timespec)) on 64-bit Linux. */
const TIMESTAMP_CMSG_SPACE = 32;
const MSG_TRUNC = 0x20;
const EPOLLIN = 1;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;

/** sizeof(struct mmsghdr) and its field offsets on 64-bit Linux. */
const MMSG = 64;
const OFF_NAME = 0, OFF_NAMELEN = 8, OFF_IOV = 16, OFF_IOVLEN = 24, OFF_CONTROL = 32, OFF_CONTROLLEN = 40;
const OFF_FLAGS = 48, OFF_LEN = 56;
const NAME = SOCKADDR_SLOT;
/** sizeof(struct iovec) and the offset of its iov_len. */
const IOVEC = 16, IOV_LEN = 8;
const EPOLL_EVENT = 12; // packed struct epoll_event on x86_64
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
/** Datagrams per recvmmsg call, and queued for sendmmsg; each receive slot holds the largest datagram
 * xRTC handles, plus room so a larger one shows as truncated (with GRO, the largest coalesced receive).
 * Both batches are shared by every socket of the backend, so a socket costs a file descriptor and little
 * else (the receive slots' pages are touched only as far as datagrams fill them). */
export const BATCH = 64;
const SLOT = MAX_DATAGRAM + 256;
const GRO_SLOT = GRO_MAX_BYTES + 256;
export const TX_BATCH = 256;
export const TX_SLOT = MAX_DATAGRAM;
const SOCKET_BUFFER = 8 * 1024 * 1024;
/** Batches drained from one socket per wakeup, so one busy socket cannot starve the others. */
const MAX_BATCHES_PER_WAKEUP = 8;
/** Busy rounds before the reactor yields to the event loop (timers, HTTP, TCP). */
const MAX_BUSY_ROUNDS = 16;
/** A backend on a thread of its own (a shard worker) waits for datagrams on that thread for this long at
 * a time while media flows, then lets the thread's event loop run. The media plane's periodic work
 * (maintenance, check pacing) runs inside the slice (`every`), on time; a message ends the slice at once
 * (turns.ts: the poster writes an eventfd in the wait's epoll set), and a TCP connection on the thread makes it
 * wait through the pool meanwhile (`holdEventLoop`); only other timers of the thread (the lag probe) run
 * up to a slice late. Waiting through Deno's thread pool each time instead costs a second thread switch
 * per wakeup, which two shards pay twice as often as one, and each turn costs a pool wait and a pass of
 * the event loop: so the slices are long (measured at 10 ms against 5: 2 workers over 1, +13 % against
 * +19 %, same run). */
export const OWN_THREAD_SLICE_MS = 50;
/** A wait through the pool while the thread has no datagrams lasts at most this long (or until a
 * periodic task is due). */
const IDLE_WAIT_MS = 200;
/** The event loop's turn between slices is a wait in the pool of up to this long (it returns at the next
 * datagram). A turn that cannot block (a timeout of 0, a message to itself) was measured to starve the
 * thread's timers: a 5 ms interval ran 21 times in a second instead of 200. */
const TURN_WAIT_MS = 1;

export interface FfiBackendOptions {
  /** UDP GSO on sends (default on). */
  gso?: boolean;
  /** UDP GRO on receives (default on). */
  gro?: boolean;
  /** Each datagram's kernel receive time, in `receivedAt` while its handler runs (default off): a
   * process that measures a path reads when a datagram arrived, not when it woke up to read it (the bench's
   * clients and echo peer). */
  receiveTimes?: boolean;
  /** The calling thread runs nothing but this backend's media (a shard worker), so it may wait for
   * datagrams itself. */
  ownThread?: boolean;
  /** Own thread: the shared words of its TurnChannel (turns.ts), through which other threads that post
   * it a message get a turn of its event loop. */
  turns?: Int32Array;
}

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
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // Off the event loop: trimming hundreds of MB takes ~15 ms, which media must not wait for.
  __errno_location: { parameters: [], result: "pointer" },
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

function address(buf: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

/** A struct timespec (64-bit Linux) at `offset`, in milliseconds: a Number, 0.25 µs apart at today's
 * dates since the epoch (a BigInt read would allocate). */
export function timespecMs(view: DataView, offset: number): number {
  const seconds = view.getUint32(offset, true) + view.getInt32(offset + 4, true) * 0x1_0000_0000;
  return seconds * 1e3 + view.getUint32(offset + 8, true) / 1e6;
}

/** Writes a 64-bit little-endian size_t or pointer from a Number, as two 32-bit halves: a BigInt per
 * write would be an allocation per datagram on the send path. Addresses and sizes here are far below
 * 2^53, where a Number is exact. */
function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

export class FfiUdpBackend implements DatagramBackend {
  readonly name = "ffi" as const;
  readonly peers = new PeerReader();
  readonly #sockets = new Map<number, FfiSocket>();
  readonly #events = new Uint8Array(Math.max(256, BATCH * EPOLL_EVENT));
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #epollEvent = new Uint8Array(256);
  #running = true;
  /** Own thread: other threads' requests for a turn of its event loop (a message was posted to it). */
  readonly #turns?: TurnWaiter;
  /** Own thread with turns: the eventfd in its epoll set that other threads write to end a wait (-1:
   * none). */
  readonly wakeFd: number = -1;
  readonly #wakeBuffer = new Uint8Array(256);
  readonly #wakeView = new DataView(this.#wakeBuffer.buffer);
  readonly #ownThread: boolean;
  /** Own thread: the periodic tasks (every()), and when the first of them is next due. */
  readonly #periodic: Periodic[] = [];
  #nextDue = Infinity;
  /** Own thread: when the wait through the pool in progress ends at the latest (0: none in progress). */
  #poolWaitEnd = 0;
  /** Own thread: holds of the event loop (holdEventLoop). */
  #loopHolds = 0;
  #releasing?: Promise<void>;
  #flushScheduled = false;
  /** Within #serve, which flushes when its sockets are drained: sends queued meanwhile need no task. */
  #serving = false;
  readonly #flushTask = () => this.flush();
  /** Work to run right after the next flush (afterFlush()). */
  #afterFlush: Array<() => void> = [];
  readonly rx: Batch;
  readonly #tx = new Batch(TX_BATCH, TX_SLOT);
  /** The socket, destination and size of each queued datagram. */
  readonly #txFd = new Int32Array(TX_BATCH);
  readonly #txTo: PeerAddress[] = new Array(TX_BATCH);
  readonly #txLen = new Uint32Array(TX_BATCH);
  #txCount = 0;
  /** GSO: the entries built at flush time (each names one queued datagram's address and points at an
   * iovec run of its group), their iovecs and cmsgs. */
  readonly #gsoMsgs = new Uint8Array(TX_BATCH * MMSG);
  readonly #gsoMsgsView = new DataView(this.#gsoMsgs.buffer);
  readonly #gsoIov = new Uint8Array(TX_BATCH * IOVEC);
  readonly #gsoIovView = new DataView(this.#gsoIov.buffer);
  /** The GSO entries from each index on (sendmmsg's vector argument), made once. */
  readonly #gsoMsgsFrom = vectorsFrom(this.#gsoMsgs, TX_BATCH);
  readonly #gsoCtrl = new Uint8Array(Math.max(256, TX_BATCH * GSO_CMSG_SPACE));
  readonly #gsoCtrlView = new DataView(this.#gsoCtrl.buffer);
  /** Per queued datagram, the next one in its group (-1: none); the first ones of the groups in queue
   * order; the last ones of the most recently started groups (the grouping of #sendSegmented). */
  readonly #gsoNext = new Int16Array(TX_BATCH);
  readonly #gsoHeads = new Uint16Array(TX_BATCH);
  readonly #gsoTails = new Uint16Array(GSO_OPEN_GROUPS);
  #entries = 0;
  #iovAt = 0;
  /** Per entry its datagrams' count and first iovec; per iovec its queued datagram. */
  readonly #gsoCount = new Uint16Array(TX_BATCH);
  readonly #gsoFirst = new Uint16Array(TX_BATCH);
  readonly #gsoMember = new Uint16Array(TX_BATCH);
  readonly #slotsAddress: number;
  readonly #namesAddress: number;
  readonly #gsoIovAddress = address(this.#gsoIov);
  readonly #gsoCtrlAddress = address(this.#gsoCtrl);
  /** Off when the kernel refused a segmented send (then never tried again). */
  gso: boolean;
  /** Sockets ask for coalesced receives (a socket whose kernel refuses the option just never gets one). */
  readonly gro: boolean;
  readonly receiveTimes: boolean;

  private constructor(
    readonly lib: Deno.DynamicLibrary<typeof SYMBOLS>,
    readonly libc: Libc,
    readonly epfd: number,
    opts: FfiBackendOptions,
  ) {
    this.gso = opts.gso ?? true;
    this.gro = opts.gro ?? true;
    this.receiveTimes = opts.receiveTimes ?? false;
    const control = (this.gro ? GRO_CMSG_SPACE : 0) + (this.receiveTimes ? TIMESTAMP_CMSG_SPACE : 0);
    this.rx = new Batch(BATCH, this.gro ? GRO_SLOT : SLOT, control);
    this.#ownThread = opts.ownThread ?? false;
    if (this.#ownThread && opts.turns) {
      this.#turns = new TurnWaiter(opts.turns);
      this.wakeFd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (this.wakeFd < 0) throw new Error("eventfd failed");
      this.#watch(this.wakeFd);
    }
    this.#slotsAddress = address(this.#tx.slots);
    this.#namesAddress = address(this.#tx.names);
    for (let i = 0; i < TX_BATCH; i++) {
      const c = i * GSO_CMSG_SPACE;
      setU64(this.#gsoCtrlView, c, GSO_CMSG_LEN);
      this.#gsoCtrlView.setInt32(c + 8, SOL_UDP, true);
      this.#gsoCtrlView.setInt32(c + 12, UDP_SEGMENT, true);
    }
    if (this.#ownThread) this.#ownThreadLoop();
    else this.#sharedThreadLoop();
  }

  /** DatagramBackend.holdEventLoop: while held, an own-thread backend waits through the pool. */
  holdEventLoop(): () => void {
    this.#loopHolds++;
    let held = true;
    return () => {
      if (held) this.#loopHolds--;
      held = false;
    };
  }

  /** DatagramBackend.every: on its own thread, run from the wait for datagrams (no turn of the event
   * loop needed); on a shared thread, by timers. */
  every(ms: number, work: PeriodicWork): PeriodicTask {
    if (!this.#ownThread) return everyOnEventLoop(ms, work);
    const periodic = new Periodic(ms, work, (due) => this.#dueBy(due));
    this.#periodic.push(periodic);
    this.#dueBy(periodic.due);
    return periodic;
  }

  /** A periodic task is due by `due`: the thread's waits end by then. */
  #dueBy(due: number): void {
    this.#nextDue = Math.min(this.#nextDue, due);
    // Filed while the thread waits through the pool (from a message), past whose end it falls due: the
    // event loop is free meanwhile, so a timer runs it on time.
    if (due < this.#poolWaitEnd) this.#timerFor(due);
  }

  #timerFor(due: number): void {
    // Timers count whole milliseconds: rounded up, so that it does not fire before the task is due.
    setTimeout(() => {
      const now = performance.now();
      if (now < due && due < this.#poolWaitEnd) this.#timerFor(due);
      else this.#runDue(now);
    }, Math.ceil(due - performance.now()));
  }

  /** Runs the periodic tasks due by `now` (each guarded by Periodic.run: the others and the media go on
   * when one throws). */
  #runDue(now: number): void {
    if (now < this.#nextDue) return;
    const list = this.#periodic;
    const count = list.length; // a task added by a task waits for the next run
    for (let i = 0; i < count; i++) {
      const p = list[i];
      if (p.active && now >= p.due) p.run(now);
    }
    let next = Infinity, kept = 0;
    for (let i = 0; i < list.length; i++) {
      const p = list[i];
      if (!p.active) continue;
      list[kept++] = p;
      if (p.due < next) next = p.due;
    }
    list.length = kept;
    this.#nextDue = next;
    // What the tasks sent leaves now: no microtask runs before this slice ends.
    if (this.#txCount > 0 || this.#afterFlush.length > 0) this.flush();
  }

  static open(opts: FfiBackendOptions = {}): FfiUdpBackend {
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
    return new FfiUdpBackend(lib, lib.symbols, epfd, opts);
  }

  /** With `receiveTimes`, while a handler runs: when its datagram reached the socket, in milliseconds
   * since the epoch (CLOCK_REALTIME; NaN when the kernel gave none). */
  get receivedAt(): number {
    return this.rx.receivedAt;
  }

  bind(opts: BindOptions, onPacket: DatagramHandler): DatagramSocket {
    const c = this.libc;
    const host = opts.host || anyAddress(4);
    const ip = parseIp(host);
    if (!ip) throw new Error(`cannot bind udp ${host}: not an IP address`);
    // "::" binds both families; an IPv4 address an IPv4 socket (a v4-mapped text is IPv4 here).
    const family: Family = host.includes(":") && ip.family === 6 ? 6 : 4;
    const fd = c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) throw new Error(`socket() failed for IPv${family}`);
    const opt = new Int32Array(64);
    const setopt = (level: number, name: number, value: number) => {
      opt[0] = value;
      return c.setsockopt(fd, level, name, opt, 4);
    };
    setopt(SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER);
    setopt(SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER);
    if (family === 6) setopt(IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (this.gro) setopt(SOL_UDP, UDP_GRO, 1);
    if (this.receiveTimes) setopt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    if (opts.reusePort) {
      setopt(SOL_SOCKET, SO_REUSEADDR, 1);
      setopt(SOL_SOCKET, SO_REUSEPORT, 1);
    }
    const sa = new Uint8Array(256);
    const view = new DataView(sa.buffer);
    const length = writeSockaddr(view, 0, family, peerFromBytes(ip.bytes, opts.port));
    if (c.bind(fd, sa, length) !== 0) {
      c.close(fd);
      throw new Error(`cannot bind udp ${host}:${opts.port} (address in use or not local)`);
    }
    const len = new Uint32Array(64);
    len[0] = SOCKADDR_IN6;
    c.getsockname(fd, sa, len);
    const local = this.peers.read(view, 0);
    if (!local) throw new Error("getsockname gave no address");
    const socket = new FfiSocket(this, fd, family, local, onPacket);
    this.#sockets.set(fd, socket);
    this.#watch(fd);
    return socket;
  }

  /** Adds `fd` to the epoll set, its number as the event's data. */
  #watch(fd: number): void {
    const ev = new DataView(this.#epollEvent.buffer);
    ev.setUint32(0, EPOLLIN, true);
    setU64(ev, 4, fd);
    if (this.libc.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, this.#epollEvent) !== 0) {
      throw new Error("epoll_ctl failed");
    }
  }

  /** DatagramBackend.wake: writes another thread's wake eventfd (TurnRequester). */
  wake(fd: number): void {
    setU64(this.#wakeView, 0, 1);
    this.libc.write(fd, this.#wakeBuffer, 8n);
  }

  /** DatagramBackend.afterFlush. */
  afterFlush(task: () => void): void {
    this.#afterFlush.push(task);
    this.#scheduleFlush();
  }

  /** A flush at the end of this task, unless #serve flushes anyway or one is scheduled already. */
  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#serving) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flushTask);
  }

  /** Queues a datagram; it leaves with the next flush (end of the reactor turn, or of this microtask). */
  enqueue(fd: number, family: Family, data: Uint8Array, to: PeerAddress): void {
    if (data.length > TX_SLOT) {
      drop.send_too_large.inc();
      return;
    }
    if (this.#txCount === TX_BATCH) this.flush();
    const i = this.#txCount;
    const tx = this.#tx;
    const nameLength = writeSockaddr(tx.namesView, i * NAME, family, to);
    if (nameLength === 0) {
      drop.unsupported_family.inc();
      return;
    }
    this.#txCount++;
    tx.slots.set(data, i * TX_SLOT);
    setU64(tx.iovView, i * IOVEC + IOV_LEN, data.length);
    tx.msgsView.setUint32(i * MMSG + OFF_NAMELEN, nameLength, true);
    this.#txFd[i] = fd;
    this.#txTo[i] = to;
    this.#txLen[i] = data.length;
    if (i === 0) this.#scheduleFlush();
  }

  /** One sendmmsg per run of datagrams for the same socket, in queue order; with GSO, the datagrams of
   * a run to one destination of one size leave as one entry (order kept per destination). */
  flush(): void {
    this.#flushScheduled = false;
    const n = this.#txCount;
    let start = 0;
    while (start < n) {
      const fd = this.#txFd[start];
      let end = start + 1;
      while (end < n && this.#txFd[end] === fd) end++;
      if (!this.gso || end - start < 2 || !this.#sendSegmented(fd, start, end)) {
        this.#sendEach(fd, start, end);
      }
      start = end;
    }
    this.#txCount = 0;
    if (this.#afterFlush.length > 0) this.#runAfterFlush();
  }

  #runAfterFlush(): void {
    const tasks = this.#afterFlush;
    this.#afterFlush = [];
    for (const task of tasks) {
      try {
        task();
      } catch (e) {
        AFTER_FLUSH_ERRORS.inc();
        log("error", "after_flush_error", { error: e });
      }
    }
  }

  /** The queued datagrams start..end of one socket, one entry each. */
  #sendEach(fd: number, start: number, end: number): void {
    let off = start;
    while (off < end) {
      const sent = this.libc.sendmmsg(fd, this.#tx.msgsFrom[off], end - off, MSG_DONTWAIT);
      if (sent <= 0) {
        // Socket buffer full (EAGAIN) or an error: UDP semantics, the rest of this run is dropped.
        drop.send_failed.inc(end - off);
        return;
      }
      off += sent;
    }
  }

  /** Groups start..end by destination and size into GSO entries and sends them. False when nothing
   * groups: the caller sends the run one entry per datagram. */
  #sendSegmented(fd: number, start: number, end: number): boolean {
    const to = this.#txTo, len = this.#txLen, next = this.#gsoNext, tails = this.#gsoTails;
    // One pass: each datagram is chained after the previous one to its destination among the groups
    // started last (received addresses are interned, and a session keeps its own, so one peer is one
    // object); a destination not among them starts a group of its own, sent after the groups before
    // it, so each destination's order holds. No table per flush: a Map cleared each time made garbage
    // on every flush. When no destination repeats there is nothing to group.
    let heads = 0;
    for (let i = start; i < end; i++) {
      next[i] = -1;
      const open = heads < GSO_OPEN_GROUPS ? heads : GSO_OPEN_GROUPS;
      let g = 0;
      while (g < open && to[tails[g]] !== to[i]) g++;
      if (g < open) next[tails[g]] = i;
      else this.#gsoHeads[heads++] = i;
      tails[g < open ? g : (heads - 1) % GSO_OPEN_GROUPS] = i;
    }
    if (heads === end - start) return false;
    let grouped = false, segmented = 0;
    this.#entries = 0;
    this.#iovAt = 0;
    for (let h = 0; h < heads; h++) {
      // A destination's datagrams in queue order, cut into entries: one size each (a shorter one may
      // end an entry), within the kernel's bounds.
      for (let j = this.#gsoHeads[h]; j !== -1;) {
        const size = len[j];
        const first = this.#iovAt;
        this.#addSegment(j);
        let count = 1, bytes = size, k = next[j];
        if (size <= GSO_MAX_SEGMENT) {
          while (k !== -1 && count < GSO_MAX_SEGMENTS && len[k] <= size && bytes + len[k] <= GSO_MAX_BYTES) {
            this.#addSegment(k);
            count++;
            bytes += len[k];
            const shorter = len[k] < size;
            k = next[k];
            if (shorter) break;
          }
        }
        if (count > 1) {
          grouped = true;
          segmented += count;
        }
        this.#addEntry(j, first, count, size);
        j = k;
      }
    }
    const entries = this.#entries;
    if (!grouped) return false;
    SEGMENTED.inc(segmented);
    let off = 0;
    while (off < entries) {
      const sent = this.libc.sendmmsg(fd, this.#gsoMsgsFrom[off], entries - off, MSG_DONTWAIT);
      if (sent > 0) {
        off += sent;
        continue;
      }
      const errno = this.#errno();
      if (this.#gsoCount[off] > 1 && (errno === EINVAL || errno === EIO || errno === EOPNOTSUPP)) {
        // The kernel (or the path's MTU) does not take segmented sends: without GSO from now on, and
        // what is left of this flush leaves one datagram at a time.
        this.gso = false;
        log("warn", "udp_gso_disabled", { reason: `the kernel refused a segmented send (errno ${errno})` });
        for (let e = off; e < entries; e++) {
          for (let k = 0; k < this.#gsoCount[e]; k++) {
            const q = this.#gsoMember[this.#gsoFirst[e] + k];
            if (this.libc.sendmmsg(fd, this.#tx.msgsFrom[q], 1, MSG_DONTWAIT) !== 1) {
              drop.send_failed.inc();
            }
          }
        }
        return true;
      }
      let lost = 0;
      for (let e = off; e < entries; e++) lost += this.#gsoCount[e];
      drop.send_failed.inc(lost);
      return true;
    }
    return true;
  }

  /** The next iovec of the entry being built: datagram `q` of the queue. */
  #addSegment(q: number): void {
    const at = this.#iovAt++;
    setU64(this.#gsoIovView, at * IOVEC, this.#slotsAddress + q * TX_SLOT);
    setU64(this.#gsoIovView, at * IOVEC + IOV_LEN, this.#txLen[q]);
    this.#gsoMember[at] = q;
  }

  /** An entry to the address of datagram `q`: `count` iovecs from `first`, segmented when more than one. */
  #addEntry(q: number, first: number, count: number, size: number): void {
    const e = this.#entries++;
    const view = this.#gsoMsgsView, o = e * MMSG;
    setU64(view, o + OFF_NAME, this.#namesAddress + q * NAME);
    view.setUint32(o + OFF_NAMELEN, this.#tx.msgsView.getUint32(q * MMSG + OFF_NAMELEN, true), true);
    setU64(view, o + OFF_IOV, this.#gsoIovAddress + first * IOVEC);
    setU64(view, o + OFF_IOVLEN, count);
    if (count > 1) {
      const c = e * GSO_CMSG_SPACE;
      this.#gsoCtrlView.setUint16(c + 16, size, true);
      setU64(view, o + OFF_CONTROL, this.#gsoCtrlAddress + c);
      setU64(view, o + OFF_CONTROLLEN, GSO_CMSG_SPACE);
    } else {
      setU64(view, o + OFF_CONTROL, 0);
      setU64(view, o + OFF_CONTROLLEN, 0);
    }
    view.setUint32(o + OFF_FLAGS, 0, true);
    this.#gsoCount[e] = count;
    this.#gsoFirst[e] = first;
  }

  /** After a failed send: the kernel's reason (errno of this thread, read right after the call). */
  #errno(): number {
    const p = this.libc.__errno_location();
    return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  }

  /** Stops serving `socket` without closing it and returns its descriptor, which now belongs to the caller
   * (the bench's generator hands its clients, ICE done, to a child process that inherits them: sockets
   * here are made without close-on-exec). */
  handOver(socket: DatagramSocket): number {
    if (!(socket instanceof FfiSocket) || socket.backend !== this) {
      throw new Error("not a socket of this backend");
    }
    return socket.handOver();
  }

  forget(fd: number): void {
    this.#sockets.delete(fd);
    this.libc.epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, this.#epollEvent);
  }

  /** A thread shared with HTTP and signalling (the main thread): wait for datagrams on one of Deno's
   * pool threads, so the event loop polls its own sockets meanwhile, and drain without that hop while
   * busy. (Waiting on the main thread itself was measured: HTTP requests then waited 2.6 ms at the median
   * under 20k packets/s instead of 0.5.) */
  async #sharedThreadLoop(): Promise<void> {
    let busy = 0;
    while (this.#running) {
      let n = busy < MAX_BUSY_ROUNDS ? this.libc.epoll_wait(this.epfd, this.#events, BATCH, 0) : 0;
      if (n <= 0) {
        busy = 0;
        n = await this.libc.epoll_wait_blocking(this.epfd, this.#events, BATCH, 200);
        if (!this.#running) return;
        if (n <= 0) continue;
      } else busy++;
      this.#serve(n);
    }
  }

  /** A thread of its own: while media flows, wait for it on this thread (one thread switch per wakeup,
   * as a C relay has) in slices of OWN_THREAD_SLICE_MS, each followed by a turn of the event loop; a
   * slice with no datagram at all goes back to waiting through the pool, so an idle shard wakes only for
   * its periodic tasks and every IDLE_WAIT_MS. */
  async #ownThreadLoop(): Promise<void> {
    let flowing = false;
    while (this.#running) {
      // A slice only while datagrams come: after a pool wait that saw none, wait through the pool again.
      const served: boolean = flowing && this.#slice();
      // Requests raised from here on are for messages the turn below may not see: the next slice ends.
      this.#turns?.seen();
      const now = performance.now();
      const timeout = served && this.#loopHolds === 0
        ? TURN_WAIT_MS
        : Math.min(IDLE_WAIT_MS, Math.max(0, Math.ceil(this.#nextDue - now)));
      this.#poolWaitEnd = now + timeout;
      const n = await this.libc.epoll_wait_blocking(this.epfd, this.#events, BATCH, timeout);
      this.#poolWaitEnd = 0;
      if (!this.#running) return;
      if (n > 0) this.#serve(n);
      this.#runDue(performance.now());
      flowing = served || n > 0;
    }
  }

  /** One slice of waiting on this thread, running periodic tasks as they fall due; whether any datagram
   * came. */
  #slice(): boolean {
    let now = performance.now();
    const end = now + OWN_THREAD_SLICE_MS;
    let served = false;
    while (now < end && !this.#turnWanted()) {
      // Milliseconds are fine grain enough here (epoll_pwait2 would need glibc 2.35).
      const wait = Math.ceil(Math.min(end, this.#nextDue) - now);
      // Blocking: a message posted meanwhile ends the wait through the eventfd.
      if (wait > 0 && this.#turns && !this.#turns.sleeping()) break;
      const n = this.libc.epoll_wait(this.epfd, this.#events, BATCH, wait > 0 ? wait : 0);
      if (wait > 0) this.#turns?.awake();
      if (n > 0) {
        served = true;
        this.#serve(n);
      }
      now = performance.now();
      this.#runDue(now);
      // Nothing came in a real wait, and nothing had: the thread is idle, and waits through the pool.
      if (n <= 0 && !served && wait > 0) break;
    }
    return served;
  }

  /** Whether the own-thread slice must end: a message is waiting, or I/O on the event loop is held. */
  #turnWanted(): boolean {
    if (this.#loopHolds > 0) return true;
    return this.#turns?.wanted() ?? false;
  }

  /** Drains the sockets epoll reported and sends what their packets queued. */
  #serve(events: number): void {
    WAKEUPS.inc();
    this.#serving = true;
    try {
      this.#drainReady(events);
    } finally {
      this.#serving = false;
    }
    this.flush();
  }

  #drainReady(events: number): void {
    for (let i = 0; i < events; i++) {
      // epoll_data as registered: the fd in its low half (a BigInt read would allocate per event).
      const fd = this.#eventsView.getUint32(i * EPOLL_EVENT + 4, true);
      if (fd === this.wakeFd) this.libc.read(fd, this.#wakeBuffer, 8n); // reset: the request is counted
      else this.#sockets.get(fd)?.drain();
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
        if (this.wakeFd >= 0) this.libc.close(this.wakeFd);
        this.libc.close(this.epfd);
        this.lib.close();
        resolve();
      }, 400)
    );
  }
}

/** Views of `vector` from each of its first `count` mmsghdrs on. */
function vectorsFrom(vector: Uint8Array, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => vector.subarray(i * MMSG));
}

/** Packet slots, addresses, iovecs and mmsghdrs for one recvmmsg or sendmmsg vector, kept referenced;
 * for receives with GRO or receive times, a control buffer per slot for their cmsgs. */
class Batch {
  readonly slots: Uint8Array;
  readonly names: Uint8Array;
  readonly namesView: DataView;
  readonly iov: Uint8Array;
  readonly iovView: DataView;
  readonly msgs: Uint8Array;
  readonly msgsView: DataView;
  /** The mmsghdrs from each index on (sendmmsg's vector argument), made once. */
  readonly msgsFrom: Uint8Array[];
  readonly control: Uint8Array;
  readonly controlView: DataView;
  /** Receives: the slots the last recvmmsg filled (the kernel wrote their lengths and flags). */
  #filled: number;
  /** Receives: per slot and GRO segment, the view last handed out (see datagram()). */
  readonly #views: Uint8Array[] = [];
  /** Receives with receive times: the kernel's time of the slot last read by readControl(). */
  receivedAt = NaN;

  constructor(readonly count: number, readonly slot: number, readonly controlSpace = 0) {
    this.#filled = count;
    this.slots = new Uint8Array(count * slot);
    this.control = new Uint8Array(Math.max(256, count * controlSpace));
    this.controlView = new DataView(this.control.buffer);
    const control = address(this.control);
    this.names = new Uint8Array(Math.max(256, count * NAME));
    this.namesView = new DataView(this.names.buffer);
    this.iov = new Uint8Array(Math.max(256, count * IOVEC));
    this.iovView = new DataView(this.iov.buffer);
    this.msgs = new Uint8Array(count * MMSG);
    this.msgsView = new DataView(this.msgs.buffer);
    this.msgsFrom = vectorsFrom(this.msgs, count);
    const slots = address(this.slots), names = address(this.names), iov = address(this.iov);
    for (let i = 0; i < count; i++) {
      setU64(this.iovView, i * IOVEC, slots + i * slot);
      setU64(this.iovView, i * IOVEC + IOV_LEN, slot);
      const o = i * MMSG;
      setU64(this.msgsView, o + OFF_NAME, names + i * NAME);
      this.msgsView.setUint32(o + OFF_NAMELEN, NAME, true);
      setU64(this.msgsView, o + OFF_IOV, iov + i * IOVEC);
      setU64(this.msgsView, o + OFF_IOVLEN, 1);
      if (controlSpace > 0) setU64(this.msgsView, o + OFF_CONTROL, control + i * controlSpace);
    }
  }

  /** Receives: bytes `from` to `to` of slot `i`, its GRO segment `segment` (0 without GRO), as a view:
   * the same object as last time when the range is the same (steady media is one size per slot), since
   * handlers read a datagram during the call and copy what they keep (DatagramHandler), and a view per
   * datagram would only be garbage, ~100 bytes a packet. */
  datagram(i: number, segment: number, from: number, to: number): Uint8Array {
    const start = i * this.slot + from;
    // A GRO receive holds at most as many segments as a GSO send (the kernel's UDP_MAX_SEGMENTS).
    if (segment >= GSO_MAX_SEGMENTS) return this.slots.subarray(start, start + to - from);
    const k = i * GSO_MAX_SEGMENTS + segment;
    const last = this.#views[k];
    if (last !== undefined && last.byteOffset === start && last.length === to - from) return last;
    return this.#views[k] = this.slots.subarray(start, start + to - from);
  }

  /** Before a recvmmsg: the address and control lengths of the slots the last one filled back to their
   * full size (the kernel writes the lengths it used). */
  resetForReceive(): void {
    for (let i = 0; i < this.#filled; i++) {
      const o = i * MMSG;
      this.msgsView.setUint32(o + OFF_NAMELEN, NAME, true);
      this.msgsView.setUint32(o + OFF_FLAGS, 0, true);
      // msg_controllen is a size_t; its high half stays 0.
      if (this.controlSpace > 0) this.msgsView.setUint32(o + OFF_CONTROLLEN, this.controlSpace, true);
    }
  }

  /** After a recvmmsg that filled `n` slots (0 when it failed). */
  received(n: number): void {
    this.#filled = n;
  }

  /** After a recvmmsg: slot i's GRO segment size, or 0 when it holds one datagram; with receive times,
   * its kernel receive time into `receivedAt`. Those are the only cmsgs a socket here asks for. */
  readControl(i: number): number {
    if (this.controlSpace === 0) return 0;
    // msg_controllen and cmsg_len (size_t) as written back by the kernel: their low halves are enough, and
    // reading them so allocates no BigInt per datagram.
    const used = this.msgsView.getUint32(i * MMSG + OFF_CONTROLLEN, true);
    const v = this.controlView, c = i * this.controlSpace;
    let gro = 0;
    this.receivedAt = NaN;
    for (let at = 0; at + CMSG_DATA <= used;) {
      const len = v.getUint32(c + at, true);
      if (len < CMSG_DATA || at + len > used) break;
      const level = v.getInt32(c + at + 8, true), type = v.getInt32(c + at + 12, true);
      const data = c + at + CMSG_DATA;
      if (level === SOL_UDP && type === UDP_GRO) gro = v.getInt32(data, true);
      else if (level === SOL_SOCKET && type === SCM_TIMESTAMPNS) this.receivedAt = timespecMs(v, data);
      at += (len + 7) & ~7; // CMSG_ALIGN
    }
    return gro;
  }
}

class FfiSocket implements DatagramSocket {
  #closed = false;

  constructor(
    readonly backend: FfiUdpBackend,
    readonly fd: number,
    readonly family: Family,
    readonly localAddress: PeerAddress,
    readonly onPacket: DatagramHandler,
  ) {}

  /** Reads what is queued, in batches, handing each datagram to the handler (synchronously). */
  drain(): void {
    const rx = this.backend.rx;
    for (let round = 0; round < MAX_BATCHES_PER_WAKEUP && !this.#closed; round++) {
      rx.resetForReceive();
      const n = this.backend.libc.recvmmsg(this.fd, rx.msgs, BATCH, MSG_DONTWAIT, null);
      rx.received(Math.max(0, n));
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const o = i * MMSG;
        const len = rx.msgsView.getUint32(o + OFF_LEN, true);
        const gro = rx.readControl(i);
        const segment = gro > 0 && gro < len ? gro : len;
        if (segment > MAX_DATAGRAM || rx.msgsView.getUint32(o + OFF_FLAGS, true) & MSG_TRUNC) {
          drop.truncated_datagram.inc();
          continue;
        }
        const from = this.backend.peers.read(rx.namesView, i * NAME);
        if (from === undefined) {
          drop.unsupported_family.inc();
          continue;
        }
        if (segment < len) COALESCED.inc(Math.ceil(len / segment));
        // Each segment is a datagram as its sender sent it (GRO keeps the boundaries).
        let at = 0, k = 0;
        do {
          try {
            this.onPacket(rx.datagram(i, k++, at, Math.min(at + segment, len)), from, this);
          } catch (e) {
            drop.handler_error.inc();
            log("error", "packet_handler_error", { local: this.localAddress.text, error: e });
          }
          at += segment;
        } while (at < len);
      }
      if (n < BATCH) return;
    }
  }

  send(data: Uint8Array, to: PeerAddress): void {
    if (!this.#closed) this.backend.enqueue(this.fd, this.family, data, to);
  }

  /** FfiUdpBackend.handOver. */
  handOver(): number {
    this.#release();
    return this.fd;
  }

  close(): void {
    if (this.#closed) return;
    this.#release();
    this.backend.libc.close(this.fd);
  }

  #release(): void {
    if (this.#closed) throw new Error("socket closed");
    this.backend.flush();
    this.#closed = true;
    this.backend.forget(this.fd);
  }
}
