// Every metric of xRTC, declared in one place: name (xrtc_ prefix, base units), help, type and labels.
// Reasons and outcomes are enumerations, so each of their series exists from the start and no label
// grows with sessions, clients or addresses. Each isolate has its own instance of this module (the main
// thread and every shard worker); the main thread merges them (exposition.ts).
import { Registry } from "./metrics.ts";

export const registry = new Registry();

/** Why a packet was neither forwarded nor answered. */
export const DROP_REASONS = [
  "empty_datagram",
  "truncated_datagram",
  "unknown_tuple",
  "stun_malformed",
  "stun_from_unbound_tuple",
  "stun_unexpected",
  "unknown_ufrag",
  "check_no_fingerprint",
  "check_bad_username",
  "check_bad_integrity",
  "session_ended",
  "upstream_unknown_source",
  "upstream_stun_malformed",
  "janus_leg_bad_request",
  "janus_leg_bad_response",
  "janus_check_not_relayed",
  "janus_leg_not_ready",
  "no_client_path",
  "tcp_session_on_other_shard",
  "port_not_on_owner_shard",
  "send_too_large",
  "unsupported_family",
  "send_failed",
  "handler_error",
] as const;
export type DropReason = typeof DROP_REASONS[number];

export const drops = registry.counter({
  name: "xrtc_dropped_packets_total",
  help: "Packets neither forwarded nor answered, by reason.",
  labels: ["reason"],
  values: { reason: DROP_REASONS },
});

/** One child per reason, so the hot path increments a field. */
export const drop: Record<DropReason, ReturnType<typeof drops.with>> = Object.fromEntries(
  DROP_REASONS.map((r) => [r, drops.with({ reason: r })]),
) as Record<DropReason, ReturnType<typeof drops.with>>;

export const MODES = ["half", "full"] as const;
export const TRANSPORTS = ["udp", "tcp"] as const;
export const PATH_TRANSPORTS = ["udp", "tcp", "none"] as const;

/** Why an ICE session ended. */
export const END_REASONS = [
  "client_hangup",
  "janus_hangup",
  "janus_session_gone",
  "consent_expired",
  "never_connected",
  "janus_leg_failed",
  "ice_restart",
  "backend_down",
  "shutdown",
  "internal_error",
] as const;
export type EndReason = typeof END_REASONS[number];

export const sessionsActive = registry.gauge({
  name: "xrtc_sessions_active",
  help: "Live ICE sessions owned by a shard, by proxy mode and the transport of the client's media path.",
  labels: ["mode", "transport"],
  values: { mode: MODES, transport: PATH_TRANSPORTS },
});

export const sessionsNegotiated = registry.gauge({
  name: "xrtc_sessions_negotiated",
  help: "ICE sessions negotiated through signalling, claimed by a shard or not yet.",
  labels: [],
});

export const sessionsOpened = registry.counter({
  name: "xrtc_sessions_opened_total",
  help: "ICE sessions opened by signalling, by proxy mode.",
  labels: ["mode"],
  values: { mode: MODES },
});

export const sessionsClosed = registry.counter({
  name: "xrtc_sessions_closed_total",
  help: "ICE sessions ended, by proxy mode and reason.",
  labels: ["mode", "reason"],
  values: { mode: MODES, reason: END_REASONS },
});

export const sessionsClaimed = registry.counter({
  name: "xrtc_sessions_claimed_total",
  help: "ICE sessions made live by a client's first authentic check on this shard.",
  labels: [],
});

export const iceSetup = registry.histogram({
  name: "xrtc_ice_setup_seconds",
  help: "ICE set-up: from the answer sent to the client to its first authentic check, and from that " +
    "check to the Janus leg connected.",
  labels: ["phase"],
  values: { phase: ["answer_to_first_check", "first_check_to_janus_connected"] },
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

export const forwardedPackets = registry.counter({
  name: "xrtc_forwarded_packets_total",
  help: "Packets forwarded between clients and Janus, by direction and the client path's transport.",
  labels: ["direction", "transport"],
  values: { direction: ["to_janus", "to_client"], transport: TRANSPORTS },
});

export const forwardedBytes = registry.counter({
  name: "xrtc_forwarded_bytes_total",
  help: "Bytes forwarded between clients and Janus, by direction and the client path's transport.",
  labels: ["direction", "transport"],
  values: { direction: ["to_janus", "to_client"], transport: TRANSPORTS },
});

export const stunChecks = registry.counter({
  name: "xrtc_stun_checks_total",
  help: "Clients' connectivity checks that reached a session, by outcome (refused ones are drops).",
  labels: ["outcome"],
  values: { outcome: ["answered", "role_conflict"] },
});

export const pathValidations = registry.counter({
  name: "xrtc_client_path_validations_total",
  help: "Round trips xRTC made to a client address before sending it media, by outcome.",
  labels: ["outcome"],
  values: { outcome: ["validated", "failed"] },
});

export const handoffPackets = registry.counter({
  name: "xrtc_handoff_packets_total",
  help: "Client packets passed to the shard that owns their session.",
  labels: ["direction"],
  values: { direction: ["out", "in"] },
});

export const janusLegs = registry.counter({
  name: "xrtc_janus_legs_connected_total",
  help: "Janus legs that connected, by transport.",
  labels: ["mode", "transport"],
  values: { mode: MODES, transport: TRANSPORTS },
});

export const upstreamSockets = registry.counter({
  name: "xrtc_upstream_private_sockets_total",
  help: "Sessions given an upstream socket of their own (Janus reused one address for several sessions).",
  labels: [],
});

export const upstreamConflicts = registry.counter({
  name: "xrtc_upstream_address_conflicts_total",
  help: "Janus addresses refused because another live session owns them on the shared upstream socket.",
  labels: [],
});

export const trickles = registry.counter({
  name: "xrtc_trickles_absorbed_total",
  help: "Trickled candidates kept from the other side, by origin.",
  labels: ["from"],
  values: { from: ["client", "janus"] },
});

export const janusCandidatesDropped = registry.counter({
  name: "xrtc_janus_candidates_dropped_total",
  help: "Janus candidates not used, by reason.",
  labels: ["reason"],
  values: { reason: ["unmatched", "over_limit", "malformed"] },
});

/** Where an exception was caught that no request or packet was being handled for. */
export const INTERNAL_ERROR_SITES = ["periodic_task", "session_timer", "after_flush"] as const;

export const internalErrors = registry.counter({
  name: "xrtc_internal_errors_total",
  help: "Exceptions caught inside xRTC outside any request or packet, by where: a periodic task on a " +
    "worker's thread, one session's maintenance or check pacing (that session is ended: internal_error), " +
    "or work run after a batch of sends (a worker's ICE-TCP frames to the main thread).",
  labels: ["where"],
  values: { where: INTERNAL_ERROR_SITES },
});

export const socketErrors = registry.counter({
  name: "xrtc_socket_errors_total",
  help: "Errors from datagram sockets, by operation.",
  labels: ["op"],
  values: { op: ["receive", "send"] },
});

export const KINDS = [
  "create",
  "attach",
  "message",
  "trickle",
  "keepalive",
  "hangup",
  "detach",
  "destroy",
  "claim",
  "poll",
  "info",
  "other",
] as const;
export type SignallingKind = typeof KINDS[number];

export const signallingRequests = registry.counter({
  name: "xrtc_signalling_requests_total",
  help: "Janus API requests from clients, by protocol, kind and outcome.",
  labels: ["protocol", "kind", "outcome"],
  values: {
    protocol: ["http", "ws"],
    kind: KINDS,
    outcome: ["ok", "janus_error", "refused", "upstream_error"],
  },
});

export const REFUSALS = [
  "bad_json",
  "bad_id",
  "unknown_session",
  "unknown_handle",
  "session_limit",
  "janus_session_limit",
  "client_session_limit",
  "client_session_rate",
  "client_ice_limit",
  "handle_limit",
  "in_flight_limit",
  "duplicate_transaction",
  "bad_sdp",
  "draining",
  "cluster_unavailable",
] as const;
export type Refusal = typeof REFUSALS[number];

export const signallingRefused = registry.counter({
  name: "xrtc_signalling_refused_total",
  help: "Janus API requests xRTC refused itself with a Janus-style error, by reason.",
  labels: ["reason"],
  values: { reason: REFUSALS },
});

export const janusJsepUnusable = registry.counter({
  name: "xrtc_janus_jsep_unusable_total",
  help: "SDPs from Janus xRTC could not use (candidates stripped before they reached the client).",
  labels: [],
});

export const upstreamRequests = registry.counter({
  name: "xrtc_upstream_requests_total",
  help: "Requests to Janus backends (client requests, xRTC's own, health probes), by backend and outcome.",
  labels: ["backend", "outcome"],
});

export const janusSessions = registry.gauge({
  name: "xrtc_janus_sessions",
  help: "Janus sessions created through this node and live, by backend.",
  labels: ["backend"],
});

export const janusHandles = registry.gauge({
  name: "xrtc_janus_handles",
  help: "Janus handles attached through this node and live, by backend.",
  labels: ["backend"],
});

export const janusSessionsEnded = registry.counter({
  name: "xrtc_janus_sessions_ended_total",
  help: "Janus sessions xRTC stopped tracking, by reason.",
  labels: ["reason"],
  values: { reason: ["destroyed", "timeout", "websocket_closed", "idle", "backend_down", "shutdown"] },
});

/** The statuses a WHIP request is answered with (RFC 9725 §4). */
export const WHIP_STATUSES = [
  "200",
  "201",
  "204",
  "400",
  "401",
  "403",
  "404",
  "405",
  "409",
  "412",
  "413",
  "415",
  "422",
  "428",
  "429",
  "502",
  "503",
  "504",
] as const;

export const whipRequests = registry.counter({
  name: "xrtc_whip_requests_total",
  help: "WHIP requests (RFC 9725), by method and the status they were answered with.",
  labels: ["method", "status"],
  values: { method: ["POST", "PATCH", "DELETE", "OPTIONS", "other"], status: WHIP_STATUSES },
});

export const whipSessions = registry.gauge({
  name: "xrtc_whip_sessions",
  help: "Live WHIP sessions (each a Janus session publishing into a VideoRoom).",
  labels: [],
});

export const WHIP_END_REASONS = ["deleted", "ice_ended", "janus_gone"] as const;
export type WhipEndReason = typeof WHIP_END_REASONS[number];

export const whipSessionsEnded = registry.counter({
  name: "xrtc_whip_sessions_ended_total",
  help: "WHIP sessions ended, by reason: DELETE, the client's ICE session ended (consent lost), or Janus " +
    "ended it (a stop of xRTC ends none: the next process serves them on).",
  labels: ["reason"],
  values: { reason: WHIP_END_REASONS },
});

export const whipSetup = registry.histogram({
  name: "xrtc_whip_setup_seconds",
  help: "From a WHIP POST's offer to its 201 Created answer (create, attach, join and Janus's answer).",
  labels: [],
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

export const tcpConnections = registry.gauge({
  name: "xrtc_tcp_connections",
  help: "Open client TCP connections, by listener and what they turned out to be.",
  labels: ["listener", "kind"],
});

export const CONNECTION_CLOSES = [
  "total_limit",
  "address_limit",
  "unclassified",
  "unknown_protocol",
  "tls_without_certificate",
  "tls_handshake",
  "http_disabled",
  "header_timeout",
  "idle_timeout",
  "no_valid_check",
  "bad_framing",
  "slow_reader",
] as const;

export const connectionsClosed = registry.counter({
  name: "xrtc_tcp_connections_closed_total",
  help: "Client TCP connections xRTC refused or closed itself, by reason.",
  labels: ["reason"],
  values: { reason: CONNECTION_CLOSES },
});

export const acceptErrors = registry.counter({
  name: "xrtc_accept_errors_total",
  help: "Failed accepts on a listening socket (such as EMFILE); the loop backs off and goes on.",
  labels: [],
});

export const websockets = registry.gauge({
  name: "xrtc_websocket_connections",
  help: "Proxied WebSocket connections open.",
  labels: [],
});

export const websocketsClosed = registry.counter({
  name: "xrtc_websocket_closed_total",
  help: "Proxied WebSockets xRTC closed itself, by reason.",
  labels: ["reason"],
  values: { reason: ["frame_too_large", "slow_peer", "upstream_unavailable", "shutdown"] },
});

export const httpRefused = registry.counter({
  name: "xrtc_http_refused_total",
  help: "HTTP requests refused before reaching an upstream, by reason.",
  labels: ["reason"],
  values: { reason: ["unknown_servername", "body_too_large", "body_timeout", "admin_path"] },
});

export const httpErrors = registry.counter({
  name: "xrtc_http_errors_total",
  help: "HTTP requests that failed inside xRTC (answered 500 or 502).",
  labels: [],
});

export const eventLoopLag = registry.gauge({
  name: "xrtc_event_loop_lag_seconds",
  help:
    "The longest event-loop delay seen by a shard in the last interval (a worker shard waits for media on its thread in slices of up to 50 ms between turns of its loop, so reads up to that while media flows).",
  labels: [],
  merge: "per_shard",
});

export const shardPackets = registry.counter({
  name: "xrtc_shard_received_packets_total",
  help: "Datagrams received by each shard on the shared UDP ports.",
  labels: [],
  merge: "per_shard",
});

export const shardWakeups = registry.counter({
  name: "xrtc_shard_wakeups_total",
  help:
    "Times each shard's reactor found datagrams to read (ffi backend; one wait that returned ready sockets). " +
    "xrtc_shard_received_packets_total over it is what a wakeup carries: each wakeup costs a fixed share of " +
    "CPU besides the per-datagram work, so CPU per packet falls as that grows.",
  labels: [],
  merge: "per_shard",
});

export const shardCpuSeconds = registry.counter({
  name: "xrtc_shard_cpu_seconds_total",
  help:
    "CPU time of each shard's own thread (Linux): shard 0 is the main thread (signalling, HTTP, the TCP " +
    "ports), the others carry UDP media; a shard near one second a second keeps its core busy.",
  labels: [],
  merge: "per_shard",
});

export const shardUp = registry.gauge({
  name: "xrtc_shard_up",
  help: "1 when the shard answered the last scrape; its last counters are kept in the sums either way.",
  labels: ["shard"],
});

export const kernelUdpErrors = registry.counter({
  name: "xrtc_kernel_udp_errors_total",
  help: "The kernel's UDP error counters for the whole host (/proc/net/snmp, Linux).",
  labels: ["kind"],
  values: { kind: ["in_errors", "receive_buffer", "send_buffer", "no_port"] },
});

export const residentMemory = registry.gauge({
  name: "xrtc_process_resident_memory_bytes",
  help: "Resident memory of the xRTC process.",
  labels: [],
});

export const cpuSeconds = registry.counter({
  name: "xrtc_process_cpu_seconds_total",
  help: "CPU time of the xRTC process, user and system.",
  labels: [],
});

export const openFds = registry.gauge({
  name: "xrtc_process_open_fds",
  help: "Open file descriptors of the xRTC process.",
  labels: [],
});

export const maxFds = registry.gauge({
  name: "xrtc_process_max_fds",
  help: "The process's limit of open file descriptors.",
  labels: [],
});

export const startTime = registry.gauge({
  name: "xrtc_process_start_time_seconds",
  help: "Start of the xRTC process, seconds since the Unix epoch.",
  labels: [],
});

export const buildInfo = registry.gauge({
  name: "xrtc_build_info",
  help:
    "Always 1: xRTC's version, Deno's version, the UDP I/O backend and the shards on the shared UDP ports.",
  labels: ["version", "deno", "io_backend", "shards"],
});

export const refusedSeries = registry.counter({
  name: "xrtc_telemetry_refused_series_total",
  help: "Metric series refused because a label value was not declared or a metric was full.",
  labels: [],
});
refusedSeries.collectWith((set) => set({}, registry.refusedSeries));

/** Hot-path children of the forwarding counters: FORWARDED[direction][transport]. */
export const FORWARDED = {
  to_janus: {
    udp: {
      packets: forwardedPackets.with({ direction: "to_janus", transport: "udp" }),
      bytes: forwardedBytes.with({ direction: "to_janus", transport: "udp" }),
    },
    tcp: {
      packets: forwardedPackets.with({ direction: "to_janus", transport: "tcp" }),
      bytes: forwardedBytes.with({ direction: "to_janus", transport: "tcp" }),
    },
  },
  to_client: {
    udp: {
      packets: forwardedPackets.with({ direction: "to_client", transport: "udp" }),
      bytes: forwardedBytes.with({ direction: "to_client", transport: "udp" }),
    },
    tcp: {
      packets: forwardedPackets.with({ direction: "to_client", transport: "tcp" }),
      bytes: forwardedBytes.with({ direction: "to_client", transport: "tcp" }),
    },
  },
} as const;

export const backendUp = registry.gauge({
  name: "xrtc_backend_up",
  help: "1 while a Janus backend passes its health probes (GET /janus/info) and is in rotation.",
  labels: ["upstream", "backend"],
});

export const backendProbeSeconds = registry.gauge({
  name: "xrtc_backend_probe_seconds",
  help: "How long the last health probe of a Janus backend took.",
  labels: ["upstream", "backend"],
});

export const stateWrites = registry.counter({
  name: "xrtc_state_records_written_total",
  help: "Session records written to the state directory (upserts and deletions).",
  labels: [],
});

export const stateRecordsSkipped = registry.counter({
  name: "xrtc_state_records_skipped_total",
  help: "Records in the state directory that did not read back and were skipped at start.",
  labels: [],
});

export const stateRestored = registry.counter({
  name: "xrtc_state_restored_total",
  help: "What a start restored from the state directory: Janus sessions, handles, and live ICE sessions.",
  labels: ["what"],
  values: { what: ["janus_sessions", "handles", "ice_sessions"] },
});

export const configGeneration = registry.gauge({
  name: "xrtc_config_generation",
  help: "The configuration's generation: 1 at start, one more with every reload that applied.",
  labels: [],
});

export const configLastReload = registry.gauge({
  name: "xrtc_config_last_reload_timestamp_seconds",
  help: "When routes.yml was last reloaded (SIGHUP), seconds since the Unix epoch; 0 before any.",
  labels: [],
});

export const configLastReloadSuccess = registry.gauge({
  name: "xrtc_config_last_reload_success",
  help: "1 when the last reload applied, 0 when it was refused (the configuration before it stays).",
  labels: [],
});

export const draining = registry.gauge({
  name: "xrtc_draining",
  help: "1 while the node drains (after SIGTERM): no new Janus sessions, existing ones go on.",
  labels: [],
});

export const clusterRedisUp = registry.gauge({
  name: "xrtc_cluster_redis_up",
  help: "1 while the cluster's session directory (Redis) is reachable; 0 when not, and on a single node.",
  labels: [],
});

export const clusterNodes = registry.gauge({
  name: "xrtc_cluster_nodes",
  help: "xRTC nodes of the cluster that refreshed their directory entry within the node TTL.",
  labels: [],
});

export const clusterDirectoryWrites = registry.counter({
  name: "xrtc_cluster_directory_writes_total",
  help: "Writes of this node's sessions to the cluster directory, by outcome.",
  labels: ["outcome"],
  values: { outcome: ["ok", "failed"] },
});

/** Where a request for a Janus session this node does not hold was found. */
export const LOOKUP_RESULTS = ["cached", "found", "unknown", "node_gone", "unreachable"] as const;
export type LookupResult = typeof LOOKUP_RESULTS[number];

export const clusterLookups = registry.counter({
  name: "xrtc_cluster_lookups_total",
  help: "Lookups of Janus sessions held by another node, by result.",
  labels: ["result"],
  values: { result: LOOKUP_RESULTS },
});

export const clusterForwarded = registry.counter({
  name: "xrtc_cluster_forwarded_total",
  help:
    "Client requests forwarded to the node that holds their Janus session or WHIP resource, by protocol " +
    "and outcome.",
  labels: ["protocol", "outcome"],
  values: { protocol: ["http", "ws", "whip"], outcome: ["ok", "failed"] },
});

export const udpSegmented = registry.counter({
  name: "xrtc_udp_gso_datagrams_total",
  help: "Datagrams sent as segments of one UDP GSO send (ffi backend): same destination, one size.",
  labels: [],
});

export const udpCoalesced = registry.counter({
  name: "xrtc_udp_gro_datagrams_total",
  help:
    "Datagrams received as segments of one coalesced receive (UDP GRO, ffi backend): one flow's datagrams " +
    "that arrived together.",
  labels: [],
});
