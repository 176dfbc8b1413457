// The xrtc command: --check-config, configuration errors, the FFI permission message, and the shipped
// routes.yml starting as it is (README's first command), and a start with a worker shard.
import assert from "node:assert/strict";
import { ROOT } from "./lib/xrtc.ts";
import { collectLines, sleep, waitFor } from "./lib/run.ts";
import { taskV8Flags } from "../bench/xrtc.ts";

const DENO = `${ROOT}node_modules/.bin/deno`;
const PERMS = ["--allow-net", "--allow-read", "--allow-env", "--allow-sys", "--allow-run"];

async function xrtc(args: string[], env: Record<string, string> = {}, perms = [...PERMS, "--allow-ffi"]) {
  const out = await new Deno.Command(DENO, {
    args: ["run", ...perms, `${ROOT}main.ts`, ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("--check-config prints the effective configuration with defaults", async () => {
  const r = await xrtc(["--check-config"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"response_header_timeout": "60s"/);
  assert.match(r.stdout, /"io_backend": "auto"/);
  assert.match(
    r.stdout,
    /"io_backend_in_effect": "ffi"/,
    "auto gives the batched backend where FFI is permitted",
  );
  assert.match(r.stdout, /"media_thread": "auto"/);
  assert.match(r.stdout, /"media_thread_in_effect": "worker"/, "and with it, media on a worker thread");
  assert.match(r.stdout, /routes\.yml: configuration OK/);
});

Deno.test("a bad config lists every error with file and line, exits 1, and nothing listens", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/bad.yml`,
      "services:\n  a:\n    proto: udp\n    net:\n      addr: nope\n  b:\n    proto: http\n    net: { addr: ':6080' }\n    http: { dial_timeout: later }\n",
    );
    const r = await xrtc(["--config", `${dir}/bad.yml`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /3 configuration error\(s\)/);
    assert.match(r.stderr, /bad\.yml:5: services\.a\.net\.addr: expected a listen address/);
    assert.match(r.stderr, /bad\.yml:9: services\.b\.http\.dial_timeout: expected a duration/);
    assert.match(r.stderr, /services\.a\.net\.candidate_ips: enable_ice needs/);
    assert.doesNotMatch(r.stdout, /listening/);
    const viaEnv = await xrtc(["--check-config"], { XRTC_CONFIG: `${dir}/bad.yml` });
    assert.equal(viaEnv.code, 1);
    const missing = await xrtc(["--config", `${dir}/nope.yml`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.yml: cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--io ffi without FFI permission stops with a clear message; auto falls back and says why", async () => {
  const r = await xrtc(["--io", "ffi"], {}, PERMS);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /ffi UDP backend is unavailable: FFI is not permitted: run with --allow-ffi; use io_backend: deno/,
  );
  const bad = await xrtc(["--io", "quic"]);
  assert.equal(bad.code, 2);
  // auto, the default, falls back to the portable backend and says why.
  const auto = await xrtc(["--check-config"], {}, PERMS);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(
    auto.stdout,
    /"io_backend_in_effect": "deno \(the ffi UDP backend is unavailable: FFI is not permitted: run with --allow-ffi/,
  );
  assert.match(
    auto.stdout,
    /"media_thread_in_effect": "main"/,
    "the portable backend keeps media on the main thread",
  );
});

/** `deno task start [args]`, as the README runs it: stdout lines as they come, and a SIGTERM stop
 * that returns the exit code (undefined when it had to be killed). */
function startTask(args: string[] = []) {
  const child = new Deno.Command(DENO, {
    args: ["task", "start", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  collectLines(child.stdout, lines);
  child.stderr.cancel();
  return {
    lines,
    ready: () => waitFor("xrtc: ready", () => lines.includes("xrtc: ready") || undefined, 20_000),
    async stop(): Promise<number | undefined> {
      child.kill("SIGTERM");
      const status = await Promise.race([child.status, sleep(5000).then(() => undefined)]);
      if (!status) child.kill("SIGKILL");
      return status?.code;
    },
  };
}

Deno.test("the shipped routes.yml starts as it is: page served, 502 JSON without a Janus, admin on loopback, state recorded, clean exit on SIGTERM", async () => {
  const stateDir = new URL("../state/", import.meta.url).pathname;
  const hadState = await Deno.stat(stateDir).then(() => true, () => false);
  const x = startTask();
  const lines = x.lines;
  try {
    await x.ready();
    assert.ok(
      lines.includes(
        "xrtc: ice_udp listening on udp://127.0.0.1:6001 (ice, ffi backend, on a worker thread)",
      ),
      lines.join("\n"),
    );
    assert.ok(lines.includes("xrtc: ice_tcp listening on tcp://127.0.0.1:6443 (ice-tcp, http)"));
    assert.ok(lines.includes("xrtc: web listening on http://127.0.0.1:6080"));
    const page = await fetch("http://127.0.0.1:6080/");
    assert.equal(page.status, 200);
    assert.match(await page.text(), /echotest\.html/);
    const viaTcpPort = await fetch("http://127.0.0.1:6443/echotest.html");
    assert.equal(viaTcpPort.status, 200, "HTTP on the ICE-TCP port");
    await viaTcpPort.body?.cancel();
    const janus = await fetch("http://127.0.0.1:6080/janus/info");
    assert.equal(janus.status, 502);
    assert.equal((await janus.json()).error, "upstream unavailable");
    assert.ok(lines.includes("xrtc: admin listening on http://127.0.0.1:6090 (admin)"));
    assert.equal(await (await fetch("http://127.0.0.1:6090/livez")).text(), "ok\n");
    const ready = await fetch("http://127.0.0.1:6090/readyz?verbose");
    assert.equal(ready.status, 503, "not ready without a Janus");
    assert.match(await ready.text(), /\[-\]janus failed: 127\.0\.0\.1:8088 down/);
    const pid = Number(await Deno.readTextFile(`${stateDir}xrtc.pid`));
    assert.match(
      await Deno.readTextFile(`/proc/${pid}/cmdline`),
      /main\.ts/,
      "the pid file --takeover reads",
    );
    assert.ok((await Deno.stat(`${stateDir}xrtc-state.sqlite`)).isFile, "the journal in options.state_dir");
    const second = await xrtc(["--config", "routes.yml"]);
    assert.equal(second.code, 1, "a second xRTC on the same state directory is refused");
    assert.match(second.stderr, new RegExp(`xRTC \\(pid ${pid}\\) runs on the state directory .*--takeover`));
  } finally {
    assert.equal(await x.stop(), 0, "exits 0 on SIGTERM");
    assert.equal(
      await Deno.stat(`${stateDir}xrtc.pid`).then(() => true, () => false),
      false,
      "pid file removed",
    );
    if (!hadState) await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("workers: 2 starts two worker shards on the shared port and stops cleanly; the deno backend is refused", async () => {
  const file = await Deno.makeTempFile({ suffix: ".yml" });
  await Deno.writeTextFile(
    file,
    `options: { io_backend: ffi, workers: 2 }
services:
  ice: { proto: udp, net: { addr: 127.0.0.1:16001, candidate_ips: [127.0.0.1] } }
  web: { proto: http, net: { addr: 127.0.0.1:16080 } }
`,
  );
  try {
    const x = startTask(["--config", file]);
    try {
      await x.ready();
      assert.ok(
        x.lines.includes("xrtc: ice listening on udp://127.0.0.1:16001 (ice, ffi backend, 2 worker threads)"),
        x.lines.join("\n"),
      );
    } finally {
      assert.equal(await x.stop(), 0, "exits 0 on SIGTERM, worker included");
    }
    const refused = await xrtc(["--config", file, "--io", "deno"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot start: options\.workers: 2 needs the ffi backend \(SO_REUSEPORT\)/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("the binary runs with the V8 flags `deno task start` runs with", () => {
  // The container's binary is built by the compile task, which embeds the V8 flags it is given.
  assert.deepEqual(taskV8Flags("compile"), taskV8Flags("start"));
  assert.ok(taskV8Flags("start").some((f) => f.includes("--no-memory-reducer")));
});
