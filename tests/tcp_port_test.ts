// One TCP port for everything: ICE-TCP (RFC 6544/4571), HTTP, WebSocket and TLS, against the real
// Janus, with UDP blocked in the client namespace.
import assert from "node:assert/strict";
import { blockClientUdp } from "./lib/topology.ts";
import { loadConfigText } from "../src/config/load.ts";
import { start } from "../src/app.ts";
import { openEchoSession, PORTS, readStunResponses, runEchotest, withStack } from "./lib/xrtc.ts";
import { chromiumEchotest } from "./lib/browser.ts";
import { countSettlesAt, run, sleep, waitFor } from "./lib/run.ts";
import { dropped, metric } from "./lib/metrics.ts";
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeString,
  encodeUint64,
  parseStun,
  randomTransactionId,
} from "../src/stun/message.ts";
import { encodeFrame } from "../src/io/framing.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function makeCert(): Promise<{ crt: string; key: string; spki: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "xrtc-cert-" });
  await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=xrtc-test",
    "-addext",
    "subjectAltName=IP:198.19.0.1",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/crt.pem`,
  ]);
  // Chromium trusts a certificate by its public key hash (--ignore-certificate-errors-spki-list).
  const spki = (await run([
    "sh",
    "-c",
    `openssl x509 -in ${dir}/crt.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
  ])).trim();
  return { crt: `${dir}/crt.pem`, key: `${dir}/key.pem`, spki, dir };
}

Deno.test("ICE-TCP with UDP blocked: werift and Chromium through the one TCP port", opts, async (t) => {
  await withStack({}, async ({ topo, base }) => {
    await blockClientUdp(topo);
    await t.step("werift over ICE-TCP (iceUseTcp): echoes through xRTC's TCP port", async () => {
      const r = await runEchotest(topo, base, "tcp", { iceTcp: true });
      assert.deepEqual(r.errors, []);
      assert.equal(r.dcEchoes, 5);
      assert.ok((r.rtpEchoed as number) >= 27, `RTP echoed ${r.rtpEchoed}`);
      assert.equal(r.selectedRemote, `tcp:${topo.xrtcPublic}:${PORTS.tcp}`);
    });
    await t.step("Chromium: page, HTTP signalling and media all on the TCP port", async () => {
      const origin = `http://${topo.xrtcPublic}:${PORTS.tcp}`;
      const stats = await chromiumEchotest(topo, `${origin}/echotest.html?autostart=1&signal=http`, {
        secureOrigin: origin,
      });
      assert.equal(stats.selectedRemote, `tcp:${topo.xrtcPublic}:${PORTS.tcp}`);
    });
  });
});

Deno.test("HTTPS and WSS on the same TCP port as ICE-TCP; TLS reload on demand", opts, async (t) => {
  const cert = await makeCert();
  try {
    await withStack({ xrtc: { tls: { crt: cert.crt, key: cert.key } } }, async ({ topo, xrtc }) => {
      await blockClientUdp(topo);
      await t.step("Chromium loads the page and signals over WSS, media over ICE-TCP, one port", async () => {
        const origin = `https://${topo.xrtcPublic}:${PORTS.tcp}`;
        const stats = await chromiumEchotest(topo, `${origin}/echotest.html?autostart=1&signal=ws`, {
          extraArgs: [`--ignore-certificate-errors-spki-list=${cert.spki}`],
        });
        assert.equal(stats.selectedRemote, `tcp:${topo.xrtcPublic}:${PORTS.tcp}`);
      });
      await t.step("a new certificate is served after reload, the old one before", async () => {
        const fingerprint = async () =>
          (await run([
            "sh",
            "-c",
            `echo | openssl s_client -connect ${topo.xrtcPublic}:${PORTS.tcp} 2>/dev/null | openssl x509 -noout -fingerprint -sha256`,
          ])).trim();
        const before = await fingerprint();
        const next = await makeCert();
        await Deno.copyFile(next.crt, cert.crt);
        await Deno.copyFile(next.key, cert.key);
        assert.equal(await fingerprint(), before, "still the old certificate until reloaded");
        await xrtc.reloadTls();
        const after = await fingerprint();
        assert.notEqual(after, before);
        assert.match(after, /Fingerprint/);
        await Deno.remove(next.dir, { recursive: true });
      });
    });
  } finally {
    await Deno.remove(cert.dir, { recursive: true });
  }
});

function fdCount(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

function rssMb(): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"));
  return Number(m![1]) / 1024;
}

Deno.test("TCP port: bad input closes on time, binds nothing wrongly, leaks nothing", opts, async (t) => {
  // 1,002 connections from the test's one address: above the default per-address limit.
  const options = "  consent_timeout: 30s\n  limits: { max_connections_per_address: 4096 }";
  await withStack({ xrtc: { options } }, async ({ topo, base }) => {
    const addr = { hostname: topo.xrtcPublic, port: PORTS.tcp };
    const s = await openEchoSession(base);
    const check = (extra: Array<[number, Uint8Array]> = []) =>
      buildStun({
        type: BINDING_REQUEST,
        transactionId: randomTransactionId(),
        attributes: [[Attr.USERNAME, encodeString(`${s.ufrag}:${s.clientUfrag}`)], [
          Attr.ICE_CONTROLLING,
          encodeUint64(7n),
        ], ...extra],
        integrityKey: new TextEncoder().encode(s.pwd),
        fingerprint: true,
      });
    const closedWithin = async (conn: Deno.Conn, ms: number): Promise<boolean> => {
      const buf = new Uint8Array(256);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const n = await Promise.race([
          conn.read(buf).catch(() => null),
          sleep(end - Date.now()).then(() => -1),
        ]);
        if (n === null) return true;
        if (n === -1) return false;
      }
      return false;
    };

    await t.step(
      "a valid check split after its first byte is classified and binds; garbage after it is dropped; an oversize frame closes and frees",
      async () => {
        const conn = await Deno.connect(addr);
        const frame = encodeFrame(check([[Attr.USE_CANDIDATE, new Uint8Array(0)]]));
        await conn.write(frame.subarray(0, 1));
        await sleep(200);
        await conn.write(frame.subarray(1));
        const frames = await readStunResponses(conn, 3000);
        assert.ok(frames && frames.length === 1, "one response frame");
        assert.equal(parseStun(frames![0]).type, BINDING_SUCCESS);
        const bad = await dropped("stun_malformed");
        await conn.write(encodeFrame(new Uint8Array([0, 1, 0, 8, 1, 2, 3])));
        await countSettlesAt(
          "a truncated STUN frame after it is dropped and counted",
          () => dropped("stun_malformed"),
          bad + 1,
        );
        await conn.write(new Uint8Array([0xff, 0xff, 1, 2, 3]));
        assert.ok(await closedWithin(conn, 3000), "oversize frame: connection closed");
        conn.close();
        assert.ok((await metric("xrtc_tcp_connections_closed_total", { reason: "bad_framing" })) >= 1);
      },
    );

    await t.step("TLS to a service without certificates is refused cleanly", async () => {
      const before = await metric("xrtc_tcp_connections_closed_total", { reason: "tls_without_certificate" });
      const conn = await Deno.connect(addr);
      await conn.write(new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00]));
      assert.ok(await closedWithin(conn, 3000));
      conn.close();
      assert.equal(
        await metric("xrtc_tcp_connections_closed_total", { reason: "tls_without_certificate" }),
        before + 1,
      );
    });

    await t.step(
      "slow-loris, silent, and 1,000 idle connections are closed at 10 s; a framed connection without a valid check at 30 s; fds and memory return",
      async () => {
        const fdBefore = fdCount();
        const rssBefore = rssMb();
        const idle = await Promise.all(Array.from({ length: 1000 }, () => Deno.connect(addr)));
        const loris = await Deno.connect(addr);
        await loris.write(new TextEncoder().encode("GE"));
        const framed = await Deno.connect(addr);
        const forged = check();
        forged[forged.length - 1] ^= 0xff; // bad FINGERPRINT: classified as ICE, never valid
        await framed.write(encodeFrame(forged));
        await sleep(1000);
        assert.ok(fdCount() > fdBefore + 1000, "the idle connections are open");
        const started = Date.now();
        const lorisClosed = closedWithin(loris, 14_000);
        const idleClosed = Promise.all(idle.map((c) => closedWithin(c, 14_000)));
        assert.ok(await lorisClosed, "slow-loris closed");
        assert.ok((await idleClosed).every(Boolean), "every idle connection closed");
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 7_000 && elapsed < 14_000, `closed after ~10 s (${elapsed} ms)`);
        assert.equal(await closedWithin(framed, 1000), false, "the framed one is still open: it gets 30 s");
        assert.ok(await closedWithin(framed, 30_000), "framed connection without a valid check closed");
        for (const c of [...idle, loris, framed]) {
          try {
            c.close();
          } catch { /* closed */ }
        }
        await waitFor("fds back to baseline", () => fdCount() <= fdBefore + 5 || undefined, 5000);
        assert.ok(rssMb() - rssBefore < 64, `RSS growth ${Math.round(rssMb() - rssBefore)} MB`);
      },
    );
  });
});

Deno.test(
  "an https listener (proto: http with TLS files) serves its certificate and reloads it",
  opts,
  async () => {
    const cert = await makeCert();
    const x = await start(
      loadConfigText(
        `
services:
  web:
    proto: http
    net: { addr: "127.0.0.1:18443", tls_crt_file: ${cert.crt}, tls_key_file: ${cert.key} }
    http: { root: ${new URL("../html", import.meta.url).pathname} }
`,
        "t.yml",
      ).config,
    );
    try {
      const fingerprint = async () =>
        (await run([
          "sh",
          "-c",
          "echo | openssl s_client -connect 127.0.0.1:18443 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        ])).trim();
      const page = await run([
        "sh",
        "-c",
        "openssl s_client -connect 127.0.0.1:18443 -quiet 2>/dev/null <<'X'\nGET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nX",
      ]);
      assert.match(page, /HTTP\/1.1 200/);
      const before = await fingerprint();
      assert.match(before, /Fingerprint/);
      const next = await makeCert();
      await Deno.copyFile(next.crt, cert.crt);
      await Deno.copyFile(next.key, cert.key);
      await x.reloadTls();
      const after = await fingerprint();
      assert.notEqual(after, before, "the new certificate is served after reload");
      await Deno.writeTextFile(cert.crt, "not a certificate");
      await x.reloadTls(); // logged and refused: the server keeps the certificate it has
      assert.equal(await fingerprint(), after, "a failed reload keeps the old certificate");
      await Deno.remove(next.dir, { recursive: true });
    } finally {
      await x.stop();
      await Deno.remove(cert.dir, { recursive: true });
    }
  },
);
