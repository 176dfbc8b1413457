// Every core on the one public port. Shard 0 is the main thread's media plane (with the TCP ports);
// shards 1..N-1 are workers, each with its own FFI backend, its own SO_REUSEPORT socket on every shared
// UDP port and its own upstream socket. The kernel spreads client tuples over the sockets; every shard
// holds every spec, and the one that receives a session's first authentic check claims it (claims.ts).
// A packet that lands on another shard is handed to the owner through here. With one shard this is a
// thin wrapper around the main thread's plane.
import type { IoBackend } from "../config/types.ts";
import type { DatagramBackend } from "../io/types.ts";
import type { ClaimBoard } from "./claims.ts";
import { MediaPlane } from "./media_plane.ts";
import type { SessionEnded, SessionSpec, SpecSink, SpecUpdate } from "./spec.ts";
import { connectJanusIceTcp } from "./janus_tcp.ts";
import { counters } from "../metrics.ts";
import { log } from "../log.ts";

export interface UdpPortSpec {
  name: string;
  host: string;
  port: number;
}

export interface ShardStats {
  shard: number;
  /** Live sessions this shard owns. */
  sessions: number;
  /** Negotiated sessions it knows, claimed or not. */
  specs: number;
  /** Client tuples bound on its sockets. */
  boundTuples: number;
  counters: Record<string, number>;
}

/** Messages from the main thread to a shard worker. */
export type ToShard =
  | {
    t: "init";
    shard: number;
    ioBackend: IoBackend;
    udpPorts: UdpPortSpec[];
    consentTimeoutMs: number;
    claims: SharedArrayBuffer;
  }
  | { t: "open"; spec: SessionSpec }
  | { t: "update"; ufrag: string; update: SpecUpdate }
  | { t: "end"; ufrag: string; reason: string }
  | { t: "inject"; port: string; data: Uint8Array; host: string; portNumber: number }
  | { t: "stats"; id: number }
  | { t: "stop" };

/** Messages from a shard worker to the main thread. */
export type FromShard =
  | { t: "ready" }
  | { t: "failed"; error: string }
  | { t: "ended"; ufrag: string; reason: string }
  | { t: "handoff"; shard: number; port: string; data: Uint8Array; host: string; portNumber: number }
  | { t: "stats"; id: number; stats: ShardStats }
  | { t: "stopped" };

/** A worker that has not said it is ready (or failed) within this long has failed. */
const WORKER_START_TIMEOUT_MS = 15_000;
/** A worker gets this long to close its sockets on shutdown before it is terminated. */
const WORKER_STOP_TIMEOUT_MS = 3_000;

export interface ShardSetOptions {
  /** The main thread's backend (shard 0). */
  backend: DatagramBackend;
  ioBackend: IoBackend;
  /** Shards in all, main thread included. */
  shards: number;
  udpPorts: UdpPortSpec[];
  consentTimeoutMs: number;
  claims: ClaimBoard;
  onEnded: SessionEnded;
  /** A worker died after starting (a bug): main.ts exits so that a supervisor restarts xRTC. */
  onShardFailed?: (shard: number, error: string) => void;
}

export function planeStats(plane: MediaPlane, snapshot: Record<string, number>): ShardStats {
  return {
    shard: plane.shard,
    sessions: plane.table.size,
    specs: plane.specCount,
    boundTuples: plane.ports.reduce((n, p) => n + p.boundCount, 0),
    counters: snapshot,
  };
}

export class ShardSet implements SpecSink {
  readonly local: MediaPlane;
  readonly #workers: Worker[] = [];
  readonly #statsWaiting = new Map<number, (s: ShardStats) => void>();
  #nextStatsId = 1;

  private constructor(readonly opts: ShardSetOptions) {
    this.local = new MediaPlane({
      backend: opts.backend,
      shard: 0,
      claims: opts.claims,
      consentTimeoutMs: opts.consentTimeoutMs,
      reusePort: opts.shards > 1,
      onEnded: opts.onEnded,
      handoff: (shard, port, data, from) => this.#handoff(shard, port, data, from.host, from.port),
      connectIceTcp: connectJanusIceTcp,
    });
  }

  static async start(opts: ShardSetOptions): Promise<ShardSet> {
    const set = new ShardSet(opts);
    try {
      for (const p of opts.udpPorts) set.local.addUdpPort(p.name, p.host, p.port);
      for (let shard = 1; shard < opts.shards; shard++) await set.#startWorker(shard);
    } catch (e) {
      await set.stop();
      throw e;
    }
    return set;
  }

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
          if (m.t === "ready") resolve();
          else reject(new Error(`shard ${shard}: ${m.error}`));
          w.onmessage = (ev: MessageEvent<FromShard>) => this.#fromWorker(shard, ev.data);
        }
      };
      w.onerror = (ev) => {
        ev.preventDefault();
        clearTimeout(timer);
        counters.inc("shard_errors");
        log("error", "shard_failed", { shard, error: ev.message });
        reject(new Error(`shard ${shard}: ${ev.message}`));
        // A dead worker's socket stays in the port's SO_REUSEPORT group (its descriptors belong to the
        // process), so the kernel would keep sending it clients: the process must not carry on as is.
        this.opts.onShardFailed?.(shard, ev.message);
      };
    });
    const init: ToShard = {
      t: "init",
      shard,
      ioBackend: this.opts.ioBackend,
      udpPorts: this.opts.udpPorts,
      consentTimeoutMs: this.opts.consentTimeoutMs,
      claims: this.opts.claims.buffer,
    };
    w.postMessage(init);
    await ready;
  }

  #fromWorker(shard: number, m: FromShard): void {
    switch (m.t) {
      case "ended":
        return this.opts.onEnded(m.ufrag, m.reason);
      case "handoff":
        return this.#handoff(m.shard, m.port, m.data, m.host, m.portNumber);
      case "stats":
        this.#statsWaiting.get(m.id)?.(m.stats);
        this.#statsWaiting.delete(m.id);
        return;
      default:
        log("warn", "shard_unexpected_message", { shard, type: m.t });
    }
  }

  #handoff(shard: number, port: string, data: Uint8Array, host: string, portNumber: number): void {
    if (shard === 0) return this.local.inject(port, data, host, portNumber);
    const w = this.#workers[shard - 1];
    if (!w) return;
    // The receive buffers are reused: the packet is copied once, then moved.
    const copy = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    this.#post(w, { t: "inject", port, data: copy, host, portNumber }, [copy.buffer as ArrayBuffer]);
  }

  #post(w: Worker, m: ToShard, transfer: Transferable[] = []): void {
    w.postMessage(m, transfer);
  }

  // ---- SpecSink: every shard holds every spec ----

  open(spec: SessionSpec): void {
    // The local plane gets its own copy, as the workers do: signalling keeps and changes its own.
    this.local.open(structuredClone(spec));
    for (const w of this.#workers) this.#post(w, { t: "open", spec });
  }

  update(ufrag: string, update: SpecUpdate): void {
    this.local.update(ufrag, structuredClone(update));
    for (const w of this.#workers) this.#post(w, { t: "update", ufrag, update });
  }

  end(ufrag: string, reason: string): void {
    this.local.end(ufrag, reason);
    for (const w of this.#workers) this.#post(w, { t: "end", ufrag, reason });
  }

  /** Each shard's live sessions and counters (the main thread's counters are shard 0's). */
  async stats(): Promise<ShardStats[]> {
    const local = planeStats(this.local, counters.snapshot());
    const remote = this.#workers.map((w) =>
      new Promise<ShardStats | undefined>((resolve) => {
        const id = this.#nextStatsId++;
        const timer = setTimeout(() => {
          this.#statsWaiting.delete(id);
          resolve(undefined);
        }, 2_000);
        this.#statsWaiting.set(id, (s) => {
          clearTimeout(timer);
          resolve(s);
        });
        this.#post(w, { t: "stats", id });
      })
    );
    return [local, ...(await Promise.all(remote)).filter((s): s is ShardStats => s !== undefined)];
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
      }).then(() => w.terminate())
    ));
    this.#workers.length = 0;
    this.local.shutdown();
  }
}
