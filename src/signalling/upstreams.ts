// Every Janus backend pool of the process: one per upstream service (shared by every listener and route
// that names it), and one per route that names a URL directly. A reload reconciles them: pools and
// backends that stay keep their state and live sessions.
import type { Config, HealthConfig, RouteConfig } from "../config/types.ts";
import { BackendPool, type BackendState } from "./backends.ts";

/** Health checks of a route that names a Janus URL directly (no upstream service to configure them). */
const URL_ROUTE_HEALTH: HealthConfig = { intervalMs: 5_000, timeoutMs: 2_000, fall: 2, rise: 1 };

export class Upstreams {
  readonly #pools = new Map<string, BackendPool>();
  readonly #urlPools = new Map<string, BackendPool>();
  #probing = false;

  constructor(
    config: Config,
    readonly client: Deno.HttpClient,
    readonly onBackendChange: (b: BackendState) => void,
  ) {
    this.reconcile(config);
  }

  /** The pool a route sends to. */
  poolOf(route: Pick<RouteConfig, "upstreamService" | "upstreamUrl">): BackendPool {
    if (route.upstreamService !== undefined) return this.#pools.get(route.upstreamService)!;
    return this.#urlPool(route.upstreamUrl!);
  }

  #urlPool(url: string): BackendPool {
    let p = this.#urlPools.get(url);
    if (!p) {
      this.#urlPools.set(url, p = BackendPool.fromUrl(url, URL_ROUTE_HEALTH));
      p.onChange = this.onBackendChange;
      if (this.#probing) p.startProbes(this.client);
    }
    return p;
  }

  /** A backend by its pool's name and its own (restoring a session recorded before a restart). */
  find(pool: string, backend: string): BackendState | undefined {
    return (this.#pools.get(pool) ?? this.#urlPools.get(pool))?.find(backend);
  }

  all(): BackendPool[] {
    return [...this.#pools.values(), ...this.#urlPools.values()];
  }

  /** True when at least one backend of any pool answers its probes. */
  get anyUp(): boolean {
    return this.all().some((p) => p.anyUp);
  }

  reconcile(config: Config): void {
    for (const u of config.upstreams.values()) {
      const p = this.#pools.get(u.name);
      if (p) p.update(u.backends, u.mode, u.health);
      else {
        const fresh = BackendPool.fromService(u);
        fresh.onChange = this.onBackendChange;
        this.#pools.set(u.name, fresh);
        if (this.#probing) fresh.startProbes(this.client);
      }
    }
    for (const [name, p] of this.#pools) {
      if (!config.upstreams.has(name)) {
        p.stop();
        this.#pools.delete(name);
      }
    }
    const urls = new Set(
      config.listeners.flatMap((l) => [...l.http.routes, ...l.http.whip]).map((r) => r.upstreamUrl).filter((
        u,
      ): u is string => !!u),
    );
    for (const [url, p] of this.#urlPools) {
      if (!urls.has(url)) {
        p.stop();
        this.#urlPools.delete(url);
      }
    }
    // Every configured URL has its pool from the start: probed before its first request, and there for
    // a restart to find the sessions recorded on it.
    for (const url of urls) this.#urlPool(url);
  }

  startProbes(): void {
    this.#probing = true;
    for (const p of this.all()) p.startProbes(this.client);
  }

  stop(): void {
    for (const p of this.all()) p.stop();
  }
}
