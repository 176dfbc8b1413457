// The effective configuration, after validation and defaults. routes.yml maps onto these types.

export type IoBackend = "deno" | "ffi";

export interface HostPort {
  /** "" means every interface. */
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
  dialTimeoutMs: number;
  responseHeaderTimeoutMs: number;
  idleConnTimeoutMs: number;
  keepaliveTimeoutMs: number;
  maxBodyBytes: number;
  routes: RouteConfig[];
}

export interface UpstreamService {
  name: string;
  proto: "upstream";
  mode: "rr" | "random";
  httpServers: string[];
  wsServers: string[];
}

export interface ListenerService {
  name: string;
  proto: "http" | "tcp" | "udp";
  net: NetConfig;
  enableHttp: boolean;
  http: HttpConfig;
}

export interface XrtcOptions {
  ioBackend: IoBackend;
  /** RFC 7675 consent: a session silent this long is torn down. */
  consentTimeoutMs: number;
  /** Largest number of live ICE sessions; more are refused at signalling time. */
  maxSessions: number;
  /** Shards serving the shared UDP ports: the main thread and workers-1 workers (FFI backend). */
  workers: number;
}

export interface Config {
  file: string;
  options: XrtcOptions;
  upstreams: Map<string, UpstreamService>;
  listeners: ListenerService[];
}
