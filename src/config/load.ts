// routes.yml loader: the seed's schema (services/proto/net/http), the original Go xRTC's spellings
// (candidate_hosts), string booleans. Every error names file, YAML path, line and what was expected;
// all errors are reported together. Unknown keys are warnings.
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import type {
  Config,
  HostPort,
  HttpConfig,
  IoBackend,
  ListenerService,
  NetConfig,
  RouteConfig,
  UpstreamService,
  XrtcOptions,
} from "./types.ts";
import { parseDuration } from "./duration.ts";
import { MAX_SHARDS } from "../ice/claims.ts";

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

export const DEFAULTS = {
  dialTimeoutMs: 5_000,
  // Janus holds a long-poll GET for 30 s: the header deadline must be longer.
  responseHeaderTimeoutMs: 60_000,
  idleConnTimeoutMs: 90_000,
  keepaliveTimeoutMs: 30_000,
  maxBodyBytes: 1024 * 1024,
  consentTimeoutMs: 30_000,
  maxSessions: 50_000,
} as const;

class Reader {
  errors: string[] = [];
  warnings: string[] = [];
  constructor(readonly file: string, readonly lines: LineCounter) {}

  #where(path: string, node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    const line = offset === undefined ? "" : `:${this.lines.linePos(offset).line}`;
    return `${this.file}${line}: ${path}`;
  }
  error(path: string, node: Node | null | undefined, message: string): void {
    this.errors.push(`${this.#where(path, node)}: ${message}`);
  }
  warn(path: string, node: Node | null | undefined, message: string): void {
    this.warnings.push(`${this.#where(path, node)}: ${message}`);
  }

  map(path: string, node: Node | null | undefined, known: readonly string[]): YAMLMap | undefined {
    if (node === null || node === undefined) return undefined;
    if (!isMap(node)) {
      this.error(path, node, "expected a mapping");
      return undefined;
    }
    for (const item of node.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      if (!known.includes(key)) this.warn(`${path}.${key}`, item.key as Node, "unknown key, ignored");
    }
    return node;
  }

  get(map: YAMLMap | undefined, key: string): Node | undefined {
    if (!map) return undefined;
    for (const item of map.items) {
      if (isScalar(item.key) && String(item.key.value) === key) {
        return (item.value ?? undefined) as Node | undefined;
      }
    }
    return undefined;
  }

  string(path: string, node: Node | undefined): string | undefined {
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (!isScalar(node) || typeof node.value === "object") {
      this.error(path, node, "expected a string");
      return undefined;
    }
    return String(node.value);
  }

  bool(path: string, node: Node | undefined, fallback: boolean): boolean {
    if (node === undefined || (isScalar(node) && node.value === null)) return fallback;
    if (isScalar(node)) {
      if (typeof node.value === "boolean") return node.value;
      if (node.value === "true") return true;
      if (node.value === "false") return false;
    }
    this.error(path, node, 'expected a boolean (true/false, or the strings "true"/"false")');
    return fallback;
  }

  int(path: string, node: Node | undefined, fallback: number, min: number, max: number): number {
    if (node === undefined) return fallback;
    const v = isScalar(node) ? Number(node.value) : NaN;
    if (!Number.isInteger(v) || v < min || v > max) {
      this.error(path, node, `expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return v;
  }

  duration(path: string, node: Node | undefined, fallback: number): number {
    if (node === undefined) return fallback;
    const text = isScalar(node) ? String(node.value) : "";
    const ms = parseDuration(text);
    if (ms === undefined) {
      this.error(
        path,
        node,
        'expected a duration such as "10s", "100ms", "1m30s" (a bare number is milliseconds)',
      );
      return fallback;
    }
    return ms;
  }

  stringList(path: string, node: Node | undefined): string[] {
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (isScalar(node)) {
      const s = this.string(path, node);
      return s === undefined ? [] : [s];
    }
    if (!isSeq(node)) {
      this.error(path, node, "expected a list of strings");
      return [];
    }
    const out: string[] = [];
    node.items.forEach((item, i) => {
      const s = this.string(`${path}[${i}]`, item as Node);
      if (s !== undefined) out.push(s);
    });
    return out;
  }
}

/** "ip:port", ":port", "[v6]:port". */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

const SERVICE_KEYS = ["proto", "net", "enable_http", "http", "mode", "servers", "port", "addr"];
const NET_KEYS = ["addr", "tls_crt_file", "tls_key_file", "enable_ice", "candidate_ips", "candidate_hosts"];
const HTTP_KEYS = [
  "servername",
  "root",
  "dial_timeout",
  "response_header_timeout",
  "idle_conn_timeout",
  "keepalive_timeout",
  "max_body_bytes",
  "routes",
];
const ROUTE_KEYS = ["upstream", "icedirect", "icetcp", "hosts", "protos", "paths"];
const OPTION_KEYS = ["io_backend", "consent_timeout", "max_sessions", "workers"];

export function loadConfigText(text: string, file: string): LoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(file, lines);
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    r.errors.push(`${file}:${pos.line}: YAML syntax: ${e.message.split("\n")[0]}`);
  }
  if (r.errors.length) throw new ConfigError(r.errors);

  const root = r.map("(root)", doc.contents as Node, ["services", "options"]);
  if (!root) throw new ConfigError([`${file}: (root): expected a mapping with a "services" key`]);
  const optionsNode = r.map("options", r.get(root, "options"), OPTION_KEYS);
  const backendText = r.string("options.io_backend", r.get(optionsNode, "io_backend")) ?? "deno";
  if (backendText !== "deno" && backendText !== "ffi") {
    r.error("options.io_backend", r.get(optionsNode, "io_backend"), 'expected "deno" or "ffi"');
  }
  const options: XrtcOptions = {
    ioBackend: (backendText === "ffi" ? "ffi" : "deno") as IoBackend,
    consentTimeoutMs: r.duration(
      "options.consent_timeout",
      r.get(optionsNode, "consent_timeout"),
      DEFAULTS.consentTimeoutMs,
    ),
    maxSessions: r.int(
      "options.max_sessions",
      r.get(optionsNode, "max_sessions"),
      DEFAULTS.maxSessions,
      1,
      10_000_000,
    ),
    workers: 1,
  };
  // Shards on the shared UDP ports: a number, or "auto" for one per core (SO_REUSEPORT, FFI only).
  const workersNode = r.get(optionsNode, "workers");
  if (workersNode !== undefined && isScalar(workersNode) && workersNode.value === "auto") {
    options.workers = Math.min(MAX_SHARDS, navigator.hardwareConcurrency || 1);
  } else {
    options.workers = r.int("options.workers", workersNode, 1, 1, MAX_SHARDS);
  }
  if (options.workers > 1 && options.ioBackend !== "ffi") {
    r.error("options.workers", workersNode, "more than one worker needs io_backend: ffi (SO_REUSEPORT)");
  }

  const servicesNode = r.get(root, "services");
  const services = servicesNode === undefined ? undefined : isMap(servicesNode) ? servicesNode : undefined;
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
    if (proto === "upstream") {
      const modeNode = r.get(svc, "mode");
      const mode = r.string(`${path}.mode`, modeNode) ?? "rr";
      if (mode !== "rr" && mode !== "random") r.error(`${path}.mode`, modeNode, 'expected "rr" or "random"');
      const serversNode = r.get(svc, "servers");
      const servers = r.stringList(`${path}.servers`, serversNode);
      const httpServers: string[] = [], wsServers: string[] = [];
      servers.forEach((s, i) => {
        let url: URL | undefined;
        try {
          url = new URL(s);
        } catch { /* reported below */ }
        if (url && (url.protocol === "http:" || url.protocol === "https:")) {
          httpServers.push(s.replace(/\/$/, ""));
        } else if (url && (url.protocol === "ws:" || url.protocol === "wss:")) {
          wsServers.push(s.replace(/\/$/, ""));
        } else {
          r.error(
            `${path}.servers[${i}]`,
            isSeq(serversNode) ? serversNode.items[i] as Node : serversNode,
            "expected an http(s):// or ws(s):// URL",
          );
        }
      });
      if (servers.length === 0) {
        r.error(`${path}.servers`, serversNode ?? svc, "expected at least one server URL");
      }
      upstreams.set(name, {
        name,
        proto: "upstream",
        mode: mode === "random" ? "random" : "rr",
        httpServers,
        wsServers,
      });
      continue;
    }
    if (proto !== "http" && proto !== "tcp" && proto !== "udp") {
      r.error(`${path}.proto`, protoNode ?? svc, 'expected one of "upstream", "http", "tcp", "udp"');
      continue;
    }
    const netNode = r.map(`${path}.net`, r.get(svc, "net"), NET_KEYS);
    // The Go xRTC wrote the port at service level ("port: :6443" or "addr:").
    const addrNode = r.get(netNode, "addr") ?? r.get(svc, "addr") ?? r.get(svc, "port");
    const addrText = r.string(`${path}.net.addr`, addrNode);
    const addr = addrText === undefined ? undefined : parseHostPort(addrText);
    if (!addr) {
      r.error(
        `${path}.net.addr`,
        addrNode ?? svc,
        'expected a listen address "ip:port" or ":port" (port 1-65535)',
      );
    }
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
    const http = readHttp(r, `${path}.http`, r.get(svc, "http"));
    listeners.push({ name, proto, net, enableHttp, http });
  }

  // Cross references: route upstreams, duplicate listen addresses.
  for (const l of listeners) {
    for (const route of l.http.routes) {
      if (route.upstreamService !== undefined && !upstreams.has(route.upstreamService)) {
        r.errors.push(
          `${file}: services.${l.name}.http.routes.${route.tag}.upstream: no "proto: upstream" service named "${route.upstreamService}"`,
        );
      }
    }
  }
  const seen = new Map<string, string>();
  for (const l of listeners) {
    const key = `${l.proto === "udp" ? "udp" : "tcp"}/${l.net.addr.host}:${l.net.addr.port}`;
    if (l.net.addr.port && seen.has(key)) {
      r.errors.push(
        `${file}: services.${l.name}.net.addr: ${key} is already used by services.${seen.get(key)}`,
      );
    }
    seen.set(key, l.name);
  }
  if (listeners.length === 0) {
    r.errors.push(`${file}: services: expected at least one http, tcp or udp service`);
  }
  if (r.errors.length) throw new ConfigError(r.errors);
  return { config: { file, options, upstreams, listeners }, warnings: r.warnings };
}

function readHttp(r: Reader, path: string, node: Node | undefined): HttpConfig {
  const m = r.map(path, node, HTTP_KEYS);
  const servername = r.stringList(`${path}.servername`, r.get(m, "servername"));
  const http: HttpConfig = {
    servernames: servername.filter((s) => s !== "_" && s !== "").map((s) => s.toLowerCase()),
    root: r.string(`${path}.root`, r.get(m, "root")),
    dialTimeoutMs: r.duration(`${path}.dial_timeout`, r.get(m, "dial_timeout"), DEFAULTS.dialTimeoutMs),
    responseHeaderTimeoutMs: r.duration(
      `${path}.response_header_timeout`,
      r.get(m, "response_header_timeout"),
      DEFAULTS.responseHeaderTimeoutMs,
    ),
    idleConnTimeoutMs: r.duration(
      `${path}.idle_conn_timeout`,
      r.get(m, "idle_conn_timeout"),
      DEFAULTS.idleConnTimeoutMs,
    ),
    keepaliveTimeoutMs: r.duration(
      `${path}.keepalive_timeout`,
      r.get(m, "keepalive_timeout"),
      DEFAULTS.keepaliveTimeoutMs,
    ),
    maxBodyBytes: r.int(
      `${path}.max_body_bytes`,
      r.get(m, "max_body_bytes"),
      DEFAULTS.maxBodyBytes,
      1024,
      1 << 30,
    ),
    routes: [],
  };
  const routesNode = r.get(m, "routes");
  if (routesNode !== undefined && !isMap(routesNode)) {
    r.error(`${path}.routes`, routesNode, "expected a mapping of route tags to routes");
  }
  if (routesNode !== undefined && isMap(routesNode)) {
    for (const item of routesNode.items) {
      const tag = isScalar(item.key) ? String(item.key.value) : "";
      const rp = `${path}.routes.${tag}`;
      const rm = r.map(rp, item.value as Node, ROUTE_KEYS);
      if (!rm) {
        r.error(rp, (item.value ?? item.key) as Node, "expected a route mapping");
        continue;
      }
      const upNode = r.get(rm, "upstream");
      const up = r.string(`${rp}.upstream`, upNode);
      const route: RouteConfig = {
        tag,
        icedirect: r.bool(`${rp}.icedirect`, r.get(rm, "icedirect"), false),
        icetcp: r.bool(`${rp}.icetcp`, r.get(rm, "icetcp"), false),
        hosts: r.stringList(`${rp}.hosts`, r.get(rm, "hosts")).map((h) => h.toLowerCase()),
        protos: r.stringList(`${rp}.protos`, r.get(rm, "protos")),
        paths: r.stringList(`${rp}.paths`, r.get(rm, "paths")),
      };
      if (up === undefined) {
        r.error(`${rp}.upstream`, upNode ?? rm, 'expected "http://<upstream service name>" or a server URL');
      } else {
        let url: URL | undefined;
        try {
          url = new URL(up);
        } catch { /* below */ }
        if (!url || !/^(https?|wss?):$/.test(url.protocol)) {
          r.error(
            `${rp}.upstream`,
            upNode,
            'expected "http://<upstream service name>" or an http(s)/ws(s) URL',
          );
        } else if (
          !url.port && !url.hostname.includes(".") && url.hostname !== "localhost" &&
          !url.hostname.includes(":")
        ) {
          route.upstreamService = url.hostname; // "http://janus" names the service "janus"
        } else route.upstreamUrl = up.replace(/\/$/, "");
      }
      route.protos.forEach((p, i) => {
        if (p !== "http" && !/^wss?(@[\w.-]+)?$/.test(p)) {
          r.error(`${rp}.protos[${i}]`, r.get(rm, "protos"), 'expected "http", "ws" or "ws@<subprotocol>"');
        }
      });
      route.paths.forEach((p, i) => {
        if (!p.startsWith("/")) {
          r.error(`${rp}.paths[${i}]`, r.get(rm, "paths"), 'expected a path prefix starting with "/"');
        }
      });
      if (route.icetcp && !route.icedirect) {
        r.warn(
          `${rp}.icetcp`,
          r.get(rm, "icetcp"),
          "icetcp only applies with icedirect: true (the half proxy's Janus leg is UDP)",
        );
      }
      http.routes.push(route);
    }
  }
  return http;
}

/** Chromium's restricted ports (net/base/port_util.cc); ICE candidates on them are refused. */
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
