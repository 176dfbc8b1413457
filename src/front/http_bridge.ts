// HTTP on connections the front door accepted itself. Deno cannot hand an accepted socket to Deno.serve,
// so each connection is piped into a loopback server owned by its listener; the real client address
// travels with the pipe. Since Deno.serve has no connection deadlines of its own, the pipe enforces
// them, knowing from the handler when a request is in progress:
// - a request's head must arrive within header_timeout of its first byte (of the connection, for the
//   first request): header drip (slow-loris) is closed;
// - a connection with no request in progress is closed after keepalive_timeout;
// - bytes towards a client that does not read are given up after body_timeout;
// request bodies and upstream responses have their own deadlines in the proxy. A WebSocket upgrade
// leaves the pipe alone (the WebSocket has its own ping deadline).
import type { ConnInfo, HttpHandler } from "../http/server.ts";
import { LOOPBACK_V4 } from "../io/address.ts";
import { type ConnectionLimiter, countClose, PIPE_DESCRIPTORS } from "./connections.ts";
import { log } from "../telemetry/log.ts";

export interface BridgeTimers {
  headerTimeoutMs: number;
  keepaliveTimeoutMs: number;
  bodyTimeoutMs: number;
}

interface Bridged {
  client: Deno.Conn;
  inner: Deno.Conn;
  info: ConnInfo;
  inFlight: number;
  upgraded: boolean;
  /** When the connection last had no request in progress, and whether a request has been seen. */
  idleSince: number;
  served: number;
  /** The first byte of a request that has not reached the handler yet. */
  firstByteAt?: number;
  closed: boolean;
  onUpgrade?: () => void;
}

const SWEEP_MS = 500;
const READ_BUFFER = 16 * 1024;

export class HttpBridge {
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #port = 0;
  /** Loopback pipe source port -> the connection it carries. */
  readonly #conns = new Map<number, Bridged>();
  #sweeper?: ReturnType<typeof setInterval>;
  #stopped = false;

  constructor(
    readonly name: string,
    /** The handler and deadlines can change (a reload): connections use the current ones. */
    public handler: HttpHandler,
    public timers: BridgeTimers,
    readonly limits: ConnectionLimiter,
  ) {}

  get openConnections(): number {
    return this.#conns.size;
  }

  start(): void {
    const server = Deno.serve(
      {
        hostname: LOOPBACK_V4,
        port: 0,
        onListen: () => {},
        onError: (e) => {
          log("error", "http_error", { listener: this.name, error: e });
          return new Response("internal error\n", { status: 500 });
        },
      },
      (req, info) => this.#handle(req, info.remoteAddr.port),
    );
    this.#server = server;
    this.#port = server.addr.port;
    // Deno.serve's accept loop ends for good on an accept error (EMFILE): a new server takes over.
    server.finished.catch((e) => {
      if (this.#stopped || this.#server !== server) return;
      log("error", "http_bridge_restarted", { listener: this.name, error: e });
      setTimeout(() => {
        if (!this.#stopped) this.start();
      }, 100);
    });
    this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS);
  }

  async #handle(req: Request, pipePort: number): Promise<Response> {
    const c = this.#conns.get(pipePort);
    if (!c) return new Response("connection gone\n", { status: 503 });
    c.inFlight++;
    c.served++;
    c.firstByteAt = undefined;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      c.inFlight--;
      if (c.inFlight === 0) c.idleSince = Date.now();
    };
    let res: Response;
    try {
      res = await this.handler(req, c.info);
    } catch (e) {
      done();
      throw e;
    }
    if (res.status === 101) {
      c.upgraded = true;
      c.onUpgrade?.();
      done();
      return res;
    }
    if (!res.body) {
      done();
      return res;
    }
    // The request is in progress until the response body has been handed over.
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        try {
          const { value, done: end } = await reader.read();
          if (end) {
            done();
            ctl.close();
          } else ctl.enqueue(value);
        } catch (e) {
          done();
          ctl.error(e);
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  /** Pipes an accepted client connection into the HTTP server; resolves when it has ended. `prefix` is
   * what classification already read from it. The pipe's descriptors are charged to the front door's
   * budget; without room the connection is closed. */
  async serve(client: Deno.Conn, prefix: Uint8Array, info: ConnInfo, onUpgrade?: () => void): Promise<void> {
    if (!this.limits.charge(PIPE_DESCRIPTORS)) return;
    try {
      await this.#serve(client, prefix, info, onUpgrade);
    } finally {
      this.limits.discharge(PIPE_DESCRIPTORS);
    }
  }

  async #serve(client: Deno.Conn, prefix: Uint8Array, info: ConnInfo, onUpgrade?: () => void): Promise<void> {
    const inner = await Deno.connect({ hostname: LOOPBACK_V4, port: this.#port });
    const pipePort = inner.localAddr.port;
    const c: Bridged = {
      client,
      inner,
      info,
      inFlight: 0,
      upgraded: false,
      idleSince: Date.now(),
      served: 0,
      firstByteAt: prefix.length ? Date.now() : undefined,
      closed: false,
      onUpgrade,
    };
    this.#conns.set(pipePort, c);
    try {
      if (prefix.length) await inner.write(prefix);
      await Promise.allSettled([this.#toInner(c), this.#toClient(c)]);
    } finally {
      this.#conns.delete(pipePort);
      this.#close(c);
    }
  }

  async #toInner(c: Bridged): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER);
    try {
      for (;;) {
        const n = await c.client.read(buf);
        if (n === null) break;
        if (c.inFlight === 0 && !c.upgraded && c.firstByteAt === undefined) c.firstByteAt = Date.now();
        let off = 0;
        while (off < n) off += await c.inner.write(buf.subarray(off, n));
      }
    } catch { /* either side closed */ }
    try {
      await c.inner.closeWrite();
    } catch { /* closed */ }
  }

  async #toClient(c: Bridged): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER);
    try {
      for (;;) {
        const n = await c.inner.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) {
          // A client that does not read stalls this write: given up after body_timeout.
          let timer: ReturnType<typeof setTimeout> | undefined;
          const stalled = new Promise<"stalled">((r) =>
            timer = setTimeout(() => r("stalled"), this.timers.bodyTimeoutMs)
          );
          const written = await Promise.race([c.client.write(buf.subarray(off, n)), stalled]);
          clearTimeout(timer);
          if (written === "stalled") {
            countClose("slow_reader");
            return this.#close(c);
          }
          off += written;
        }
      }
    } catch { /* either side closed */ }
    this.#close(c);
  }

  #close(c: Bridged): void {
    if (c.closed) return;
    c.closed = true;
    for (const conn of [c.client, c.inner]) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /** The connection deadlines (see the top of this file). */
  #sweep(): void {
    const now = Date.now();
    const { headerTimeoutMs, keepaliveTimeoutMs } = this.timers;
    for (const c of this.#conns.values()) {
      if (c.upgraded || c.inFlight > 0 || c.closed) continue;
      if (c.firstByteAt !== undefined) {
        if (now - c.firstByteAt > headerTimeoutMs) {
          countClose("header_timeout");
          this.#close(c);
        }
      } else if (now - c.idleSince > (c.served === 0 ? headerTimeoutMs : keepaliveTimeoutMs)) {
        countClose(c.served === 0 ? "header_timeout" : "idle_timeout");
        this.#close(c);
      }
    }
  }

  /** Closes every connection and the server. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweeper);
    for (const c of this.#conns.values()) this.#close(c);
    await this.#server?.shutdown().catch(() => {});
  }
}
