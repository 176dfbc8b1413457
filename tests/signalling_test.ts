// The HTTP and WebSocket proxy against the real Janus (in its own network namespace).
import assert from "node:assert/strict";
import { PORTS, withStack } from "./lib/xrtc.ts";
import { loadConfigText } from "../src/config/load.ts";
import { start } from "../src/app.ts";
import { iceView, parseSdp } from "../src/sdp/sdp.ts";

const OFFER = await Deno.readTextFile(new URL("./fixtures/chromium-offer.sdp", import.meta.url));
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("Janus signalling through xRTC over HTTP and WebSocket", opts, async (t) => {
  await withStack({}, async ({ topo, xrtc, base }) => {
    const post = async (path: string, body: unknown) =>
      await (await fetch(`${base}/janus${path}`, { method: "POST", body: JSON.stringify(body) })).json();
    {
      await t.step(
        "HTTP: create, attach, keepalive, message with jsep, long-poll with maxev; registry holds offer and answer",
        async () => {
          const created = await post("", { janus: "create", transaction: "c1" });
          assert.equal(created.janus, "success");
          const sid = created.data.id;
          const attached = await post(`/${sid}`, {
            janus: "attach",
            plugin: "janus.plugin.echotest",
            transaction: "a1",
          });
          const hid = attached.data.id;
          assert.equal((await post(`/${sid}`, { janus: "keepalive", transaction: "k1" })).janus, "ack");
          const sent = await post(`/${sid}/${hid}`, {
            janus: "message",
            transaction: "m1",
            body: { audio: true, video: true },
            jsep: { type: "offer", sdp: OFFER },
          });
          assert.equal(sent.janus, "ack");
          let answer: { sdp: string } | undefined;
          let sawArray = false;
          for (let i = 0; i < 10 && !answer; i++) {
            const events = await (await fetch(`${base}/janus/${sid}?rid=${Date.now()}&maxev=5`)).json();
            sawArray ||= Array.isArray(events);
            for (const e of Array.isArray(events) ? events : [events]) if (e.jsep) answer = e.jsep;
          }
          assert.ok(sawArray, "maxev replies are JSON arrays");
          assert.ok(answer, "the answer arrived through the long-poll");
          const seen = iceView(parseSdp(answer!.sdp));
          assert.ok(
            seen.every((m) => m.candidates.every((c) => c.address === topo.xrtcPublic)),
            "the client sees only xRTC's candidates",
          );
          assert.ok(seen[0].lite);
          const rec = xrtc.signalling.sessions.handle(String(sid), String(hid));
          assert.equal(
            rec?.ice.spec?.janusCandidates[0]?.address,
            topo.janusAddr,
            "the session holds Janus's real candidates",
          );
          // Janus's own error replies pass through.
          const bad = await post(`/${sid}`, {
            janus: "attach",
            plugin: "janus.plugin.nosuch",
            transaction: "a2",
          });
          assert.equal(bad.janus, "error");
          assert.equal(bad.error.code, 460);
          assert.equal((await post(`/${sid}`, { janus: "destroy", transaction: "d1" })).janus, "success");
          assert.equal(xrtc.signalling.sessions.handle(String(sid), String(hid)), undefined);
          assert.equal(xrtc.plane!.table.size, 0, "destroy released the session");
        },
      );

      await t.step("WebSocket: subprotocol passed through, same flow, registry filled", async () => {
        const ws = new WebSocket(`ws://${topo.xrtcPublic}:${PORTS.http}/`, "janus-protocol");
        const inbox: Array<Record<string, unknown>> = [];
        await new Promise((res, rej) => ((ws.onopen = res), (ws.onerror = rej)));
        assert.equal(ws.protocol, "janus-protocol");
        ws.onmessage = (ev) => inbox.push(JSON.parse(ev.data));
        const wait = async (f: (m: Record<string, unknown>) => boolean) => {
          for (let i = 0; i < 100; i++) {
            const m = inbox.find(f);
            if (m) return m;
            await new Promise((r) => setTimeout(r, 100));
          }
          throw new Error(`no such message in ${JSON.stringify(inbox).slice(0, 500)}`);
        };
        ws.send(JSON.stringify({ janus: "create", transaction: "w1" }));
        const sid = ((await wait((m) => m.transaction === "w1")).data as { id: number }).id;
        ws.send(
          JSON.stringify({
            janus: "attach",
            plugin: "janus.plugin.echotest",
            transaction: "w2",
            session_id: sid,
          }),
        );
        const hid = ((await wait((m) => m.transaction === "w2")).data as { id: number }).id;
        ws.send(
          JSON.stringify({
            janus: "message",
            transaction: "w3",
            session_id: sid,
            handle_id: hid,
            body: { audio: true },
            jsep: { type: "offer", sdp: OFFER },
          }),
        );
        const ev = await wait((m) => m.transaction === "w3" && m.janus === "event");
        const sdp = (ev.jsep as { sdp: string }).sdp;
        assert.ok(!sdp.includes(topo.janusAddr));
        ws.send(
          JSON.stringify({
            janus: "trickle",
            transaction: "w4",
            session_id: sid,
            handle_id: hid,
            candidate: { completed: true },
          }),
        );
        assert.equal((await wait((m) => m.transaction === "w4")).janus, "ack");
        assert.equal(
          xrtc.signalling.sessions.handle(String(sid), String(hid))?.ice.spec?.janusCandidates[0]?.address,
          topo.janusAddr,
        );
        ws.send(JSON.stringify({ janus: "destroy", transaction: "w5", session_id: sid }));
        await wait((m) => m.transaction === "w5");
        ws.close();
      });

      await t.step("static files from http.root; traversal refused; body limit", async () => {
        const page = await fetch(`${base}/echotest.html`);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /xRTC echotest/);
        for (
          const p of ["/../routes.yml", "/%2e%2e/routes.yml", "/%2e%2e%2froutes.yml", "/..%2f..%2fetc/passwd"]
        ) {
          const r = await fetch(`${base}${p}`);
          const body = await r.text();
          assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
          assert.ok(!body.includes("services:") && !body.includes("root:"), p);
        }
        const big = await fetch(`${base}/janus`, { method: "POST", body: "x".repeat(2 * 1024 * 1024) });
        assert.equal(big.status, 413);
        assert.equal((await big.json()).error, "request body too large");
      });
    }
  });
});

Deno.test(
  "upstream choice: next server on connect error, 502 JSON when all fail, X-Forwarded headers",
  opts,
  async () => {
    // A project-owned upstream that reports what it received, and a port nothing listens on.
    const seen: Array<Record<string, string>> = [];
    const echo = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      seen.push(Object.fromEntries(req.headers));
      return Response.json({ janus: "success", transaction: "x", data: { id: 42 } });
    });
    const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (dead.addr as Deno.NetAddr).port;
    dead.close();
    const yaml = (servers: string, port: number) => `
services:
  up: { proto: upstream, mode: rr, servers: [${servers}] }
  web:
    proto: http
    net: { addr: "127.0.0.1:${port}" }
    http:
      dial_timeout: 2s
      routes:
        janus: { upstream: http://up, paths: [/janus] }
        plain: { upstream: "http://127.0.0.1:${echo.addr.port}", paths: [/plain] }
`;
    const cfg =
      loadConfigText(yaml(`http://127.0.0.1:${deadPort}, http://127.0.0.1:${echo.addr.port}`, 18080), "t.yml")
        .config;
    const x = await start(cfg);
    try {
      const r = await fetch("http://127.0.0.1:18080/janus", {
        method: "POST",
        body: JSON.stringify({ janus: "create", transaction: "x" }),
      });
      assert.equal((await r.json()).data.id, 42, "the second server answered after the first refused");
      const p = await fetch("http://127.0.0.1:18080/plain/x", {
        headers: { "x-forwarded-for": "203.0.113.5" },
      });
      await p.body?.cancel();
      const h = seen[seen.length - 1];
      assert.equal(h["x-forwarded-for"], "203.0.113.5, 127.0.0.1");
      assert.equal(h["x-forwarded-proto"], "http");
      assert.equal(h["x-forwarded-host"], "127.0.0.1:18080");
    } finally {
      await x.stop();
    }
    const cfg2 = loadConfigText(yaml(`http://127.0.0.1:${deadPort}`, 18081), "t.yml").config;
    const y = await start(cfg2);
    try {
      const r = await fetch("http://127.0.0.1:18081/janus", { method: "POST", body: "{}" });
      assert.equal(r.status, 502);
      assert.equal((await r.json()).error, "upstream unavailable");
    } finally {
      await y.stop();
      await echo.shutdown();
    }
  },
);

Deno.test("servername like nginx, and WebSocket close codes propagated from the upstream", opts, async () => {
  // A project-owned WebSocket upstream that closes with the code the client sends it.
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "janus-protocol" });
    socket.onmessage = (ev) => socket.close(Number(ev.data), "bye from upstream");
    return response;
  });
  const cfg = loadConfigText(
    `
services:
  named:
    proto: http
    net: { addr: "127.0.0.1:18082" }
    http:
      servername: [example.com, "*.example.org"]
  any:
    proto: http
    net: { addr: "127.0.0.1:18083" }
    http:
      routes:
        echo: { upstream: "ws://127.0.0.1:${upstream.addr.port}", protos: [ws@janus-protocol] }
`,
    "t.yml",
  ).config;
  const x = await start(cfg);
  try {
    // fetch cannot set Host, so these requests are written by hand.
    const status = async (host: string, path: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: 18082 });
      await conn.write(
        new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      );
      const buf = new Uint8Array(512);
      const n = await conn.read(buf);
      conn.close();
      return Number(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(" ")[1]);
    };
    assert.equal(await status("other.net", "/"), 421);
    for (const host of ["example.com", "a.example.org:18082", "EXAMPLE.com"]) {
      assert.equal(
        await status(host, "/etc/passwd"),
        404,
        `${host}: a served name with no route and no root gets 404, never the filesystem`,
      );
    }
    const ws = new WebSocket("ws://127.0.0.1:18083/", "janus-protocol");
    const closed = new Promise<CloseEvent>((res) => ws.onclose = res);
    await new Promise((res, rej) => ((ws.onopen = res), (ws.onerror = rej)));
    assert.equal(ws.protocol, "janus-protocol");
    ws.send("4001");
    const ev = await closed;
    assert.equal(ev.code, 4001, "the upstream's close code reaches the client");
    assert.equal(ev.reason, "bye from upstream");
  } finally {
    await x.stop();
    await upstream.shutdown();
  }
});
