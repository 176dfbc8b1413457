import assert from "node:assert/strict";
import { ConfigError, loadConfigText, parseHostPort } from "./load.ts";
import { parseDuration } from "./duration.ts";
import { effectiveConfig } from "./effective.ts";
import { mediaOnWorkerThread } from "./types.ts";

const SEED = `
services:
  udpsvr:
    proto: udp
    net:
      addr: :6001
      enable_ice: true
      candidate_ips:
        - 127.0.0.1
  tcpsvr:
    proto: tcp
    net:
      addr: :6443
      tls_crt_file: /tmp/etc/cert.pem
      tls_key_file: /tmp/etc/cert.key
      enable_ice: "true"
      candidate_ips: [127.0.0.1]
    enable_http: "true"
    http:
      servername: _
      root: /tmp/html
`;

function errorsOf(text: string): string[] {
  try {
    loadConfigText(text, "r.yml");
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

Deno.test("the seed's routes.yml schema loads unchanged, string booleans included", () => {
  const { config, warnings } = loadConfigText(SEED, "seed.yml");
  assert.deepEqual(warnings, []);
  const [udp, tcp] = config.listeners;
  assert.deepEqual(udp.net.addr, { host: "", port: 6001 });
  assert.equal(udp.proto, "udp");
  assert.ok(tcp.net.enableIce && tcp.enableHttp);
  assert.equal(tcp.net.tlsCrtFile, "/tmp/etc/cert.pem");
  assert.deepEqual(tcp.http.servernames, []);
  assert.equal(tcp.http.root, "/tmp/html");
});

Deno.test("the shipped routes.yml is valid and has one udp, one tcp and one http service", () => {
  const { config, warnings } = loadConfigText(
    Deno.readTextFileSync(new URL("../../routes.yml", import.meta.url)),
    "routes.yml",
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.listeners.map((l) => l.proto), ["udp", "tcp", "http"]);
  assert.equal(config.upstreams.get("janus")?.backends[0].httpUrl, "http://127.0.0.1:8088");
  const route = config.listeners[2].http.routes[0];
  assert.equal(route.tag, "janus");
  assert.equal(route.upstreamService, "janus");
  assert.ok(config.listeners.every((l) => l.net.addr.port !== 6000));
});

Deno.test("upstreams, routes, durations and the Go xRTC's candidate_hosts", () => {
  const { config } = loadConfigText(
    `
services:
  janus: { proto: upstream, mode: random, servers: [http://10.1.1.1:8088, "ws://10.1.1.1:8188/"] }
  web:
    proto: http
    net: { addr: "0.0.0.0:8080" }
    http:
      servername: [example.com, "*.example.org"]
      dial_timeout: 2s
      response_header_timeout: 1m30s
      idle_conn_timeout: 250ms
      keepalive_timeout: 1500
      routes:
        janus: { upstream: http://janus, icedirect: "true", icetcp: true, hosts: [Example.com], protos: [ws@janus-protocol, http], paths: [/janus] }
        other: { upstream: "http://127.0.0.1:9000/" }
  ice: { proto: udp, net: { addr: "[::1]:6001", candidate_hosts: [localhost] } }
`,
    "x.yml",
  );
  const u = config.upstreams.get("janus")!;
  assert.equal(u.mode, "random");
  assert.deepEqual(u.backends.map((b) => b.wsUrl), ["ws://10.1.1.1:8188"]);
  const web = config.listeners[0];
  assert.deepEqual(web.http.servernames, ["example.com", "*.example.org"]);
  assert.equal(web.http.dialTimeoutMs, 2000);
  assert.equal(web.http.responseHeaderTimeoutMs, 90_000);
  assert.equal(web.http.idleConnTimeoutMs, 250);
  assert.equal(web.http.keepaliveTimeoutMs, 1500);
  const [janus, other] = web.http.routes;
  assert.ok(janus.icedirect && janus.icetcp);
  assert.deepEqual(janus.hosts, ["example.com"]);
  assert.equal(other.upstreamUrl, "http://127.0.0.1:9000");
  assert.deepEqual(config.listeners[1].net.addr, { host: "::1", port: 6001 });
  assert.deepEqual(config.listeners[1].net.candidateIps, ["localhost"]);
});

Deno.test("every config error names file, line, YAML path and what was expected, all at once", () => {
  const problems = errorsOf(`
services:
  a:
    proto: ftp
  b:
    proto: udp
    net:
      addr: 6001
      enable_ice: maybe
  c:
    proto: tcp
    net:
      addr: ":70000"
      tls_crt_file: /x.pem
    http:
      dial_timeout: soon
      routes:
        janus: { upstream: http://nosuch, protos: [smtp], paths: [janus] }
  d:
    proto: upstream
    servers: [ftp://x]
`);
  const expect = [
    /^r\.yml:4: services\.a\.proto: expected one of/,
    /^r\.yml:8: services\.b\.net\.addr: expected a listen address/,
    /^r\.yml:9: services\.b\.net\.enable_ice: expected a boolean/,
    /^r\.yml:13: services\.c\.net\.addr: expected a listen address/,
    /services\.c\.net: tls_crt_file and tls_key_file must be set together/,
    /^r\.yml:16: services\.c\.http\.dial_timeout: expected a duration/,
    /services\.c\.http\.routes\.janus\.protos\[0\]: expected "http", "ws"/,
    /services\.c\.http\.routes\.janus\.paths\[0\]: expected a path prefix/,
    /^r\.yml:21: services\.d\.servers\[0\]: expected an http\(s\):\/\/ or ws\(s\):\/\/ URL/,
    /services\.c\.http\.routes\.janus\.upstream: no "proto: upstream" service named "nosuch"/,
  ];
  for (const re of expect) {
    assert.ok(problems.some((p) => re.test(p)), `missing ${re} in\n${problems.join("\n")}`);
  }
});

Deno.test("YAML syntax errors, non-mappings, and unknown keys", () => {
  assert.match(errorsOf("services: [\n")[0], /^r\.yml:\d+: YAML syntax/);
  assert.match(errorsOf("- a\n- b\n")[0], /expected a mapping/);
  assert.match(errorsOf("services:\n")[0], /services: expected a mapping/);
  assert.match(errorsOf("services: {}\n")[0], /at least one/);
  assert.match(
    errorsOf("services:\n  x: { proto: udp, net: { addr: ':6001' } }\n")[0],
    /enable_ice needs at least one candidate IP/,
  );
  assert.match(
    errorsOf(
      "services:\n  x: { proto: udp, net: { addr: ':6001', candidate_ips: [a] } }\n  y: { proto: udp, net: { addr: ':6001', candidate_ips: [a] } }\n",
    )[0],
    /already used by services\.x/,
  );
  const { warnings } = loadConfigText(
    "services:\n  x:\n    proto: http\n    colour: blue\n    net: { addr: ':80' }\n",
    "w.yml",
  );
  assert.deepEqual(warnings, ["w.yml:4: services.x.colour: unknown key, ignored"]);
  const restricted = loadConfigText(
    "services:\n  x: { proto: udp, net: { addr: ':6000', candidate_ips: [127.0.0.1] } }\n",
    "w.yml",
  ).warnings;
  assert.match(restricted[0], /port 6000 is on Chromium's restricted port list/);
});

Deno.test("durations and listen addresses", () => {
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("100ms"), 100);
  assert.equal(parseDuration("1h2m3s"), 3_723_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("ten"), undefined);
  assert.equal(parseDuration("10 s"), undefined);
  assert.deepEqual(parseHostPort(":6001"), { host: "", port: 6001 });
  assert.deepEqual(parseHostPort("127.0.0.1:80"), { host: "127.0.0.1", port: 80 });
  assert.equal(parseHostPort("127.0.0.1"), undefined);
  assert.equal(parseHostPort(":0"), undefined);
});

Deno.test("options.workers: a number or auto, FFI only, within the claim board's shard limit", () => {
  const withOptions = (o: string) => `options:\n${o}\n${SEED}`;
  assert.equal(loadConfigText(SEED, "r.yml").config.options.workers, 1, "one shard by default");
  assert.equal(
    loadConfigText(withOptions("  io_backend: ffi\n  workers: 2"), "r.yml").config.options.workers,
    2,
  );
  const auto = loadConfigText(withOptions("  io_backend: ffi\n  workers: auto"), "r.yml").config.options;
  assert.equal(auto.workers, Math.min(62, navigator.hardwareConcurrency));
  const [deno] = errorsOf(withOptions("  io_backend: deno\n  workers: 2"));
  assert.match(deno, /r\.yml:3: options\.workers: more than one worker needs io_backend: ffi/);
  assert.equal(
    loadConfigText(withOptions("  workers: 2"), "r.yml").config.options.workers,
    2,
    "auto, the default, may give ffi (start() refuses if it falls back to deno)",
  );
  assert.match(
    errorsOf(withOptions("  io_backend: ffi\n  workers: 0"))[0],
    /options\.workers: expected an integer from 1 to 62/,
  );
  assert.match(errorsOf(withOptions("  io_backend: ffi\n  workers: 63"))[0], /from 1 to 62/);
});

Deno.test("options.media_thread: auto by default (a worker thread with the ffi backend), refused as worker with deno", () => {
  const withOptions = (o: string) => `options:\n${o}\n${SEED}`;
  const auto = loadConfigText(SEED, "r.yml").config.options;
  assert.equal(auto.mediaThread, "auto");
  assert.equal(mediaOnWorkerThread(auto, "ffi"), true, "auto with ffi: a worker thread");
  assert.equal(mediaOnWorkerThread(auto, "deno"), false, "auto with deno: the main thread");
  const main = loadConfigText(withOptions("  media_thread: main"), "r.yml").config.options;
  assert.equal(mediaOnWorkerThread(main, "ffi"), false);
  const worker = loadConfigText(withOptions("  media_thread: worker"), "r.yml").config.options;
  assert.equal(worker.mediaThread, "worker");
  assert.equal(mediaOnWorkerThread(worker, "ffi"), true);
  assert.equal(errorsOf(withOptions("  io_backend: deno")).length, 0, "auto with deno is no error");
  const [deno] = errorsOf(withOptions("  io_backend: deno\n  media_thread: worker"));
  assert.match(deno, /r\.yml:3: options\.media_thread: media on a worker thread needs io_backend: ffi/);
  assert.match(
    errorsOf(withOptions("  media_thread: core"))[0],
    /options\.media_thread: expected one of "auto", "main", "worker"/,
  );
});

Deno.test("cluster: absent is a single node; present, every key read, checked, and the password never shown", () => {
  assert.equal(loadConfigText(SEED, "r.yml").config.cluster, undefined);
  const { config } = loadConfigText(
    `cluster:
  redis: redis://:hunter2hunter2@198.18.8.3:6379/1
  node: node-a
  peer_url: http://198.18.8.10:8080/
  node_ttl: 3s
${SEED}`,
    "r.yml",
  );
  assert.deepEqual(config.cluster, {
    redisUrl: "redis://:hunter2hunter2@198.18.8.3:6379/1",
    node: "node-a",
    peerUrl: "http://198.18.8.10:8080",
    keyPrefix: "xrtc",
    nodeTtlMs: 3_000,
    redisTimeoutMs: 1_000,
    forwardTimeoutMs: 60_000,
  });
  const shown = JSON.stringify(effectiveConfig(config));
  assert.ok(!shown.includes("hunter2"), shown);
  assert.match(shown, /redis:\/\/\*\*\*@198\.18\.8\.3:6379\/1/);
  const errors = errorsOf(`cluster:
  redis: http://198.18.8.3:6379
  node: "bad name!"
  peer_url: http://198.18.8.10:8080/janus
  node_ttl: 100ms
${SEED}`);
  assert.equal(errors.length, 4, errors.join("\n"));
  assert.match(errors[0], /r\.yml:2: cluster\.redis: expected a Redis URL/);
  assert.match(errors[1], /cluster\.node: expected a node name/);
  assert.match(errors[2], /cluster\.peer_url: expected this node's signalling URL/);
  assert.match(errors[3], /cluster\.node_ttl: at least 1s/);
});

Deno.test("options.janus_keepalive: Tr towards Janus, 15s by default, never under it (RFC 8445 §11)", () => {
  assert.equal(loadConfigText(SEED, "r.yml").config.options.janusKeepaliveMs, 15_000);
  const withTr = (tr: string) => `${SEED}options:\n  janus_keepalive: ${tr}\n`;
  assert.equal(loadConfigText(withTr("2m"), "r.yml").config.options.janusKeepaliveMs, 120_000);
  const problems = errorsOf(withTr("10s"));
  assert.ok(
    problems.some((p) => /options\.janus_keepalive: at least 15s/.test(p)),
    problems.join("\n"),
  );
});
