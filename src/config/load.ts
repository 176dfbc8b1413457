// routes.yml loader: the seed's schema (services/proto/net/http), the original Go xRTC's spellings
// (candidate_hosts, a service-level port), string booleans, and xRTC's extensions (options, upstream
// backends with health checks, the admin listener). Every error names file, YAML path, line and what was
// expected; all errors are reported together. Unknown keys are warnings. Each section's keys and
// defaults are in one table (schema.ts) that --check-config's effective configuration shows.
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import {
  type AdminService,
  type Backend,
  type ClusterConfig,
  type Config,
  DEFAULT_JANUS_KEEPALIVE_MS,
  type HealthConfig,
  type HttpConfig,
  type JanusTimers,
  type Limits,
  type ListenerService,
  MAX_WORKERS,
  type NetConfig,
  type RouteConfig,
  type UpstreamService,
  type WhipEndpoint,
  type XrtcOptions,
} from "./types.ts";
import { type Field, field, type Fields, Reader, readFields } from "./schema.ts";
import { type EnvLookup, expandEnv, processEnv } from "./env.ts";
import { formatIp, parseCidr, parseHostPort } from "../io/address.ts";
import { LEVELS } from "../telemetry/log.ts";

export { parseHostPort };

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

export interface LoadResult {
  config: Config;
  warnings: string[];
}

export const JANUS_FIELDS: Fields<JanusTimers> = {
  session_timeout: field.duration("sessionTimeoutMs", 60_000),
  reclaim_timeout: field.duration("reclaimTimeoutMs", 0),
};

export const LIMIT_FIELDS: Fields<Limits> = {
  max_connections: field.int("maxConnections", 0, 0, 10_000_000),
  max_connections_per_address: field.int("maxConnectionsPerAddress", 512, 1, 10_000_000),
  max_janus_sessions: field.int("maxJanusSessions", 100_000, 1, 10_000_000),
  janus_sessions_per_address: field.int("janusSessionsPerAddress", 1_000, 1, 10_000_000),
  janus_session_rate_per_address: field.int("janusSessionRatePerAddress", 20, 1, 1_000_000),
  ice_sessions_per_address: field.int("iceSessionsPerAddress", 1_000, 1, 10_000_000),
  handles_per_session: field.int("handlesPerSession", 64, 1, 10_000),
  in_flight_per_websocket: field.int("inFlightPerWebSocket", 256, 1, 100_000),
  trusted_proxies: {
    read: (r, path, node, t) => {
      t.trustedProxies = [];
      r.stringList(path, node).forEach((text, i) => {
        const c = parseCidr(text);
        if (c) t.trustedProxies.push(c);
        else r.error(`${path}[${i}]`, node, 'expected an address or CIDR block ("10.0.0.0/8", "fd00::/8")');
      });
    },
    show: (t) => t.trustedProxies.map((c) => `${formatIp(c.bytes)}/${c.bits}`),
  },
};

const MEDIA_THREAD = field.oneOf<XrtcOptions, "auto" | "main" | "worker">(
  "mediaThread",
  ["auto", "main", "worker"],
  "auto",
);

export const OPTION_FIELDS: Fields<XrtcOptions> = {
  // The batched libc backend where it loads (Linux, FFI permitted), else the portable one with a notice.
  io_backend: field.oneOf("ioBackend", ["auto", "deno", "ffi"] as const, "auto"),
  // Datagrams of one size to one destination in a flush leave as one segmented send (ffi backend).
  udp_gso: field.bool("udpGso", true),
  // One flow's datagrams that arrive together (NIC or veth GRO, a GSO sender on the host) are received
  // as one and split by xRTC (ffi backend).
  udp_gro: field.bool("udpGro", true),
  consent_timeout: field.duration("consentTimeoutMs", 30_000),
  // xRTC's Tr towards Janus: an idle leg's Binding indication. Never under 15 s (RFC 8445 §11); where no
  // NAT sits between xRTC and Janus it can be much longer.
  janus_keepalive: field.duration("janusKeepaliveMs", DEFAULT_JANUS_KEEPALIVE_MS, {
    ms: DEFAULT_JANUS_KEEPALIVE_MS,
    why: "RFC 8445 §11: Tr is never configured under 15 seconds",
  }),
  max_sessions: field.int("maxSessions", 50_000, 1, 10_000_000),
  // Shards on the shared UDP ports: a number, or "auto" for one per core (SO_REUSEPORT, FFI only).
  workers: {
    read: (r, path, node, t) => {
      if (node !== undefined && isScalar(node) && node.value === "auto") {
        t.workers = Math.min(MAX_WORKERS, navigator.hardwareConcurrency || 1);
      } else t.workers = r.int(path, node, 1, 1, MAX_WORKERS);
      if (t.workers > 1 && t.ioBackend === "deno") {
        r.error(path, node, "more than one worker needs io_backend: ffi or auto (SO_REUSEPORT)");
      }
    },
    show: (t) => t.workers,
  },
  // With one shard, its media on the main thread or on a worker thread of its own (FFI only); auto: a
  // worker thread where the ffi backend is in effect.
  media_thread: {
    read: (r, path, node, t) => {
      MEDIA_THREAD.read(r, path, node, t);
      if (t.mediaThread === "worker" && t.ioBackend === "deno") {
        r.error(path, node, "media on a worker thread needs io_backend: ffi or auto");
      }
    },
    show: (t) => t.mediaThread,
  },
  log_level: field.oneOf("logLevel", LEVELS, "info"),
  state_dir: {
    read: (r, path, node, t) => t.stateDir = r.string(path, node) ?? "",
    show: (t) => t.stateDir || null,
  },
  drain_timeout: field.duration("drainTimeoutMs", 3_600_000),
  limits: {
    read: (r, path, node, t) => readFields(r, path, node, LIMIT_FIELDS, t.limits),
    show: (t) => showSection(LIMIT_FIELDS, t.limits),
  },
  janus: {
    read: (r, path, node, t) => readFields(r, path, node, JANUS_FIELDS, t.janus),
    show: (t) => showSection(JANUS_FIELDS, t.janus),
  },
};

export const CLUSTER_FIELDS: Fields<ClusterConfig> = {
  redis: {
    read: (r, path, node, t) => {
      t.redisUrl = r.string(path, node) ?? "";
      let url: URL | undefined;
      try {
        url = new URL(t.redisUrl);
      } catch { /* below */ }
      if (url?.protocol !== "redis:" || !url.hostname) {
        r.error(path, node, 'expected a Redis URL, "redis://host:6379" (user, password and /db optional)');
      }
    },
    // The password never shows.
    show: (t) => t.redisUrl.replace(/\/\/[^@/]*@/, "//***@"),
  },
  node: {
    read: (r, path, node, t) => {
      t.node = r.string(path, node) ?? Deno.hostname();
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(t.node)) {
        r.error(path, node, "expected a node name: letters, digits, '.', '_', '-' (at most 63)");
      }
    },
    show: (t) => t.node,
  },
  peer_url: {
    read: (r, path, node, t) => {
      t.peerUrl = (r.string(path, node) ?? "").replace(/\/+$/, "");
      let url: URL | undefined;
      try {
        url = new URL(t.peerUrl);
      } catch { /* below */ }
      if (!url || !/^https?:$/.test(url.protocol) || url.pathname !== "/") {
        r.error(path, node, 'expected this node\'s signalling URL for the other nodes, "http://host:port"');
      }
    },
    show: (t) => t.peerUrl,
  },
  key_prefix: {
    read: (r, path, node, t) => t.keyPrefix = r.string(path, node) ?? "xrtc",
    show: (t) => t.keyPrefix,
  },
  node_ttl: field.duration("nodeTtlMs", 10_000),
  redis_timeout: field.duration("redisTimeoutMs", 1_000),
  forward_timeout: field.duration("forwardTimeoutMs", 60_000),
};

function showSection<T>(fields: Fields<T>, t: T): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.show(t)]));
}

export const HTTP_FIELDS: Fields<HttpConfig> = {
  servername: {
    read: (r, path, node, t) => {
      t.servernames = r.stringList(path, node).filter((s) => s !== "_" && s !== "").map((s) =>
        s.toLowerCase()
      );
    },
    show: (t) => t.servernames.length ? t.servernames : "_",
  },
  root: field.optionalString("root"),
  dial_timeout: field.duration("dialTimeoutMs", 5_000),
  // Janus holds a long-poll GET for 30 s: the header deadline must be longer.
  response_header_timeout: field.duration("responseHeaderTimeoutMs", 60_000),
  idle_conn_timeout: field.duration("idleConnTimeoutMs", 90_000),
  keepalive_timeout: field.duration("keepaliveTimeoutMs", 30_000),
  header_timeout: field.duration("headerTimeoutMs", 10_000),
  body_timeout: field.duration("bodyTimeoutMs", 30_000),
  max_body_bytes: field.int("maxBodyBytes", 1024 * 1024, 1024, 1 << 30),
  routes: {
    read: (r, path, node, t) => t.routes = readRoutes(r, path, node),
    show: (t) => Object.fromEntries(t.routes.map((route) => [route.tag, showSection(ROUTE_FIELDS, route)])),
  },
  whip: {
    read: (r, path, node, t) => t.whip = readWhip(r, path, node),
    show: (t) => Object.fromEntries(t.whip.map((w) => [w.tag, showSection(WHIP_FIELDS, w)])),
  },
};

/** How a secret shows in the effective configuration: whether it is set, never its value. */
const SECRET_SHOWN = (v: string | undefined) => v === undefined ? null : "(set)";

export const WHIP_FIELDS: Fields<WhipEndpoint> = {
  path: {
    read: (r, path, node, w) => {
      const p = r.string(path, node) ?? `/whip/${w.tag}`;
      if (!/^\/[\w./~-]*$/.test(p) || p.endsWith("/")) {
        r.error(path, node, 'expected a URL path starting with "/" (not ending with "/")');
      }
      w.path = p;
    },
    show: (w) => w.path,
  },
  upstream: upstreamField(),
  room: {
    read: (r, path, node, w) => {
      const v = r.string(path, node);
      if (v === undefined || v === "") {
        r.error(path, node, "expected the VideoRoom room (a number, or a string with string_ids)");
        w.room = 0;
        return;
      }
      w.room = /^[1-9][0-9]{0,15}$/.test(v) ? Number(v) : v;
    },
    show: (w) => w.room,
  },
  pin: { read: (r, path, node, w) => w.pin = r.string(path, node), show: (w) => SECRET_SHOWN(w.pin) },
  secret: {
    read: (r, path, node, w) => w.secret = r.string(path, node),
    show: (w) => SECRET_SHOWN(w.secret),
  },
  display: field.optionalString("display"),
  token: {
    read: (r, path, node, w) => w.token = r.string(path, node),
    show: (w) => SECRET_SHOWN(w.token),
  },
  token_file: {
    read: (r, path, node, w) => {
      const file = r.string(path, node);
      if (file === undefined) return;
      try {
        w.token = Deno.readTextFileSync(file).trim();
      } catch (e) {
        r.error(path, node, `cannot read: ${e instanceof Error ? e.message : e}`);
      }
    },
    show: () => null,
  },
  icedirect: field.bool("icedirect", false),
  icetcp: field.bool("icetcp", false),
  max_publishers: field.int("maxPublishers", 0, 0, 1_000_000),
};

/** A route's or WHIP endpoint's `upstream`: an upstream service ("http://janus") or a server URL. */
function upstreamField<T extends { upstreamService?: string; upstreamUrl?: string }>(): Field<T> {
  return {
    read: (r, path, node, route) => {
      const up = r.string(path, node);
      if (up === undefined) {
        r.error(path, node, 'expected "http://<upstream service name>" or a server URL');
        return;
      }
      let url: URL | undefined;
      try {
        url = new URL(up);
      } catch { /* below */ }
      if (!url || !/^(https?|wss?):$/.test(url.protocol)) {
        r.error(path, node, 'expected "http://<upstream service name>" or an http(s)/ws(s) URL');
      } else if (
        !url.port && !url.hostname.includes(".") && url.hostname !== "localhost" &&
        !url.hostname.includes(":") &&
        !url.hostname.includes("[")
      ) {
        route.upstreamService = url.hostname; // "http://janus" names the service "janus"
      } else route.upstreamUrl = up.replace(/\/$/, "");
    },
    show: (route) =>
      route.upstreamService !== undefined ? `http://${route.upstreamService}` : route.upstreamUrl,
  };
}

export const ROUTE_FIELDS: Fields<RouteConfig> = {
  upstream: upstreamField(),
  icedirect: field.bool("icedirect", false),
  icetcp: field.bool("icetcp", false),
  hosts: {
    read: (r, path, node, route) => route.hosts = r.stringList(path, node).map((h) => h.toLowerCase()),
    show: (route) => route.hosts,
  },
  protos: {
    read: (r, path, node, route) => {
      route.protos = r.stringList(path, node);
      route.protos.forEach((p, i) => {
        if (p !== "http" && !/^wss?(@[\w.-]+)?$/.test(p)) {
          r.error(`${path}[${i}]`, node, 'expected "http", "ws" or "ws@<subprotocol>"');
        }
      });
    },
    show: (route) => route.protos,
  },
  paths: {
    read: (r, path, node, route) => {
      route.paths = r.stringList(path, node);
      route.paths.forEach((p, i) => {
        if (!p.startsWith("/")) r.error(`${path}[${i}]`, node, 'expected a path prefix starting with "/"');
      });
    },
    show: (route) => route.paths,
  },
};

export const HEALTH_FIELDS: Fields<HealthConfig> = {
  interval: field.duration("intervalMs", 5_000),
  timeout: field.duration("timeoutMs", 2_000),
  fall: field.int("fall", 2, 1, 100),
  rise: field.int("rise", 1, 1, 100),
};

const SERVICE_KEYS = [
  "proto",
  "net",
  "enable_http",
  "http",
  "mode",
  "servers",
  "backends",
  "health",
  "port",
  "addr",
  "token",
  "token_file",
];
const NET_KEYS = ["addr", "tls_crt_file", "tls_key_file", "enable_ice", "candidate_ips", "candidate_hosts"];
const BACKEND_KEYS = ["name", "http", "ws"];
const PLACEMENTS = ["rr", "random", "least_sessions"] as const;

export function defaultOptions(): XrtcOptions {
  return readDefaults(OPTION_FIELDS, {
    limits: readDefaults(LIMIT_FIELDS, {} as Limits),
    janus: readDefaults(JANUS_FIELDS, {} as JanusTimers),
  } as XrtcOptions);
}

/** A section with every field at its default. */
function readDefaults<T>(fields: Fields<T>, target: T): T {
  const r = new Reader("(defaults)", new LineCounter());
  for (const [key, f] of Object.entries(fields)) f.read(r, key, undefined, target);
  return target;
}

/** `env` resolves "${XRTC_NAME}" references in values (env.ts); the process's environment by default. */
export function loadConfigText(text: string, file: string, env: EnvLookup = processEnv): LoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(file, lines);
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    r.errors.push(`${file}:${pos.line}: YAML syntax: ${e.message.split("\n")[0]}`);
  }
  if (r.errors.length) throw new ConfigError(r.errors);
  expandEnv(doc, r, env);

  const root = r.map("(root)", doc.contents as Node, ["services", "options", "cluster"]);
  if (!root) throw new ConfigError([`${file}: (root): expected a mapping with a "services" key`]);
  const options = defaultOptions();
  readFields(r, "options", r.get(root, "options"), OPTION_FIELDS, options);
  const clusterNode = r.get(root, "cluster");
  let cluster: ClusterConfig | undefined;
  if (clusterNode !== undefined && !(isScalar(clusterNode) && clusterNode.value === null)) {
    cluster = {} as ClusterConfig;
    readFields(r, "cluster", clusterNode, CLUSTER_FIELDS, cluster);
    if (cluster.nodeTtlMs < 1_000) r.error("cluster.node_ttl", r.get(root, "cluster"), "at least 1s");
  }

  const servicesNode = r.get(root, "services");
  const services = servicesNode !== undefined && isMap(servicesNode) ? servicesNode : undefined;
  if (!services) {
    r.error(
      "services",
      servicesNode ?? doc.contents as Node,
      "expected a mapping of service names to services",
    );
    throw new ConfigError(r.errors);
  }

  const upstreams = new Map<string, UpstreamService>();
  const listeners: ListenerService[] = [];
  let admin: AdminService | undefined;
  for (const item of services.items) {
    const name = isScalar(item.key) ? String(item.key.value) : "";
    const path = `services.${name}`;
    const svc = r.map(path, item.value as Node, SERVICE_KEYS);
    if (!svc) {
      r.error(path, (item.value ?? item.key) as Node, "expected a service mapping");
      continue;
    }
    const protoNode = r.get(svc, "proto");
    const proto = r.string(`${path}.proto`, protoNode);
    if (proto === "upstream") upstreams.set(name, readUpstream(r, path, name, svc));
    else if (proto === "admin") {
      if (admin) {
        r.error(`${path}.proto`, protoNode, `only one admin service, and services.${admin.name} is one`);
      }
      admin = readAdmin(r, path, name, svc);
    } else if (proto === "http" || proto === "tcp" || proto === "udp") {
      listeners.push(readListener(r, path, name, proto, svc));
    } else {
      r.error(`${path}.proto`, protoNode ?? svc, 'expected one of "upstream", "http", "tcp", "udp", "admin"');
    }
  }

  // Cross references: route upstreams, duplicate listen addresses.
  for (const l of listeners) {
    for (const w of l.http.whip) {
      if (w.upstreamService !== undefined && !upstreams.has(w.upstreamService)) {
        r.errors.push(
          `${file}: services.${l.name}.http.whip.${w.tag}.upstream: no "proto: upstream" service named "${w.upstreamService}"`,
        );
      }
    }
    for (const route of l.http.routes) {
      if (route.upstreamService !== undefined && !upstreams.has(route.upstreamService)) {
        r.errors.push(
          `${file}: services.${l.name}.http.routes.${route.tag}.upstream: no "proto: upstream" service named "${route.upstreamService}"`,
        );
      }
    }
  }
  const seen = new Map<string, string>();
  const taken = [
    ...listeners.map((l) => ({
      name: l.name,
      key: `${l.proto === "udp" ? "udp" : "tcp"}/${l.net.addr.host}:${l.net.addr.port}`,
      port: l.net.addr.port,
    })),
    ...(admin
      ? [{ name: admin.name, key: `tcp/${admin.addr.host}:${admin.addr.port}`, port: admin.addr.port }]
      : []),
  ];
  for (const t of taken) {
    if (t.port && seen.has(t.key)) {
      r.errors.push(
        `${file}: services.${t.name}.net.addr: ${t.key} is already used by services.${seen.get(t.key)}`,
      );
    }
    seen.set(t.key, t.name);
  }
  if (listeners.length === 0) {
    r.errors.push(`${file}: services: expected at least one http, tcp or udp service`);
  }
  if (r.errors.length) throw new ConfigError(r.errors);
  // A relative http.root or state_dir is relative to the config file.
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ".";
  for (const l of listeners) {
    if (l.http.root && !l.http.root.startsWith("/")) l.http.root = `${dir}/${l.http.root}`;
  }
  if (options.stateDir && !options.stateDir.startsWith("/")) options.stateDir = `${dir}/${options.stateDir}`;
  return { config: { file, options, cluster, upstreams, listeners, admin }, warnings: r.warnings };
}

function readUpstream(r: Reader, path: string, name: string, svc: YAMLMap): UpstreamService {
  const modeNode = r.get(svc, "mode");
  const mode = r.string(`${path}.mode`, modeNode) ?? "rr";
  if (!PLACEMENTS.includes(mode as typeof PLACEMENTS[number])) {
    r.error(`${path}.mode`, modeNode, `expected one of ${PLACEMENTS.map((p) => `"${p}"`).join(", ")}`);
  }
  const health = readDefaults(HEALTH_FIELDS, {} as HealthConfig);
  readFields(r, `${path}.health`, r.get(svc, "health"), HEALTH_FIELDS, health);
  const backends: Backend[] = [];
  const pairing: string[] = [];
  const backendsNode = r.get(svc, "backends");
  if (backendsNode !== undefined) {
    if (!isSeq(backendsNode)) {
      r.error(`${path}.backends`, backendsNode, "expected a list of backends (name, http, ws)");
    } else {
      backendsNode.items.forEach((item, i) => {
        const bp = `${path}.backends[${i}]`;
        const m = r.map(bp, item as Node, BACKEND_KEYS);
        if (!m) return r.error(bp, item as Node, "expected a mapping with name, http and ws");
        const http = checkUrl(r, `${bp}.http`, r.get(m, "http"), ["http:", "https:"]);
        const ws = checkUrl(r, `${bp}.ws`, r.get(m, "ws"), ["ws:", "wss:"]);
        if (http && ws) {
          const bname = r.string(`${bp}.name`, r.get(m, "name")) ?? new URL(http).host;
          backends.push({ name: bname, httpUrl: http, wsUrl: ws });
        }
      });
    }
  }
  const serversNode = r.get(svc, "servers");
  if (serversNode !== undefined) backends.push(...pairServers(r, path, serversNode, pairing));
  if (backends.length === 0) {
    r.error(`${path}.servers`, serversNode ?? svc, "expected at least one server URL");
  }
  const names = new Set<string>();
  for (const b of backends) {
    if (names.has(b.name)) {
      r.error(`${path}.backends`, backendsNode ?? serversNode, `backend name "${b.name}" is used twice`);
    }
    names.add(b.name);
  }
  return { name, proto: "upstream", mode: mode as UpstreamService["mode"], backends, health, pairing };
}

function checkUrl(r: Reader, path: string, node: Node | undefined, protocols: string[]): string | undefined {
  const text = r.string(path, node);
  let url: URL | undefined;
  try {
    url = text === undefined ? undefined : new URL(text);
  } catch { /* below */ }
  if (!url || !protocols.includes(url.protocol)) {
    r.error(path, node, `expected a ${protocols.map((p) => p.slice(0, -1)).join(" or ")} URL`);
    return undefined;
  }
  return text!.replace(/\/$/, "");
}

/** The seed's `servers:` list holds HTTP and WS URLs apart: one Janus is the pair with the same host, in
 * order. A URL without a partner gets the other API at Janus's default port on the same host. */
function pairServers(r: Reader, path: string, node: Node, pairing: string[]): Backend[] {
  const servers = r.stringList(`${path}.servers`, node);
  const http: URL[] = [], ws: URL[] = [];
  servers.forEach((s, i) => {
    let url: URL | undefined;
    try {
      url = new URL(s);
    } catch { /* reported below */ }
    if (url && (url.protocol === "http:" || url.protocol === "https:")) http.push(url);
    else if (url && (url.protocol === "ws:" || url.protocol === "wss:")) ws.push(url);
    else {r.error(
        `${path}.servers[${i}]`,
        isSeq(node) ? node.items[i] as Node : node,
        "expected an http(s):// or ws(s):// URL",
      );}
  });
  const text = (u: URL) => u.href.replace(/\/$/, "");
  const out: Backend[] = [];
  const wsLeft = [...ws];
  for (const h of http) {
    const i = wsLeft.findIndex((w) => w.hostname === h.hostname);
    const partner = i >= 0 ? wsLeft.splice(i, 1)[0] : undefined;
    const wsUrl = partner
      ? text(partner)
      : `${h.protocol === "https:" ? "wss" : "ws"}://${h.hostname}:8188${h.pathname.replace(/\/$/, "")}`;
    out.push({ name: h.host, httpUrl: text(h), wsUrl });
    pairing.push(
      `${text(h)} + ${wsUrl}${partner ? "" : " (no ws server on this host: Janus's default port assumed)"}`,
    );
  }
  for (const w of wsLeft) {
    const httpUrl = `${w.protocol === "wss:" ? "https" : "http"}://${w.hostname}:8088`;
    out.push({ name: w.host, httpUrl, wsUrl: text(w) });
    pairing.push(`${httpUrl} + ${text(w)} (no http server on this host: Janus's default port assumed)`);
  }
  return out;
}

function readListener(
  r: Reader,
  path: string,
  name: string,
  proto: "http" | "tcp" | "udp",
  svc: YAMLMap,
): ListenerService {
  const netNode = r.map(`${path}.net`, r.get(svc, "net"), NET_KEYS);
  // The Go xRTC wrote the port at service level ("port: :6443" or "addr:").
  const addrNode = r.get(netNode, "addr") ?? r.get(svc, "addr") ?? r.get(svc, "port");
  const addr = readAddr(r, `${path}.net.addr`, addrNode ?? svc, addrNode);
  const crtNode = r.get(netNode, "tls_crt_file"), keyNode = r.get(netNode, "tls_key_file");
  const net: NetConfig = {
    addr: addr ?? { host: "", port: 0 },
    tlsCrtFile: r.string(`${path}.net.tls_crt_file`, crtNode),
    tlsKeyFile: r.string(`${path}.net.tls_key_file`, keyNode),
    enableIce: r.bool(`${path}.net.enable_ice`, r.get(netNode, "enable_ice"), proto !== "http"),
    candidateIps: [
      ...r.stringList(`${path}.net.candidate_ips`, r.get(netNode, "candidate_ips")),
      ...r.stringList(`${path}.net.candidate_hosts`, r.get(netNode, "candidate_hosts")),
    ],
  };
  if ((net.tlsCrtFile === undefined) !== (net.tlsKeyFile === undefined)) {
    r.error(`${path}.net`, netNode, "tls_crt_file and tls_key_file must be set together");
  }
  if (proto === "udp" && (net.tlsCrtFile || net.tlsKeyFile)) {
    r.warn(`${path}.net`, netNode, "TLS files are ignored on a udp service");
  }
  if (proto === "http" && net.enableIce && r.get(netNode, "enable_ice") !== undefined) {
    r.warn(
      `${path}.net.enable_ice`,
      r.get(netNode, "enable_ice"),
      "enable_ice is only used by udp and tcp services",
    );
  }
  if (proto !== "http" && net.enableIce && net.candidateIps.length === 0) {
    r.error(
      `${path}.net.candidate_ips`,
      netNode ?? svc,
      "enable_ice needs at least one candidate IP or host name (the address clients reach)",
    );
  }
  if (addr && proto !== "http" && net.enableIce && RESTRICTED_BROWSER_PORTS.has(addr.port)) {
    r.warn(
      `${path}.net.addr`,
      addrNode,
      `port ${addr.port} is on Chromium's restricted port list: browsers will refuse ICE candidates on it`,
    );
  }
  const enableHttpNode = r.get(svc, "enable_http");
  const enableHttp = proto === "http" ? true : r.bool(`${path}.enable_http`, enableHttpNode, false);
  if (proto === "udp" && enableHttpNode !== undefined) {
    r.warn(`${path}.enable_http`, enableHttpNode, "enable_http is only used by tcp services");
  }
  const http = {} as HttpConfig;
  readFields(r, `${path}.http`, r.get(svc, "http"), HTTP_FIELDS, http);
  return { name, proto, net, enableHttp, http };
}

function readAddr(r: Reader, path: string, at: Node, node: Node | undefined) {
  const text = r.string(path, node);
  const addr = text === undefined ? undefined : parseHostPort(text);
  if (!addr) r.error(path, at, 'expected a listen address "ip:port" or ":port" (port 1-65535)');
  return addr;
}

/** The admin listener when routes.yml names none: loopback only, beside the shipped ports (not 9090,
 * which a Prometheus on the same host takes). */
const DEFAULT_ADMIN_ADDR = { host: "127.0.0.1", port: 6090 };

function readAdmin(r: Reader, path: string, name: string, svc: YAMLMap): AdminService {
  const netNode = r.map(`${path}.net`, r.get(svc, "net"), ["addr"]);
  const addrNode = r.get(netNode, "addr") ?? r.get(svc, "addr");
  const addr = addrNode === undefined
    ? DEFAULT_ADMIN_ADDR
    : readAddr(r, `${path}.net.addr`, addrNode, addrNode);
  let token = r.string(`${path}.token`, r.get(svc, "token"));
  const tokenFile = r.string(`${path}.token_file`, r.get(svc, "token_file"));
  if (tokenFile !== undefined) {
    try {
      token = Deno.readTextFileSync(tokenFile).trim();
    } catch (e) {
      r.error(
        `${path}.token_file`,
        r.get(svc, "token_file"),
        `cannot read: ${e instanceof Error ? e.message : e}`,
      );
    }
  }
  if (token !== undefined && token.length < 16) {
    r.error(`${path}.token`, r.get(svc, "token"), "expected a token of at least 16 characters");
  }
  return { name, proto: "admin", addr: addr ?? DEFAULT_ADMIN_ADDR, token };
}

function readRoutes(r: Reader, path: string, node: Node | undefined): RouteConfig[] {
  const out: RouteConfig[] = [];
  if (node === undefined) return out;
  if (!isMap(node)) {
    r.error(`${path}`, node, "expected a mapping of route tags to routes");
    return out;
  }
  for (const item of node.items) {
    const tag = isScalar(item.key) ? String(item.key.value) : "";
    const rp = `${path}.${tag}`;
    if (!isMap(item.value as Node)) {
      r.error(rp, (item.value ?? item.key) as Node, "expected a route mapping");
      continue;
    }
    const route = { tag } as RouteConfig;
    readFields(r, rp, item.value as Node, ROUTE_FIELDS, route);
    if (route.icetcp && !route.icedirect) {
      r.warn(
        `${rp}.icetcp`,
        r.get(item.value as YAMLMap, "icetcp"),
        "icetcp only applies with icedirect: true (the half proxy's Janus leg is UDP)",
      );
    }
    out.push(route);
  }
  return out;
}

function readWhip(r: Reader, path: string, node: Node | undefined): WhipEndpoint[] {
  const out: WhipEndpoint[] = [];
  if (node === undefined || (isScalar(node) && node.value === null)) return out;
  if (!isMap(node)) {
    r.error(path, node, "expected a mapping of WHIP endpoint tags to endpoints");
    return out;
  }
  for (const item of node.items) {
    const tag = isScalar(item.key) ? String(item.key.value) : "";
    const wp = `${path}.${tag}`;
    if (!/^[\w.-]{1,64}$/.test(tag)) {
      r.error(wp, item.key as Node, "expected a tag of letters, digits, _ . -");
    }
    if (!isMap(item.value as Node)) {
      r.error(wp, (item.value ?? item.key) as Node, "expected a WHIP endpoint mapping");
      continue;
    }
    const w = { tag } as WhipEndpoint;
    const m = readFields(r, wp, item.value as Node, WHIP_FIELDS, w);
    if (r.get(m, "upstream") === undefined) r.error(`${wp}.upstream`, item.value as Node, "required");
    if (r.get(m, "room") === undefined) r.error(`${wp}.room`, item.value as Node, "required");
    if (w.token !== undefined && w.token.length < 16) {
      r.error(
        `${wp}.token`,
        r.get(m, "token") ?? r.get(m, "token_file"),
        "expected a token of at least 16 characters",
      );
    }
    if (w.icetcp && !w.icedirect) {
      r.warn(`${wp}.icetcp`, r.get(m, "icetcp"), "icetcp only applies with icedirect: true");
    }
    if (out.some((o) => o.path === w.path)) {
      r.error(
        `${wp}.path`,
        r.get(m, "path") ?? item.key as Node,
        `${w.path} is already a WHIP endpoint's path`,
      );
    }
    out.push(w);
  }
  return out;
}

/** Chromium's restricted ports (its net/base/port_util.cc); ICE candidates on them are refused. */
export const RESTRICTED_BROWSER_PORTS = new Set([
  1,
  7,
  9,
  11,
  13,
  15,
  17,
  19,
  20,
  21,
  22,
  23,
  25,
  37,
  42,
  43,
  53,
  69,
  77,
  79,
  87,
  95,
  101,
  102,
  103,
  104,
  109,
  110,
  111,
  113,
  115,
  117,
  119,
  123,
  135,
  137,
  139,
  143,
  161,
  179,
  389,
  427,
  465,
  512,
  513,
  514,
  515,
  526,
  530,
  531,
  532,
  540,
  548,
  554,
  556,
  563,
  587,
  601,
  636,
  989,
  990,
  993,
  995,
  1719,
  1720,
  1723,
  2049,
  3659,
  4045,
  4190,
  5060,
  5061,
  6000,
  6566,
  6665,
  6666,
  6667,
  6668,
  6669,
  6679,
  6697,
  10080,
]);

export async function loadConfigFile(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ConfigError([`${file}: cannot read: ${e instanceof Error ? e.message : String(e)}`]);
  }
  return loadConfigText(text, file);
}
