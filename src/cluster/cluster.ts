// The cluster's session directory on Redis. Each node writes an entry per Janus session it holds
// (session -> node, with a TTL it refreshes) and one for itself (node -> signalling URL, refreshed every
// third of the node TTL), and asks Redis where the sessions it does not hold live. Entries are written
// on the registry's changes, which follow Janus's replies. When Redis is unreachable the node goes on
// serving its own sessions and every session it has located before (a bounded cache); a request for
// any other session is answered "retry" (503), and the entries are written again when Redis returns.
import type { ClusterConfig } from "../config/types.ts";
import { RedisClient, RedisUnavailable } from "../io/redis.ts";
import type { RespValue } from "../io/resp.ts";
import type { Owner, SessionDirectory } from "../signalling/directory.ts";
import type { RegistryChange } from "../signalling/sessions.ts";

/** What the directory needs of a session this node holds: its id, and its WHIP resource if it is one. */
export interface HeldSession {
  id: string;
  whipResource?: { resource: string };
}
import {
  clusterDirectoryWrites,
  clusterLookups,
  clusterNodes,
  clusterRedisUp,
  type LookupResult,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";

/** Sessions located on other nodes, remembered for the node TTL (and while Redis is down). */
const MAX_CACHED = 50_000;
/** Sessions refreshed per pipeline. */
const REFRESH_BATCH = 1_000;
/** A session's entry outlives its node's by this factor: a restarting node restores its sessions. */
const SESSION_TTL_FACTOR = 3;

/** Deletes a session's entry only if this node still holds it (another may have taken it over). */
const DELETE_IF_MINE =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

interface Cached {
  node: string;
  url: string;
  at: number;
}

export interface ClusterStatus {
  node: string;
  redis: "up" | "down";
  nodes: string[];
}

export class ClusterDirectory implements SessionDirectory {
  readonly redis: RedisClient;
  readonly #cache = new Map<string, Cached>();
  readonly #writes = new Map<string, Promise<void>>();
  #nodes: string[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #stopped = false;

  constructor(readonly config: ClusterConfig, readonly localSessions: () => Iterable<HeldSession>) {
    this.redis = new RedisClient({
      url: config.redisUrl,
      connectTimeoutMs: config.redisTimeoutMs,
      commandTimeoutMs: config.redisTimeoutMs,
      onState: (up, reason) => {
        clusterRedisUp.set({}, up ? 1 : 0);
        const where = `${this.redis.target.hostname}:${this.redis.target.port}`;
        if (up) {
          log("info", "cluster_redis_up", { node: this.node, redis: where });
          // Everything this node holds is written again: entries may have expired meanwhile.
          void this.#heartbeat().then(() => this.#refreshSessions());
        } else {
          log("warn", "cluster_redis_down", {
            node: this.node,
            redis: where,
            reason,
            degraded: "sessions of other nodes not located before cannot be reached through this node",
          });
        }
      },
    });
    clusterRedisUp.set({}, 0);
    clusterNodes.collectWith((set) => set({}, this.#nodes.length));
  }

  get node(): string {
    return this.config.node;
  }

  #key(kind: "session" | "whip" | "node" | "nodes", id = ""): string {
    return `${this.config.keyPrefix}:${kind}${id ? `:${id}` : ""}`;
  }

  start(): void {
    void this.redis.start();
    const ttl = this.config.nodeTtlMs;
    this.#timers = [
      setInterval(() => void this.#heartbeat(), Math.max(300, Math.floor(ttl / 3))),
      setInterval(() => void this.#refreshSessions(), ttl),
    ];
  }

  /** This node's entry, and the list of live nodes. */
  async #heartbeat(): Promise<void> {
    if (this.#stopped || !this.redis.up) return;
    const now = Date.now();
    const ttl = this.config.nodeTtlMs;
    try {
      const replies = await this.redis.pipeline([
        ["SET", this.#key("node", this.node), this.config.peerUrl, "PX", String(ttl)],
        ["ZADD", this.#key("nodes"), String(now), this.node],
        ["ZREMRANGEBYSCORE", this.#key("nodes"), "-inf", String(now - ttl)],
        ["ZRANGE", this.#key("nodes"), "0", "-1"],
      ]);
      const list = replies[3];
      if (Array.isArray(list)) {
        this.#nodes = list.filter((n): n is string => typeof n === "string").slice(0, 1000);
      }
    } catch (e) {
      if (!(e instanceof RedisUnavailable)) log("warn", "cluster_heartbeat_failed", { error: e });
    }
  }

  async #refreshSessions(): Promise<void> {
    if (this.#stopped || !this.redis.up) return;
    const ttl = String(this.config.nodeTtlMs * SESSION_TTL_FACTOR);
    let batch: string[][] = [];
    const flush = async () => {
      const cmds = batch;
      batch = [];
      const replies = await this.redis.pipeline(cmds).catch(() => undefined);
      const ok = replies?.filter((r) => r === "OK").length ?? 0;
      if (ok) clusterDirectoryWrites.inc({ outcome: "ok" }, ok);
      if (ok < cmds.length) clusterDirectoryWrites.inc({ outcome: "failed" }, cmds.length - ok);
    };
    for (const s of this.localSessions()) {
      batch.push(["SET", this.#key("session", s.id), this.node, "PX", ttl]);
      if (s.whipResource) {
        batch.push(["SET", this.#key("whip", s.whipResource.resource), this.node, "PX", ttl]);
      }
      if (batch.length >= REFRESH_BATCH) await flush();
    }
    if (batch.length) await flush();
  }

  /** The registry changed: a session this node now holds is written, one it no longer holds deleted. */
  onRegistryChange(c: RegistryChange): void {
    if (this.#stopped) return; // a stopping node keeps its entries: its successor restores the sessions
    if (c.kind === "session") {
      if (!this.redis.up) return; // written with every other session when Redis is back
      const id = c.session.id;
      const ttl = String(this.config.nodeTtlMs * SESSION_TTL_FACTOR);
      const whip = c.session.whipResource;
      // A WHIP resource's entry expires by itself after its session: a stale one names a node that
      // answers 404, as it should.
      if (whip) void this.#command(["SET", this.#key("whip", whip.resource), this.node, "PX", ttl]);
      this.#track(
        id,
        this.#command(["SET", this.#key("session", id), this.node, "PX", ttl]).then((r) => {
          clusterDirectoryWrites.inc({ outcome: r === "OK" ? "ok" : "failed" });
        }),
      );
    } else if (c.kind === "session_gone") {
      this.#track(
        c.id,
        this.#command(["EVAL", DELETE_IF_MINE, "1", this.#key("session", c.id), this.node]).then(() => {}),
      );
    }
  }

  /** The session's latest write (or deletion) is the one `published` waits for. */
  #track(id: string, write: Promise<void>): void {
    const tracked = write.finally(() => {
      if (this.#writes.get(id) === tracked) this.#writes.delete(id);
    });
    this.#writes.set(id, tracked);
  }

  async #command(args: string[]): Promise<RespValue | undefined> {
    try {
      return await this.redis.command(args);
    } catch {
      return undefined; // Redis down: written again by the refresh when it returns
    }
  }

  async published(sessionId: string): Promise<void> {
    await this.#writes.get(sessionId);
  }

  locate(sessionId: string): Promise<Owner> {
    return this.#locate("session", sessionId);
  }

  locateWhip(resource: string): Promise<Owner> {
    return this.#locate("whip", resource);
  }

  async #locate(kind: "session" | "whip", id: string): Promise<Owner> {
    const cacheKey = kind === "session" ? id : `whip:${id}`;
    const cached = this.#cache.get(cacheKey);
    const fresh = cached && (Date.now() - cached.at < this.config.nodeTtlMs || !this.redis.up);
    if (cached && fresh) {
      return this.#counted("cached", { where: "node", node: cached.node, url: cached.url });
    }
    if (!this.redis.up) {
      return this.#counted("unreachable", { where: "unreachable", reason: "redis is unreachable" });
    }
    let node: RespValue, url: RespValue = null;
    try {
      node = await this.redis.command(["GET", this.#key(kind, id)]);
      // Not held anywhere, or an entry of this node's that outlived the session here.
      if (typeof node !== "string" || node === this.node) {
        this.#cache.delete(cacheKey);
        return this.#counted("unknown", { where: "unknown" });
      }
      url = await this.redis.command(["GET", this.#key("node", node)]);
    } catch (e) {
      return this.#counted("unreachable", {
        where: "unreachable",
        reason: e instanceof Error ? e.message : String(e),
      });
    }
    if (typeof url !== "string") return this.#counted("node_gone", { where: "node_gone", node });
    this.#remember(cacheKey, { node, url, at: Date.now() });
    return this.#counted("found", { where: "node", node, url });
  }

  /** A located session's (or WHIP resource's, "whip:<id>") node turned out unreachable: ask again
   * next time. */
  forget(key: string): void {
    this.#cache.delete(key);
  }

  #remember(id: string, c: Cached): void {
    this.#cache.delete(id);
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(id, c);
  }

  #counted(result: LookupResult, owner: Owner): Owner {
    clusterLookups.inc({ result });
    return owner;
  }

  status(): ClusterStatus {
    return { node: this.node, redis: this.redis.up ? "up" : "down", nodes: [...this.#nodes] };
  }

  /** Stops writing; the entries stay until their TTL (a restarted node takes them up again). */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.redis.close();
  }
}
