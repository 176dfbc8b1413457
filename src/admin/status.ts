// /status: the live view of every session (Janus's session and handle ids, backend, mode, client paths,
// Janus's address, age, packets and bytes each way), totals, backends and shards. ICE credentials never
// appear: the session views carry none, and nothing else here is a credential.
import type { ShardState } from "../ice/shards/shards.ts";
import type { SessionView } from "../ice/session/media_session.ts";
import type { JanusSessions } from "../signalling/sessions.ts";
import type { BackendPool } from "../signalling/backends.ts";
import type { MetricSnapshot } from "../telemetry/metrics.ts";
import { seriesTotal } from "../telemetry/exposition.ts";

/** Sessions listed at most (the most active first); the totals count them all. */
export const STATUS_SESSION_LIMIT = 1_000;

export interface StatusInputs {
  version: string;
  startedAt: number;
  ioBackend: string;
  draining: boolean;
  config: { generation: number; lastReload?: { at: string; ok: boolean; errors: string[] } };
  shards: ShardState[];
  metrics: MetricSnapshot[];
  janus: JanusSessions;
  pools: BackendPool[];
  negotiated: number;
  /** This node in its cluster, when there is one. */
  cluster?: { node: string; redis: "up" | "down"; nodes: string[] };
}

export interface SessionStatus {
  id: string;
  janus_session: string;
  handle: string;
  plugin?: string;
  /** How the session was signalled: the Janus API through xRTC, or a WHIP endpoint (its tag). */
  signalling: "janus" | "whip";
  whip_endpoint?: string;
  backend?: string;
  client?: string;
  mode: "half" | "full";
  /** "live" once a client's authentic check claimed it; "negotiated" before. */
  state: "live" | "negotiated";
  shard?: number;
  age_ms: number;
  paths: Array<
    { transport: string; remote: string; validated: boolean; selected: boolean; consent_age_ms: number }
  >;
  janus?: string;
  janus_transport?: string;
  packets_to_janus: number;
  bytes_to_janus: number;
  packets_to_client: number;
  bytes_to_client: number;
}

export function buildStatus(i: StatusInputs, limit = STATUS_SESSION_LIMIT): unknown {
  const views = new Map<string, SessionView>();
  for (const s of i.shards) for (const v of s.report.sessions ?? []) views.set(v.id, v);
  const sessions: SessionStatus[] = [];
  const now = Date.now();
  for (const js of i.janus.sessions()) {
    for (const h of js.handles.values()) {
      const spec = h.ice.spec;
      if (!spec) continue;
      const v = views.get(h.key);
      sessions.push({
        id: h.key,
        janus_session: js.id,
        handle: h.id,
        plugin: h.plugin,
        signalling: js.whip !== undefined ? "whip" : "janus",
        whip_endpoint: js.whip,
        backend: js.backend.name,
        client: js.client,
        mode: spec.mode,
        state: v ? "live" : "negotiated",
        shard: v?.shard,
        age_ms: v?.ageMs ?? now - h.ice.openedAt,
        paths: (v?.paths ?? []).map((p) => ({
          transport: p.transport,
          remote: p.remote,
          validated: p.validated,
          selected: p.selected,
          consent_age_ms: p.consentAgeMs,
        })),
        janus: v?.janus,
        janus_transport: v?.janusTransport,
        packets_to_janus: v?.packetsToJanus ?? 0,
        bytes_to_janus: v?.bytesToJanus ?? 0,
        packets_to_client: v?.packetsToClient ?? 0,
        bytes_to_client: v?.bytesToClient ?? 0,
      });
    }
  }
  sessions.sort((a, b) => (b.bytes_to_client + b.bytes_to_janus) - (a.bytes_to_client + a.bytes_to_janus));
  const m = i.metrics;
  return {
    version: i.version,
    uptime_ms: now - i.startedAt,
    io_backend: i.ioBackend,
    draining: i.draining,
    cluster: i.cluster ?? null,
    config: { generation: i.config.generation, last_reload: i.config.lastReload ?? null },
    shards: i.shards.map((s) => ({ ...s.report.stats, up: s.up })),
    totals: {
      ice_sessions_live: i.shards.reduce((n, s) => n + s.report.stats.sessions, 0),
      ice_sessions_negotiated: i.negotiated,
      janus_sessions: i.janus.size,
      janus_handles: i.janus.handleCount,
      tcp_connections: seriesTotal(m, "xrtc_tcp_connections"),
      websockets: seriesTotal(m, "xrtc_websocket_connections"),
      packets_to_janus: seriesTotal(m, "xrtc_forwarded_packets_total", { direction: "to_janus" }),
      bytes_to_janus: seriesTotal(m, "xrtc_forwarded_bytes_total", { direction: "to_janus" }),
      packets_to_client: seriesTotal(m, "xrtc_forwarded_packets_total", { direction: "to_client" }),
      bytes_to_client: seriesTotal(m, "xrtc_forwarded_bytes_total", { direction: "to_client" }),
      dropped_packets: seriesTotal(m, "xrtc_dropped_packets_total"),
    },
    backends: i.pools.flatMap((p) =>
      p.backends.map((b) => ({
        upstream: p.name,
        name: b.name,
        up: b.up && b.answered,
        sessions: b.sessions,
        probe_ms: Math.round(b.lastProbeMs),
      }))
    ),
    sessions: sessions.slice(0, limit),
    sessions_truncated: sessions.length > limit,
  };
}
