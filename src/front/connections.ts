// The front door's bookkeeping of client TCP connections, for every public TCP listener of the
// process: a total limit (derived from the descriptor limit unless configured: each proxied connection
// costs up to five descriptors) and a per-address limit, both refused with a clear answer and counted;
// the open connections by listener and kind; and accept loops that survive EMFILE and keep serving.
import {
  acceptErrors,
  type CONNECTION_CLOSES,
  connectionsClosed,
  tcpConnections,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";
import { descriptorLimit } from "../telemetry/process.ts";

/** Descriptors a proxied connection may hold: the client's, a loopback pipe's two ends, and a second
 * pipe when TLS is terminated on a shared TCP port. */
const DESCRIPTORS_PER_CONNECTION = 5;
/** Descriptors kept for everything else: sockets, files, Janus connections, workers. */
const DESCRIPTOR_RESERVE = 512;

export type CloseReason = typeof CONNECTION_CLOSES[number];
export type ConnectionKind = "unclassified" | "http" | "tls" | "ice" | "upgraded";

export class ConnectionLimiter {
  readonly maxTotal: number;
  #total = 0;
  readonly #perAddress = new Map<string, number>();
  readonly #byKind = new Map<string, number>();

  constructor(maxTotal: number, readonly maxPerAddress: number) {
    const fds = descriptorLimit();
    const derived = fds === undefined
      ? 10_000
      : Math.max(64, Math.floor((fds - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_CONNECTION));
    this.maxTotal = maxTotal > 0 ? maxTotal : derived;
    tcpConnections.collectWith((set) => {
      for (const [k, n] of this.#byKind) {
        const [listener, kind] = k.split("\u0000");
        set({ listener, kind }, n);
      }
    });
  }

  get total(): number {
    return this.#total;
  }

  /** Counts a new connection from `address`, or says which limit refuses it (counted). */
  acquire(address: string): "total_limit" | "address_limit" | undefined {
    if (this.#total >= this.maxTotal) {
      connectionsClosed.inc({ reason: "total_limit" });
      return "total_limit";
    }
    const n = this.#perAddress.get(address) ?? 0;
    if (n >= this.maxPerAddress) {
      connectionsClosed.inc({ reason: "address_limit" });
      return "address_limit";
    }
    this.#perAddress.set(address, n + 1);
    this.#total++;
    return undefined;
  }

  release(address: string): void {
    const n = this.#perAddress.get(address);
    if (n === undefined) return;
    if (n <= 1) this.#perAddress.delete(address);
    else this.#perAddress.set(address, n - 1);
    this.#total--;
  }

  /** Tracks what an open connection is, for the gauge; returns a function that moves it to another kind. */
  track(listener: string, kind: ConnectionKind): (next: ConnectionKind | undefined) => void {
    let current: string | undefined = `${listener}\u0000${kind}`;
    this.#byKind.set(current, (this.#byKind.get(current) ?? 0) + 1);
    return (next) => {
      if (current) this.#byKind.set(current, (this.#byKind.get(current) ?? 1) - 1);
      current = next === undefined ? undefined : `${listener}\u0000${next}`;
      if (current) this.#byKind.set(current, (this.#byKind.get(current) ?? 0) + 1);
    };
  }
}

export function countClose(reason: CloseReason): void {
  connectionsClosed.inc({ reason });
}

/** What a refused connection is told before it is closed (harmless noise to a non-HTTP client). */
export async function refuseConnection(conn: Deno.Conn, why: "total_limit" | "address_limit"): Promise<void> {
  const body = why === "total_limit"
    ? "xRTC is at its connection limit\n"
    : "too many connections from this address\n";
  const text =
    `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
    `retry-after: 5\r\nconnection: close\r\n\r\n${body}`;
  try {
    await Promise.race([conn.write(new TextEncoder().encode(text)), new Promise((r) => setTimeout(r, 1000))]);
  } catch { /* the client went away */ }
  try {
    conn.close();
  } catch { /* closed */ }
}

/** Back-off after a failed accept (EMFILE, ENFILE, ENOBUFS): the loop waits, then serves again. */
const ACCEPT_BACKOFF_MS = [10, 50, 100, 250, 500, 1000];

/** Accepts until the listener is closed; an accept error never ends the loop while it is open. */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  name: string,
  isOpen: () => boolean,
  onConn: (conn: C) => void,
): Promise<void> {
  let failures = 0;
  let lastLog = 0;
  while (isOpen()) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (e) {
      if (!isOpen() || e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
      acceptErrors.inc();
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        log("warn", "accept_failed", { listener: name, error: e });
      }
      await new Promise((r) =>
        setTimeout(r, ACCEPT_BACKOFF_MS[Math.min(failures++, ACCEPT_BACKOFF_MS.length - 1)])
      );
      continue;
    }
    failures = 0;
    try {
      onConn(conn);
    } catch (e) {
      log("error", "connection_handler_error", { listener: name, error: e });
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
}
