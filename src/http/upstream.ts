// Choosing the Janus server: rr or random over a route's servers for a new Janus session; every later
// request and WebSocket of that session goes to the server that created it (affinity by session id).
import type { RouteConfig, UpstreamService } from "../config/types.ts";

export class UpstreamPool {
  #next = 0;
  /** Janus session id -> server base URL (HTTP servers and WS servers pinned separately). */
  readonly #affinity = new Map<string, string>();
  static readonly MAX_AFFINITY = 200_000;

  constructor(readonly mode: "rr" | "random", readonly httpServers: string[], readonly wsServers: string[]) {}

  static forRoute(route: RouteConfig, upstreams: Map<string, UpstreamService>): UpstreamPool {
    if (route.upstreamService !== undefined) {
      const u = upstreams.get(route.upstreamService)!;
      return new UpstreamPool(u.mode, u.httpServers, u.wsServers);
    }
    const url = route.upstreamUrl!;
    const isWs = url.startsWith("ws");
    const http = isWs ? url.replace(/^ws/, "http") : url;
    const ws = isWs ? url : url.replace(/^http/, "ws");
    return new UpstreamPool("rr", [http], [ws]);
  }

  /** Servers to try for a request, in order: the pinned one alone, or all starting from the next pick. */
  candidates(websocket: boolean, sessionId: string | undefined): string[] {
    const list = websocket ? this.wsServers : this.httpServers;
    if (sessionId !== undefined) {
      const pinned = this.#affinity.get(`${websocket ? "ws" : "http"}:${sessionId}`);
      if (pinned !== undefined) return [pinned];
    }
    if (list.length === 0) return [];
    const start = this.mode === "random"
      ? Math.floor(Math.random() * list.length)
      : this.#next++ % list.length;
    return [...list.slice(start), ...list.slice(0, start)];
  }

  pin(websocket: boolean, sessionId: string, server: string): void {
    if (this.#affinity.size >= UpstreamPool.MAX_AFFINITY) {
      this.#affinity.delete(this.#affinity.keys().next().value!);
    }
    this.#affinity.set(`${websocket ? "ws" : "http"}:${sessionId}`, server);
  }

  unpin(sessionId: string): void {
    this.#affinity.delete(`http:${sessionId}`);
    this.#affinity.delete(`ws:${sessionId}`);
  }
}
