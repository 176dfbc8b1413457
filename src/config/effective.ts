// The effective configuration with every default filled in, as YAML-compatible JSON (--check-config),
// written from the same field tables the loader reads with.
import { type Config, mediaOnWorkerThread } from "./types.ts";
import { CLUSTER_FIELDS, HEALTH_FIELDS, HTTP_FIELDS, OPTION_FIELDS } from "./load.ts";
import { showFields } from "./schema.ts";
import { formatHostPort } from "../io/address.ts";
import type { BackendInEffect } from "../io/backend.ts";

export function effectiveConfig(c: Config, notes: { ioBackend?: BackendInEffect } = {}): unknown {
  const options = showFields(OPTION_FIELDS, c.options);
  const inEffect = notes.ioBackend;
  if (inEffect) {
    options.io_backend_in_effect = inEffect.text;
    options.media_thread_in_effect = c.options.workers > 1
      ? `${c.options.workers} worker threads`
      : inEffect.name && mediaOnWorkerThread(c.options, inEffect.name)
      ? "worker"
      : "main";
  }
  return {
    options,
    // A single node unless a cluster is configured.
    cluster: c.cluster ? showFields(CLUSTER_FIELDS, c.cluster) : null,
    services: Object.fromEntries([
      ...[...c.upstreams.values()].map((u) => [u.name, {
        proto: "upstream",
        mode: u.mode,
        backends: u.backends.map((b) => ({ name: b.name, http: b.httpUrl, ws: b.wsUrl })),
        health: showFields(HEALTH_FIELDS, u.health),
        ...(u.pairing.length ? { servers_paired: u.pairing } : {}),
      }]),
      ...c.listeners.map((l) => [l.name, {
        proto: l.proto,
        net: {
          addr: formatHostPort(l.net.addr.host || "0.0.0.0", l.net.addr.port),
          tls_crt_file: l.net.tlsCrtFile ?? null,
          tls_key_file: l.net.tlsKeyFile ?? null,
          enable_ice: l.proto === "http" ? false : l.net.enableIce,
          candidate_ips: l.net.candidateIps,
        },
        enable_http: l.enableHttp,
        http: showFields(HTTP_FIELDS, l.http),
      }]),
      ...(c.admin
        ? [[c.admin.name, {
          proto: "admin",
          net: { addr: formatHostPort(c.admin.addr.host, c.admin.addr.port) },
          token: c.admin.token ? "(set)" : null,
        }]]
        : []),
    ]),
  };
}
