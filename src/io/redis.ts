// A Redis client for xRTC's cluster directory: one pipelined connection (RESP2), every command with a
// deadline, a bounded queue, and reconnection with backoff. While Redis is unreachable, commands fail
// at once with RedisUnavailable: callers degrade, they never wait on a dead server.
import { encodeCommand, RespDecoder, RespError, type RespValue } from "./resp.ts";

export class RedisUnavailable extends Error {
  override name = "RedisUnavailable";
}

export interface RedisOptions {
  /** redis://[[user]:password@]host[:port][/db] */
  url: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** Called when the connection comes up or goes down (with the reason). */
  onState?: (up: boolean, reason?: string) => void;
}

/** Commands waiting for replies: more is a server that does not keep up, treated as unreachable. */
const MAX_PENDING = 10_000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2_000;

interface Waiter {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
  at: number;
}

export interface RedisTarget {
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
}

export function parseRedisUrl(url: string): RedisTarget {
  const u = new URL(url);
  if (u.protocol !== "redis:") throw new Error(`not a redis:// URL: ${u.protocol}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`bad database number "${u.pathname.slice(1)}"`);
  return {
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db,
  };
}

export class RedisClient {
  readonly target: RedisTarget;
  #conn?: Deno.TcpConn;
  #up = false;
  #closed = false;
  #waiters: Waiter[] = [];
  #writing: Promise<void> = Promise.resolve();
  #backoff = BACKOFF_MIN_MS;
  #timer?: ReturnType<typeof setInterval>;
  #connecting?: Promise<void>;
  #reported?: boolean;
  readonly #connectTimeout: number;
  readonly #commandTimeout: number;

  constructor(readonly opts: RedisOptions) {
    this.target = parseRedisUrl(opts.url);
    this.#connectTimeout = opts.connectTimeoutMs ?? 2_000;
    this.#commandTimeout = opts.commandTimeoutMs ?? 1_000;
  }

  get up(): boolean {
    return this.#up;
  }

  /** Connects now and keeps reconnecting until close(). */
  start(): Promise<void> {
    this.#timer = setInterval(() => this.#expire(), 100);
    Deno.unrefTimer(this.#timer);
    return this.#connectLoop();
  }

  #connectLoop(): Promise<void> {
    if (this.#connecting) return this.#connecting;
    this.#connecting = (async () => {
      while (!this.#closed && !this.#up) {
        try {
          await this.#connect();
          this.#backoff = BACKOFF_MIN_MS;
          return;
        } catch (e) {
          this.#down(e instanceof Error ? e.message : String(e));
          await new Promise((r) => setTimeout(r, this.#backoff));
          this.#backoff = Math.min(BACKOFF_MAX_MS, this.#backoff * 2);
        }
      }
    })().finally(() => this.#connecting = undefined);
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const t = this.target;
    const conn = await withDeadline(
      Deno.connect({ hostname: t.hostname, port: t.port }),
      this.#connectTimeout,
      `no connection to ${t.hostname}:${t.port} in ${this.#connectTimeout} ms`,
      (c) => c.close(),
    );
    if (this.#closed) {
      conn.close();
      return;
    }
    conn.setNoDelay(true);
    this.#conn = conn;
    void this.#read(conn);
    // AUTH and SELECT go first on the new connection; their failure is the connection's.
    const setup: string[][] = [];
    if (t.password !== undefined) {
      setup.push(t.username ? ["AUTH", t.username, t.password] : ["AUTH", t.password]);
    }
    if (t.db) setup.push(["SELECT", String(t.db)]);
    setup.push(["PING"]);
    const replies = await Promise.all(setup.map((c) => this.#send(conn, c)));
    const failed = replies.find((r) => r instanceof RespError);
    if (failed) {
      conn.close();
      throw new Error(`redis refused the connection set-up: ${(failed as RespError).message.split(" ")[0]}`);
    }
    this.#up = true;
    this.#reported = true;
    this.opts.onState?.(true);
  }

  async #read(conn: Deno.TcpConn): Promise<void> {
    const decoder = new RespDecoder();
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) throw new Error("redis closed the connection");
        decoder.push(buf.subarray(0, n));
        for (let r = decoder.next(); r; r = decoder.next()) {
          const w = this.#waiters.shift();
          if (!w) throw new Error("a reply to no command");
          w.resolve(r.value);
        }
      }
    } catch (e) {
      if (this.#conn !== conn) return;
      this.#broken(e instanceof Error ? e.message : String(e));
    }
  }

  /** The connection is unusable: everything waiting fails, and a new one is made. */
  #broken(reason: string): void {
    const conn = this.#conn;
    this.#conn = undefined;
    try {
      conn?.close();
    } catch { /* closed */ }
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) w.reject(new RedisUnavailable(reason));
    this.#down(reason);
    if (!this.#closed) void this.#connectLoop();
  }

  /** Reported once per change: up after down, down after up (or at the first failure). */
  #down(reason: string): void {
    this.#up = false;
    if (this.#reported === false) return;
    this.#reported = false;
    this.opts.onState?.(false, reason);
  }

  /** A command that has waited past the deadline breaks the connection: replies would misalign. */
  #expire(): void {
    const oldest = this.#waiters[0];
    if (oldest && performance.now() - oldest.at > this.#commandTimeout) {
      this.#broken(`no reply in ${this.#commandTimeout} ms`);
    }
  }

  #send(conn: Deno.TcpConn, args: readonly string[]): Promise<RespValue> {
    if (this.#waiters.length >= MAX_PENDING) {
      return Promise.reject(new RedisUnavailable("too many commands waiting"));
    }
    const bytes = encodeCommand(args);
    const reply = new Promise<RespValue>((resolve, reject) =>
      this.#waiters.push({ resolve, reject, at: performance.now() })
    );
    this.#writing = this.#writing.then(async () => {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    }).catch((e) => {
      if (this.#conn === conn) this.#broken(e instanceof Error ? e.message : String(e));
    });
    return reply;
  }

  /** One command; an error reply resolves as a RespError. Rejects with RedisUnavailable when down. */
  command(args: readonly string[]): Promise<RespValue> {
    if (!this.#up || !this.#conn) return Promise.reject(new RedisUnavailable("redis is unreachable"));
    return this.#send(this.#conn, args);
  }

  /** Several commands written together; their replies in order. */
  pipeline(commands: readonly (readonly string[])[]): Promise<RespValue[]> {
    return Promise.all(commands.map((c) => this.command(c)));
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#reported = false; // a close is not an outage: nothing to report
    this.#broken("closed");
  }
}

async function withDeadline<T>(
  p: Promise<T>,
  ms: number,
  message: string,
  cleanup: (v: T) => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(message));
    }, ms);
  });
  p.then((v) => {
    if (late) cleanup(v);
  }).catch(() => {});
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
