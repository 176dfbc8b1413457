// The effective configuration, after validation and defaults. routes.yml maps onto these types
// (the YAML keys of each field are in load.ts's tables).
import type { IoBackendChoice } from "../io/backend.ts";
import type { Cidr } from "../io/address.ts";
import type { Level } from "../telemetry/log.ts";

export type { IoBackendChoice };

/** Shards serving the shared UDP ports (worker threads when more than one): the most routes.yml may
 * ask for. With the main thread's shard 0 they fill the claim board's owner field. */
export const MAX_WORKERS = 62;

export interface HostPort {
  /** "" means every IPv4 interface; "::" every interface of both families. */
  host: string;
  port: number;
}

export interface NetConfig {
  addr: HostPort;
  tlsCrtFile?: string;
  tlsKeyFile?: string;
  enableIce: boolean;
  /** IPs or host names as written; resolved to IPs at start. */
  candidateIps: string[];
}

export interface RouteConfig {
  tag: string;
  /** The name of a `proto: upstream` service, or undefined when `upstreamUrl` is a literal URL. */
  upstreamService?: string;
  upstreamUrl?: string;
  icedirect: boolean;
  icetcp: boolean;
  hosts: string[];
  /** Each "ws@subprotocol" or "http". */
  protos: string[];
  paths: string[];
}

export interface HttpConfig {
  /** Empty = any host (servername "_" or ""). */
  servernames: string[];
  root?: string;
  /** A new Janus session's request: deadline for Janus's response headers (includes connecting). */
  dialTimeoutMs: number;
  /** Any other request: deadline for the upstream's response headers (longer than Janus's long-poll). */
  responseHeaderTimeoutMs: number;
  /** Idle upstream connections are closed after this long. */
  idleConnTimeoutMs: number;
  /** A client connection with no request in progress is closed after this long. */
  keepaliveTimeoutMs: number;
  /** A request's head must arrive within this long of its first byte (of the connection, for the first). */
  headerTimeoutMs: number;
  /** A request body, and an upstream response body, must arrive within this long. */
  bodyTimeoutMs: number;
  maxBodyBytes: number;
  routes: RouteConfig[];
  /** WHIP ingest endpoints (RFC 9725) into a Janus VideoRoom, beside the routes. */
  whip: WhipEndpoint[];
}

/** One WHIP endpoint: a POST of an offer to `path` publishes into a VideoRoom room. */
export interface WhipEndpoint {
  tag: string;
  /** The endpoint's URL path ("/whip/<tag>" unless set); its sessions are "<path>/<resource id>". */
  path: string;
  /** The name of a `proto: upstream` service, or undefined when `upstreamUrl` is a literal URL. */
  upstreamService?: string;
  upstreamUrl?: string;
  /** The VideoRoom room: a number, or a string for a Janus with string_ids. */
  room: number | string;
  pin?: string;
  /** The room's secret: never logged nor shown. */
  secret?: string;
  display?: string;
  /** A bearer token publishers must present (token or token_file); none when unset. */
  token?: string;
  icedirect: boolean;
  icetcp: boolean;
  /** Publishers at once on this endpoint; 0: as many as the room takes. */
  maxPublishers: number;
}

/** One Janus: its HTTP API and its WebSocket API together. */
export interface Backend {
  name: string;
  httpUrl: string;
  wsUrl: string;
}

export interface HealthConfig {
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failed probes before a backend leaves rotation, and successes before it returns. */
  fall: number;
  rise: number;
}

export type Placement = "rr" | "random" | "least_sessions";

export interface UpstreamService {
  name: string;
  proto: "upstream";
  mode: Placement;
  backends: Backend[];
  health: HealthConfig;
  /** How `servers:` entries were paired into backends, for --check-config. */
  pairing: string[];
}

export interface ListenerService {
  name: string;
  proto: "http" | "tcp" | "udp";
  net: NetConfig;
  enableHttp: boolean;
  http: HttpConfig;
}

export interface AdminService {
  name: string;
  proto: "admin";
  addr: HostPort;
  /** Bearer token required on the admin data endpoints, when set (token or token_file). */
  token?: string;
}

export interface Limits {
  /** Open client TCP connections in all; 0 = derived from the descriptor limit. */
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Janus sessions live through this node in all, and per client address. */
  maxJanusSessions: number;
  janusSessionsPerAddress: number;
  /** Janus sessions a client address may create per second (a burst of this many, refilled per second). */
  janusSessionRatePerAddress: number;
  /** ICE sessions per client address (counted at signalling). */
  iceSessionsPerAddress: number;
  handlesPerSession: number;
  /** Janus requests in flight per WebSocket. */
  inFlightPerWebSocket: number;
  /** Proxies whose X-Forwarded-For names the client (for per-address limits and logs). */
  trustedProxies: Cidr[];
}

export interface JanusTimers {
  /** Janus's session_timeout: a session xRTC has seen nothing of for longer is forgotten. */
  sessionTimeoutMs: number;
  /** Janus's reclaim_session_timeout: after a WebSocket closes, its sessions are kept this long. */
  reclaimTimeoutMs: number;
}

/** RFC 8445 §11: Tr defaults to 15 s and is never configured under it. */
export const DEFAULT_JANUS_KEEPALIVE_MS = 15_000;

export interface XrtcOptions {
  ioBackend: IoBackendChoice;
  /** UDP GSO on the ffi backend (off by itself where the kernel refuses it). */
  udpGso: boolean;
  /** UDP GRO on the ffi backend: a flow's datagrams that arrive together are received as one. */
  udpGro: boolean;
  /** RFC 7675 consent: a session silent this long is torn down. */
  consentTimeoutMs: number;
  /** Tr of xRTC's ICE agent towards Janus (RFC 8445 §11): an idle Janus leg's keepalive interval. */
  janusKeepaliveMs: number;
  /** Largest number of live ICE sessions; more are refused at signalling time. */
  maxSessions: number;
  /** Shards serving the shared UDP ports: 1 is the main thread; more are that many worker threads
   * (FFI backend), and the main thread then serves only signalling, HTTP and the TCP ports. */
  workers: number;
  /** Where a single shard's media runs: "main" (the main thread, beside signalling and HTTP), "worker"
   * (a worker thread of its own, FFI backend, as every shard does with workers above 1), or "auto" (a
   * worker with the FFI backend, the main thread with the portable one): see mediaOnWorkerThread. */
  mediaThread: "auto" | "main" | "worker";
  logLevel: Level;
  limits: Limits;
  janus: JanusTimers;
  /** Where live sessions are recorded, so a restarted or upgraded process resumes them ("" = nowhere). */
  stateDir: string;
  /** The longest a drain (the first SIGTERM) waits for live sessions to end. */
  drainTimeoutMs: number;
}

/** Several xRTC nodes sharing one session directory on Redis (routes.yml `cluster:`). */
export interface ClusterConfig {
  /** redis://[[user]:password@]host[:port][/db] */
  redisUrl: string;
  /** This node's name, unique in the cluster (the host name unless set). */
  node: string;
  /** Where the other nodes send requests for this node's sessions: its signalling listener's URL. */
  peerUrl: string;
  /** Prefix of every Redis key, so several clusters may share one Redis. */
  keyPrefix: string;
  /** A node that has not refreshed its entry for this long is gone; its sessions' entries last 3x. */
  nodeTtlMs: number;
  /** Deadline of each Redis command, and of connecting. */
  redisTimeoutMs: number;
  /** Deadline of a request forwarded to another node for its response headers. */
  forwardTimeoutMs: number;
}

export interface Config {
  file: string;
  options: XrtcOptions;
  /** Absent: a single node (the default). */
  cluster?: ClusterConfig;
  upstreams: Map<string, UpstreamService>;
  listeners: ListenerService[];
  admin?: AdminService;
}

/** Whether one shard's media runs on a worker thread, given the backend in effect. A worker waits for
 * datagrams on its own thread (one thread switch per wakeup, as a C relay), where the main thread waits
 * through Deno's reactor (two): measured in the bench's held-sessions step and at 20k packets/s, a worker
 * costs less CPU per packet and has the C relay's latency tail (README, Benchmark: "Media on a thread of its
 * own"). */
export function mediaOnWorkerThread(o: Pick<XrtcOptions, "mediaThread">, backend: string): boolean {
  return o.mediaThread === "worker" || (o.mediaThread === "auto" && backend === "ffi");
}
