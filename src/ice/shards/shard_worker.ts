// A shard worker (see shards.ts): its own FFI backend, its own SO_REUSEPORT socket on every shared
// UDP port, its own media plane. It answers the main thread's messages and reports sessions it ended.
import { createBackend } from "../../io/backend.ts";
import type { DatagramBackend } from "../../io/types.ts";
import { mustPeer } from "../../io/address.ts";
import { type TurnChannel, turnWords } from "../../io/turns.ts";
import { ClaimBoard } from "./claims.ts";
import { forEachFrame, FrameOutbox } from "./frame_batch.ts";
import { MediaPlane } from "./media_plane.ts";
import { connectJanusIceTcp } from "../session/janus_tcp.ts";
import { type FromShard, localReport, type ToShard } from "./shards.ts";
import { installThreadCollectors, startLagMonitor } from "../../telemetry/process.ts";
import { log } from "../../telemetry/log.ts";

/** The worker's side of its message port (the worker global, typed narrowly). */
interface WorkerScope {
  postMessage(m: FromShard, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent<ToShard>) => void) | null;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;

let plane: MediaPlane | undefined;
let backend: DatagramBackend | undefined;
let stopLag: (() => void) | undefined;
/** Frames for the main thread's ICE-TCP connections: those of one batch of datagrams go in one message, as
 * the batch is sent (microtasks wait for the end of a slice on this thread). */
const tcpSends = new FrameOutbox(
  (frames) => scope.postMessage({ t: "tcpSend", frames }, [frames.buffer]),
  (flush) => {
    backend?.afterFlush?.(flush);
    queueMicrotask(flush);
  },
);

async function init(m: Extract<ToShard, { t: "init" }>): Promise<void> {
  try {
    if (m.ioBackend === "memory") throw new Error("a worker cannot use the memory backend");
    // A worker carries only media: its backend waits for datagrams on this thread, and the main thread
    // asks for a turn after each message it posts (turns.ts), so that no message waits for a slice to end.
    const turns = turnWords();
    backend = (await createBackend(m.ioBackend, { gso: m.gso, gro: m.gro, ownThread: true, turns })).backend;
    const shard = m.shard;
    plane = new MediaPlane({
      backend,
      shard,
      claims: new ClaimBoard(m.claims),
      consentTimeoutMs: m.consentTimeoutMs,
      janusKeepaliveMs: m.janusKeepaliveMs,
      reusePort: true,
      onEnded: (id, reason) => scope.postMessage({ t: "ended", id, reason }),
      handoff: (to, port, data, from) => {
        const copy = data.slice();
        scope.postMessage(
          { t: "handoff", shard: to, port, data: copy, host: from.host, portNumber: from.port },
          [copy.buffer],
        );
      },
      connectIceTcp: connectJanusIceTcp,
      upstreamPort: m.upstreamPort,
      reuseUpstream: m.reuseUpstream,
      onLiveState: (id, state) => scope.postMessage({ t: "live", id, state }),
      relayBack: {
        send: (conn, data) => tcpSends.add(conn, data),
        close: (conn, reason) => {
          tcpSends.flush();
          scope.postMessage({ t: "tcpClose", conn, reason });
        },
      },
    });
    for (const p of m.udpPorts) plane.addUdpPort(p.name, p.host, p.port);
    stopLag = startLagMonitor();
    installThreadCollectors();
    log("info", "shard_started", { shard, ports: m.udpPorts.map((p) => p.port).join(",") });
    // Its upstream port first: messages arrive in order, so the port is known once "ready" is.
    scope.postMessage({ t: "upstream", port: plane.upstream.localAddress.port });
    const channel: TurnChannel = { words: turns.buffer as SharedArrayBuffer, wakeFd: backend.wakeFd ?? -1 };
    scope.postMessage({ t: "ready", turns: channel });
  } catch (e) {
    plane?.shutdown();
    backend?.close();
    scope.postMessage({ t: "failed", error: e instanceof Error ? e.message : String(e) });
  }
}

scope.onmessage = (ev) => {
  const m = ev.data;
  if (m.t === "init") {
    init(m);
    return;
  }
  if (!plane) return;
  switch (m.t) {
    case "open":
      return plane.open(m.spec);
    case "restore":
      return plane.restore(m.spec, m.live);
    case "addPort":
      return void plane.addUdpPort(m.port.name, m.port.host, m.port.port);
    case "removePort":
      return plane.removeUdpPort(m.name);
    case "update":
      return plane.update(m.id, m.update);
    case "end":
      return plane.end(m.id, m.reason);
    case "inject":
      return plane.inject(m.port, m.data, mustPeer(m.host, m.portNumber));
    case "tcpOpen":
      return plane.relayedTcpOpen(m.conn, mustPeer(m.host, m.portNumber), m.port);
    case "tcpFrames":
      return forEachFrame(m.frames, (conn, frame) => plane!.relayedTcpFrame(conn, frame));
    case "tcpClosed":
      return plane.relayedTcpClosed(m.conn);
    case "report":
      return scope.postMessage({ t: "report", id: m.id, report: localReport(plane, m.sessions) });
    case "stop":
      stopLag?.();
      plane.shutdown();
      plane = undefined;
      Promise.resolve(backend?.close()).finally(() => scope.postMessage({ t: "stopped" }));
      return;
  }
};
