// The Janus backends of one upstream service, shared by every listener and route that names it: each
// backend is one Janus (its HTTP API and its WebSocket API together), probed with GET /janus/info. A
// backend that fails `fall` probes in a row leaves rotation for new sessions; `rise` good probes bring
// it back. New sessions are placed rr, random, or on the backend with the fewest live sessions.
import type { Backend, HealthConfig, Placement, UpstreamService } from "../config/types.ts";
import { backendProbeSeconds, backendUp, upstreamRequests } from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

export class BackendState {
  up = true;
  /** Probes have answered at least once (readiness needs a backend that is known to answer). */
  answered = false;
  #fails = 0;
  #goods = 0;
  sessions = 0;
  lastProbeMs = 0;
  lastError?: string;
  constructor(readonly pool: BackendPool, readonly backend: Backend) {}

  get name(): string {
    return this.backend.name;
  }

  probeResult(ok: boolean, ms: number, error?: string): void {
    this.lastProbeMs = ms;
    this.lastError = ok ? undefined : error;
    if (ok) {
      this.answered = true;
      this.#fails = 0;
      if (!this.up && ++this.#goods >= this.pool.health.rise) this.#set(true);
    } else {
      this.#goods = 0;
      if (this.up && ++this.#fails >= this.pool.health.fall) this.#set(false);
    }
  }

  #set(up: boolean): void {
    this.up = up;
    log(up ? "info" : "warn", up ? "backend_up" : "backend_down", {
      upstream: this.pool.name,
      backend: this.name,
      error: this.lastError,
    });
    this.pool.onChange?.(this);
  }
}

export class BackendPool {
  backends: BackendState[];
  mode: Placement;
  health: HealthConfig;
  #next = 0;
  #client?: Deno.HttpClient;
  #timer?: ReturnType<typeof setInterval>;
  /** A backend went up or down (signalling releases the sessions of a dead one). */
  onChange?: (b: BackendState) => void;

  constructor(readonly name: string, backends: Backend[], mode: Placement, health: HealthConfig) {
    this.backends = backends.map((b) => new BackendState(this, b));
    this.mode = mode;
    this.health = health;
    POOLS.add(this);
  }

  /** A reload: the same backend (name and URLs) keeps its state, health and live sessions; a removed
   * one leaves rotation (its live sessions go on until they end). */
  update(backends: Backend[], mode: Placement, health: HealthConfig): void {
    const same = (s: BackendState, b: Backend) =>
      s.backend.name === b.name && s.backend.httpUrl === b.httpUrl && s.backend.wsUrl === b.wsUrl;
    this.backends = backends.map((b) => this.backends.find((s) => same(s, b)) ?? new BackendState(this, b));
    this.mode = mode;
    const restartProbes = health.intervalMs !== this.health.intervalMs && this.#timer !== undefined;
    this.health = health;
    if (restartProbes) {
      clearInterval(this.#timer);
      this.startProbes(this.#client);
    }
  }

  static fromService(u: UpstreamService): BackendPool {
    return new BackendPool(u.name, u.backends, u.mode, u.health);
  }

  /** A route with a literal URL: one backend, its other API at the same URL with the other scheme. */
  static fromUrl(url: string, health: HealthConfig): BackendPool {
    const isWs = url.startsWith("ws");
    const http = isWs ? url.replace(/^ws/, "http") : url;
    const ws = isWs ? url : url.replace(/^http/, "ws");
    return new BackendPool(url, [{ name: new URL(http).host, httpUrl: http, wsUrl: ws }], "rr", health);
  }

  find(name: string): BackendState | undefined {
    return this.backends.find((b) => b.name === name);
  }

  /** Backends to try for a new Janus session, in order: those in rotation by the placement rule, then
   * (when none is) every backend, since a probe can be wrong. */
  candidates(): BackendState[] {
    const healthy = this.backends.filter((b) => b.up);
    const list = healthy.length ? healthy : this.backends;
    if (list.length <= 1) return list;
    if (this.mode === "least_sessions") return [...list].sort((a, b) => a.sessions - b.sessions);
    const start = this.mode === "random"
      ? Math.floor(Math.random() * list.length)
      : this.#next++ % list.length;
    return [...list.slice(start), ...list.slice(0, start)];
  }

  get anyUp(): boolean {
    return this.backends.some((b) => b.up && b.answered);
  }

  /** Probes every backend now and then every interval. */
  startProbes(client?: Deno.HttpClient): void {
    this.#client = client;
    const probe = () => {
      for (const b of this.backends) void this.#probe(b, client);
    };
    probe();
    this.#timer = setInterval(probe, this.health.intervalMs);
  }

  async #probe(b: BackendState, client?: Deno.HttpClient): Promise<void> {
    const started = performance.now();
    try {
      const r = await fetch(`${b.backend.httpUrl}/janus/info`, {
        signal: AbortSignal.timeout(this.health.timeoutMs),
        client,
      });
      const body = await r.json().catch(() => undefined) as { janus?: string } | undefined;
      const ok = r.ok && body?.janus === "server_info";
      upstreamRequests.inc({ backend: b.name, outcome: ok ? "probe_ok" : "probe_failed" });
      b.probeResult(ok, performance.now() - started, ok ? undefined : `HTTP ${r.status}`);
    } catch (e) {
      upstreamRequests.inc({ backend: b.name, outcome: "probe_failed" });
      b.probeResult(false, performance.now() - started, e instanceof Error ? e.message : String(e));
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    POOLS.delete(this);
  }
}

/** Every pool of this process, for the backend metrics. */
const POOLS = new Set<BackendPool>();
backendUp.collectWith((set) => {
  for (const p of POOLS) for (const b of p.backends) set({ upstream: p.name, backend: b.name }, b.up ? 1 : 0);
});
backendProbeSeconds.collectWith((set) => {
  for (const p of POOLS) {
    for (const b of p.backends) set({ upstream: p.name, backend: b.name }, b.lastProbeMs / 1000);
  }
});
