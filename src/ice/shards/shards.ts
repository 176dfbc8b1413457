// Every core on the one public port. Shard 0 is the main thread's media plane (with the TCP ports).
// When it also serves the shared UDP ports (the deno backend, or media_thread: main) this is a thin
// wrapper around it. Otherwise shards 1..N (one by default, `workers` above 1) are workers, each with its
// own FFI backend, its own SO_REUSEPORT socket on every shared UDP port and its own upstream socket, and
// the main thread serves no UDP port: its loop (signalling, HTTP, the TCP ports) waits through Deno's
// reactor, two thread switches per wakeup, where a worker waits on its own thread as a C relay does
// (ffi_udp.ts), so UDP media costs the same per packet on every shard. The kernel spreads client
// addresses over the sockets; every shard holds every spec, and the one that receives a session's first
// authentic check claims it (claims.ts). A packet that lands on another shard is handed to the owner
// through here. The TCP ports stay on the main thread: when it serves no UDP port, it claims a session
// whose first check comes over ICE-TCP for a worker and relays that connection's frames to it (the
// session then takes its UDP path, if it has one, on that worker).
import type { DatagramBackend, IoBackendName } from "../../io/types.ts";
import { mustPeer, type PeerAddress } from "../../io/address.ts";
import { type TurnChannel, TurnRequester } from "../../io/turns.ts";
import { forEachFrame, FrameOutbox } from "./frame_batch.ts";
import type { FrameSink, TcpRelay } from "../demux/ice_tcp.ts";
import type { ClaimBoard } from "./claims.ts";
import { MediaPlane, type PlaneStats } from "./media_plane.ts";
import type { SessionEnded, SessionSpec, SpecSink, SpecUpdate } from "../negotiation/spec.ts";
import type { LiveState, SessionView } from "../session/media_session.ts";
import { connectJanusIceTcp } from "../session/janus_tcp.ts";
import { type EndReason, registry } from "../../telemetry/catalog.ts";
import type { MetricSnapshot } from "../../telemetry/metrics.ts";
import { log } from "../../telemetry/log.ts";

export interface UdpPortSpec {
  name: string;
  host: string;
  port: number;
}

/** What a shard reports when asked: its tables, its metrics, and (when asked) its sessions. */
export interface ShardReport {
  stats: PlaneStats;
  metrics: MetricSnapshot[];
  sessions?: SessionView[];
}

/** Messages from the main thread to a shard worker. */
export type ToShard =
  | {
    t: "init";
    shard: number;
    ioBackend: IoBackendName;
    /** The main thread's backend's GSO and GRO settings. */
    gso: boolean;
    gro: boolean;
    udpPorts: UdpPortSpec[];
    consentTimeoutMs: number;
    janusKeepaliveMs: number;
    claims: SharedArrayBuffer;
    upstreamPort: number;
    reuseUpstream: boolean;
  }
  | { t: "open"; spec: SessionSpec }
  | { t: "restore"; spec: SessionSpec; live: LiveState }
  | { t: "update"; id: string; update: SpecUpdate }
  | { t: "end"; id: string; reason: EndReason }
  | { t: "inject"; port: string; data: Uint8Array; host: string; portNumber: number }
  | { t: "report"; id: number; sessions: boolean }
  | { t: "tcpOpen"; conn: number; host: string; portNumber: number; port: string }
  /** Frames of relayed ICE-TCP connections (frame_batch.ts). */
  | { t: "tcpFrames"; frames: Uint8Array }
  | { t: "tcpClosed"; conn: number }
  | { t: "addPort"; port: UdpPortSpec }
  | { t: "removePort"; name: string }
  | { t: "stop" };

/** Messages from a shard worker to the main thread. */
export type FromShard =
  | { t: "ready"; turns: TurnChannel }
  | { t: "failed"; error: string }
  | { t: "ended"; id: string; reason: EndReason }
  | { t: "live"; id: string; state: LiveState }
  | { t: "upstream"; port: number }
  | { t: "handoff"; shard: number; port: string; data: Uint8Array; host: string; portNumber: number }
  | { t: "report"; id: number; report: ShardReport }
  /** Frames for relayed ICE-TCP connections to send (frame_batch.ts). */
  | { t: "tcpSend"; frames: Uint8Array }
  | { t: "tcpClose"; conn: number; reason: string }
  | { t: "stopped" };

/** A worker that has not said it is ready (or failed) within this long has failed. */
const WORKER_START_TIMEOUT_MS = 15_000;
/** A worker gets this long to close its sockets on shutdown before it is terminated. */
const WORKER_STOP_TIMEOUT_MS = 3_000;
/** A worker that does not answer a report request within this long is shown as down. */
const REPORT_TIMEOUT_MS = 2_000;

export interface ShardSetOptions {
  /** The main thread's backend (shard 0). */
  backend: DatagramBackend;
  /** Shards on the shared UDP ports: 1 is the main thread (or one worker, with mediaOnWorkers); N > 1
   * are N workers. */
  shards: number;
  /** A single shard is a worker thread too (options.media_thread: worker), not the main thread. */
  mediaOnWorkers?: boolean;
  udpPorts: UdpPortSpec[];
  consentTimeoutMs: number;
  janusKeepaliveMs: number;
  claims: ClaimBoard;
  onEnded: SessionEnded;
  /** Share the public ports with a process taking over (SO_REUSEPORT), besides between shards. */
  reusePorts?: boolean;
  /** A worker died after starting (a bug): main.ts exits so that a supervisor restarts xRTC. */
  onShardFailed?: (shard: number, error: string) => void;
  /** Each shard's IPv4 upstream port (kept across restarts), shared with a process taking over. */
  upstreamPorts?: number[];
  reuseUpstream?: boolean;
  /** A live session's resumable state changed, on any shard. */
  onLiveState?: (id: string, state: LiveState) => void;
}

/** A shard's last report, and whether it answered the last request. */
export interface ShardState {
  shard: number;
  up: boolean;
  report: ShardReport;
}

export function localReport(plane: MediaPlane, sessions: boolean): ShardReport {
  return {
    stats: plane.stats(),
    metrics: registry.snapshot(),
    sessions: sessions ? plane.views() : undefined,
  };
}

/** The shard that resumes a recorded session: the one that owned it, or, when this process has no such
 * shard or it serves none of the session's ports (`workers` changed across the restart), one that does:
 * shard 1 for a session on the UDP ports when workers serve them, else the main thread's. */
export function restoredOwner(
  live: LiveState,
  now: { shards: number; mainServesUdp: boolean; udpPorts: string[] },
): number {
  const onUdp = live.paths.some((p) => now.udpPorts.includes(p.port));
  if (onUdp && !now.mainServesUdp && (live.shard === 0 || live.shard >= now.shards)) return 1;
  return live.shard < now.shards ? live.shard : 0;
}

export class ShardSet implements SpecSink, TcpRelay {
  readonly local: MediaPlane;
  readonly #workers: Worker[] = [];
  /** Each worker's turns (turns.ts): asked for after every message posted to it. */
  readonly #turns = new Map<Worker, TurnRequester>();
  readonly #waiting = new Map<number, (r: ShardReport) => void>();
  /** Each worker's last report: a shard that stops answering keeps its last counters in the sums. */
  readonly #last = new Map<number, ShardReport>();
  /** ICE-TCP connections relayed to a worker, by connection id: where that worker's writes go. */
  readonly #relayed = new Map<number, FrameSink>();
  /** Frames of relayed connections read in this task, per worker, sent in one message at its end. */
  readonly #tcpFrames = new Map<Worker, FrameOutbox>();
  #nextId = 1;

  /** Whether the main thread serves the shared UDP ports (only when it is the one shard, by default). */
  readonly mainServesUdp: boolean;

  private constructor(readonly opts: ShardSetOptions) {
    this.mainServesUdp = opts.shards <= 1 && !opts.mediaOnWorkers;
    const workers = opts.shards;
    this.local = new MediaPlane({
      backend: opts.backend,
      shard: 0,
      claims: opts.claims,
      consentTimeoutMs: opts.consentTimeoutMs,
      janusKeepaliveMs: opts.janusKeepaliveMs,
      reusePort: opts.shards > 1 || (opts.reusePorts ?? false),
      onEnded: opts.onEnded,
      handoff: (shard, port, data, from) => this.#handoff(shard, port, data, from.host, from.port),
      connectIceTcp: connectJanusIceTcp,
      upstreamPort: opts.upstreamPorts?.[0],
      reuseUpstream: opts.reuseUpstream,
      onLiveState: opts.onLiveState,
      // Sessions first checked over ICE-TCP spread over the workers by their claim slot.
      claimFor: this.mainServesUdp ? undefined : (t) => 1 + t.slot % workers,
      tcpRelay: this.mainServesUdp ? undefined : this,
    });
    this.upstreamPorts[0] = this.local.upstream.localAddress.port;
  }

  /** Each shard's IPv4 upstream port, once it has bound it. */
  readonly upstreamPorts: number[] = [];

  static async start(opts: ShardSetOptions): Promise<ShardSet> {
    const set = new ShardSet(opts);
    try {
      if (set.mainServesUdp) {
        for (const p of opts.udpPorts) set.local.addUdpPort(p.name, p.host, p.port);
      } else {
        for (let shard = 1; shard <= opts.shards; shard++) await set.#startWorker(shard);
      }
    } catch (e) {
      await set.stop();
      throw e;
    }
    return set;
  }

  /** Shards in all, the main thread's included. */
  get count(): number {
    return this.#workers.length + 1;
  }

  async #startWorker(shard: number): Promise<void> {
    const w = new Worker(new URL("./shard_worker.ts", import.meta.url).href, { type: "module" });
    this.#workers.push(w);
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`shard ${shard} did not start within ${WORKER_START_TIMEOUT_MS} ms`)),
        WORKER_START_TIMEOUT_MS,
      );
      w.onmessage = (ev: MessageEvent<FromShard>) => {
        const m = ev.data;
        if (m.t === "ready" || m.t === "failed") {
          clearTimeout(timer);
          if (m.t === "ready") {
            this.#turns.set(w, new TurnRequester(m.turns, (fd) => this.opts.backend.wake?.(fd)));
            resolve();
          } else reject(new Error(`shard ${shard}: ${m.error}`));
          w.onmessage = (ev: MessageEvent<FromShard>) => this.#fromWorker(shard, ev.data);
        } else this.#fromWorker(shard, m); // its upstream port comes before "ready"
      };
      w.onerror = (ev) => {
        ev.preventDefault();
        clearTimeout(timer);
        log("error", "shard_failed", { shard, error: ev.message });
        reject(new Error(`shard ${shard}: ${ev.message}`));
        // A dead worker's socket stays in the port's SO_REUSEPORT group (its descriptors belong to the
        // process), so the kernel would keep sending it clients: the process must not carry on as is.
        this.opts.onShardFailed?.(shard, ev.message);
      };
    });
    this.#post(w, {
      t: "init",
      shard,
      ioBackend: this.opts.backend.name,
      gso: this.opts.backend.gso ?? false,
      gro: this.opts.backend.gro ?? false,
      udpPorts: this.opts.udpPorts,
      consentTimeoutMs: this.opts.consentTimeoutMs,
      janusKeepaliveMs: this.opts.janusKeepaliveMs,
      claims: this.opts.claims.buffer,
      upstreamPort: this.opts.upstreamPorts?.[shard] ?? 0,
      reuseUpstream: this.opts.reuseUpstream ?? false,
    });
    await ready;
  }

  #fromWorker(shard: number, m: FromShard): void {
    switch (m.t) {
      case "ended":
        return this.opts.onEnded(m.id, m.reason);
      case "live":
        return this.opts.onLiveState?.(m.id, m.state);
      case "upstream":
        this.upstreamPorts[shard] = m.port;
        return;
      case "handoff":
        return this.#handoff(m.shard, m.port, m.data, m.host, m.portNumber);
      case "tcpSend":
        return forEachFrame(m.frames, (conn, frame) => this.#relayed.get(conn)?.sendFrame(frame));
      case "tcpClose": {
        const sink = this.#relayed.get(m.conn);
        this.#relayed.delete(m.conn);
        return sink?.close(m.reason);
      }
      case "report":
        this.#last.set(shard, m.report);
        this.#waiting.get(m.id)?.(m.report);
        this.#waiting.delete(m.id);
        return;
      default:
        log("warn", "shard_unexpected_message", { shard, type: m.t });
    }
  }

  #handoff(shard: number, port: string, data: Uint8Array, host: string, portNumber: number): void {
    if (shard === 0) return this.local.inject(port, data, mustPeer(host, portNumber));
    const w = this.#workers[shard - 1];
    if (!w) return;
    // The receive buffers are reused: the packet is copied once, then moved.
    const copy = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    this.#post(w, { t: "inject", port, data: copy, host, portNumber }, [copy.buffer as ArrayBuffer]);
  }

  // ---- TcpRelay: ICE-TCP connections of the main thread whose sessions live on a worker ----

  relayOpen(shard: number, connection: number, peer: PeerAddress, port: string, sink: FrameSink): void {
    const w = this.#workers[shard - 1];
    if (!w) return sink.close("no such shard");
    this.#relayed.set(connection, sink);
    this.#post(w, { t: "tcpOpen", conn: connection, host: peer.host, portNumber: peer.port, port });
  }

  relayFrame(shard: number, connection: number, frame: Uint8Array): void {
    const w = this.#workers[shard - 1];
    if (!w || !this.#relayed.has(connection)) return;
    // The frames of this read go in one message, once the read is handled (the outbox copies the frame,
    // a view of the connection's read buffer).
    let outbox = this.#tcpFrames.get(w);
    if (!outbox) {
      outbox = new FrameOutbox(
        (frames) => this.#postNow(w, { t: "tcpFrames", frames }, [frames.buffer]),
        queueMicrotask,
      );
      this.#tcpFrames.set(w, outbox);
    }
    outbox.add(connection, frame);
  }

  relayClosed(shard: number, connection: number): void {
    this.#relayed.delete(connection);
    const w = this.#workers[shard - 1];
    if (w) this.#post(w, { t: "tcpClosed", conn: connection });
  }

  /** Posts `m` to a worker after the ICE-TCP frames gathered for it, so that its messages keep their order. */
  #post(w: Worker, m: ToShard, transfer: Transferable[] = []): void {
    this.#tcpFrames.get(w)?.flush();
    this.#postNow(w, m, transfer);
  }

  #postNow(w: Worker, m: ToShard, transfer: Transferable[] = []): void {
    w.postMessage(m, transfer);
    this.#turns.get(w)?.request();
  }

  // ---- SpecSink: every shard holds every spec ----

  open(spec: SessionSpec): void {
    // The local plane gets its own copy, as the workers do: signalling keeps and changes its own.
    this.local.open(structuredClone(spec));
    for (const w of this.#workers) this.#post(w, { t: "open", spec });
  }

  /** A reload added a `proto: udp` service: every shard binds it. */
  addUdpPort(p: UdpPortSpec): void {
    if (this.mainServesUdp) this.local.addUdpPort(p.name, p.host, p.port);
    for (const w of this.#workers) this.#post(w, { t: "addPort", port: p });
    this.opts.udpPorts.push(p);
  }

  removeUdpPort(name: string): void {
    this.local.removeUdpPort(name);
    for (const w of this.#workers) this.#post(w, { t: "removePort", name });
    this.opts.udpPorts = this.opts.udpPorts.filter((p) => p.name !== name);
  }

  restore(spec: SessionSpec, live: LiveState): void {
    // The shard that owned it resumes it (its upstream port is the one Janus knows); the others hold a
    // dormant copy and hand it the session's packets.
    const owner = restoredOwner(live, {
      shards: this.count,
      mainServesUdp: this.mainServesUdp,
      udpPorts: this.opts.udpPorts.map((p) => p.name),
    });
    if (owner === 0) this.local.restore(structuredClone(spec), structuredClone({ ...live, shard: 0 }));
    else this.local.open(structuredClone(spec));
    this.#workers.forEach((w, i) => {
      if (i + 1 === owner) this.#post(w, { t: "restore", spec, live });
      else this.#post(w, { t: "open", spec });
    });
  }

  update(id: string, update: SpecUpdate): void {
    this.local.update(id, structuredClone(update));
    for (const w of this.#workers) this.#post(w, { t: "update", id, update });
  }

  end(id: string, reason: EndReason): void {
    this.local.end(id, reason);
    for (const w of this.#workers) this.#post(w, { t: "end", id, reason });
  }

  /** Every shard's report (shard 0's metrics are the main thread's). A worker that does not answer in
   * time is `up: false` with its last report. */
  async reports(sessions = false): Promise<ShardState[]> {
    const local: ShardState = { shard: 0, up: true, report: localReport(this.local, sessions) };
    const remote = this.#workers.map((w, i) =>
      new Promise<ShardState>((resolve) => {
        const shard = i + 1;
        const id = this.#nextId++;
        const timer = setTimeout(() => {
          this.#waiting.delete(id);
          resolve({
            shard,
            up: false,
            report: this.#last.get(shard) ??
              { stats: { shard, sessions: 0, specs: 0, boundTuples: 0, upstreamRoutes: 0 }, metrics: [] },
          });
        }, REPORT_TIMEOUT_MS);
        this.#waiting.set(id, (report) => {
          clearTimeout(timer);
          resolve({ shard, up: true, report });
        });
        this.#post(w, { t: "report", id, sessions });
      })
    );
    return [local, ...(await Promise.all(remote))];
  }

  async stop(): Promise<void> {
    await Promise.all(this.#workers.map((w) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, WORKER_STOP_TIMEOUT_MS);
        w.onmessage = (ev: MessageEvent<FromShard>) => {
          if (ev.data.t === "stopped") {
            clearTimeout(timer);
            resolve();
          }
        };
        this.#post(w, { t: "stop" });
        // The worker closes its wake eventfd as it stops; a later write could reach whatever reuses the
        // descriptor's number. Its later messages need no turn: it serves none after "stop".
        this.#turns.delete(w);
      }).then(() => w.terminate())
    ));
    this.#workers.length = 0;
    this.local.shutdown();
  }
}
