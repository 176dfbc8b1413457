// The front door's bookkeeping of client TCP connections, for every public TCP listener of the
// process: a descriptor budget (Deno cannot survive running out of descriptors, so every connection is
// charged what it holds: one for the client's socket, two more for a loopback pipe into an HTTP server or
// a TLS terminator), a total connection limit within it, and a per-address limit; each refused with a
// clear answer and counted. Also the open connections by listener and kind, and accept loops that
// survive a failed accept and keep serving.
import {
  acceptErrors,
  type CONNECTION_CLOSES,
  connectionsClosed,
  tcpConnections,
} from "../telemetry/catalog.ts";
import { log } from "../telemetry/log.ts";
import { descriptorLimit, openDescriptors } from "../telemetry/process.ts";

/** Descriptors kept free beyond those open at start, for everything else: sockets to Janus, files,
 * refusals, workers. */
const DESCRIPTOR_RESERVE = 128;
/** The descriptors of a loopback pipe (both ends) into an HTTP server or TLS terminator. */
export const PIPE_DESCRIPTORS = 2;

export type CloseReason = typeof CONNECTION_CLOSES[number];
export type ConnectionKind = "unclassified" | "http" | "tls" | "ice" | "upgraded";

export class ConnectionLimiter {
  /** Descriptors the front door may hold. */
  readonly budget: number;
  maxTotal: number;
  maxPerAddress: number;
  /** Set when the configured limit was more than the descriptors allow for connections. */
  clamped?: { configured: number; allowed: number };
  #total = 0;
  #charged = 0;
  readonly #perAddress = new Map<string, number>();
  readonly #byKind = new Map<string, number>();

  constructor(maxTotal: number, maxPerAddress: number) {
    this.maxPerAddress = maxPerAddress;
    const fds = descriptorLimit();
    const open = openDescriptors() ?? 64;
    this.budget = fds === undefined ? 100_000 : Math.max(16, fds - open - DESCRIPTOR_RESERVE);
    this.maxTotal = maxTotal > 0 ? Math.min(maxTotal, this.budget) : this.budget;
    this.clamped = maxTotal > this.budget ? { configured: maxTotal, allowed: this.budget } : undefined;
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

  /** New limits (a reload); connections already open stay. */
  update(maxTotal: number, maxPerAddress: number): void {
    this.maxTotal = maxTotal > 0 ? Math.min(maxTotal, this.budget) : this.budget;
    this.clamped = maxTotal > this.budget ? { configured: maxTotal, allowed: this.budget } : undefined;
    this.maxPerAddress = maxPerAddress;
  }

  /** Counts a new connection from `address` (one descriptor), or says which limit refuses it (counted). */
  acquire(address: string): "total_limit" | "address_limit" | undefined {
    if (this.#total >= this.maxTotal || this.#charged + 1 > this.budget) {
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
    this.#charged++;
    return undefined;
  }

  release(address: string): void {
    const n = this.#perAddress.get(address);
    if (n === undefined) return;
    if (n <= 1) this.#perAddress.delete(address);
    else this.#perAddress.set(address, n - 1);
    this.#total--;
    this.#charged--;
  }

  /** Charges descriptors an open connection is about to take (a pipe); false when the budget has no
   * room (counted: the connection is closed). */
  charge(n: number): boolean {
    if (this.#charged + n > this.budget) {
      connectionsClosed.inc({ reason: "total_limit" });
      return false;
    }
    this.#charged += n;
    return true;
  }

  discharge(n: number): void {
    this.#charged -= n;
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

const REFUSALS = {
  total_limit: "xRTC is at its connection limit\n",
  address_limit: "too many connections from this address\n",
};
const REFUSAL_WRITE_MS = 50;

/** What a refused connection is told before it is closed (harmless noise to a non-HTTP client). The
 * accept loop waits for it, so refusals never hold more than one descriptor at a time. */
export async function refuseConnection(conn: Deno.Conn, why: "total_limit" | "address_limit"): Promise<void> {
  const body = REFUSALS[why];
  const text =
    `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
    `retry-after: 5\r\nconnection: close\r\n\r\n${body}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      conn.write(new TextEncoder().encode(text)),
      new Promise((r) => timer = setTimeout(r, REFUSAL_WRITE_MS)),
    ]);
  } catch {
    /* the client went away */
  } finally {
    clearTimeout(timer);
  }
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
  /** Handles a connection; a promise it returns (a refusal) is waited for before the next accept. */
  onConn: (conn: C) => void | Promise<void>,
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
      const refusal = onConn(conn);
      if (refusal) await refusal;
    } catch (e) {
      log("error", "connection_handler_error", { listener: name, error: e });
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
}
