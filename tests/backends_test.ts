// Two Janus servers behind one xRTC, as named backends with health probes: new Janus sessions spread
// over both; a session created over WebSocket and continued over HTTP (and the reverse) reaches the
// Janus that created it; a Janus that dies leaves rotation within the probe window and its sessions are
// released with a Janus-style error; when it comes back it returns to rotation.
import assert from "node:assert/strict";
import { makeTopology } from "./lib/topology.ts";
import { type Janus, startJanus } from "./lib/janus.ts";
import { PORTS, runEchotest, startXrtc } from "./lib/xrtc.ts";
import { waitFor } from "./lib/run.ts";
import type { Xrtc } from "../src/app.ts";
import { janusPost, type Msg, openWs, wsRequest } from "./lib/janus_api.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const HEALTH = "\n    health: { interval: 500ms, timeout: 400ms, fall: 2, rise: 1 }";

const post = async (url: string, body: Msg) => (await janusPost(url, body)).body;

const backendOf = (x: Xrtc, id: unknown) => x.signalling.sessions.get(String(id))?.backend.name;

Deno.test(
  "two Janus backends: spread, affinity across HTTP and WebSocket, failure and return",
  opts,
  async (t) => {
    const topo = await makeTopology();
    let a: Janus | undefined, b: Janus | undefined, x: Xrtc | undefined;
    try {
      a = await startJanus(topo, { instance: 0 });
      b = await startJanus(topo, { instance: 1 });
      x = await startXrtc(topo, { twoJanus: true, upstream: HEALTH });
      const xrtc = x;
      const base = `http://${topo.xrtcPublic}:${PORTS.http}`;
      await waitFor(
        "both backends up",
        () => xrtc.upstreams.all()[0].backends.every((s) => s.up && s.answered) || undefined,
      );

      await t.step("new Janus sessions spread over both; a call works on each", async () => {
        const ids = [];
        for (let i = 0; i < 6; i++) ids.push((await post(`${base}/janus`, { janus: "create" })).data);
        const placed = ids.map((d) => backendOf(xrtc, (d as { id: number }).id));
        assert.deepEqual(placed.filter((n) => n === "janus-a").length, 3, `round robin: ${placed}`);
        assert.deepEqual(placed.filter((n) => n === "janus-b").length, 3, `round robin: ${placed}`);
        for (const tag of ["on-a-or-b", "on-the-other"]) {
          const r = await runEchotest(topo, base, tag);
          assert.deepEqual(r.errors, []);
          assert.ok((r.rtpEchoed as number) >= 27, `${tag}: ${r.rtpEchoed}/30`);
        }
      });

      await t.step(
        "a session created over WebSocket continues over HTTP on its Janus, and the reverse",
        async () => {
          const ws = await openWs(`ws://${topo.xrtcPublic}:${PORTS.http}/janus`);
          try {
            for (let i = 0; i < 2; i++) { // twice: round robin puts one on each Janus
              const created = await wsRequest(ws, { janus: "create" });
              const sid = (created.data as { id: number }).id;
              const attached = await post(`${base}/janus/${sid}`, {
                janus: "attach",
                plugin: "janus.plugin.echotest",
              });
              assert.equal(
                attached.janus,
                "success",
                `attach over HTTP to a WS-created session: ${JSON.stringify(attached)}`,
              );
              const viaHttp = (await post(`${base}/janus`, { janus: "create" })).data as { id: number };
              const overWs = await wsRequest(ws, {
                janus: "attach",
                session_id: viaHttp.id,
                plugin: "janus.plugin.echotest",
              });
              assert.equal(
                overWs.janus,
                "success",
                `attach over WS to an HTTP-created session: ${JSON.stringify(overWs)}`,
              );
            }
          } finally {
            ws.close();
          }
        },
      );

      await t.step(
        "a Janus that dies leaves rotation; its sessions are released; it comes back",
        async () => {
          const onA = [...xrtc.signalling.sessions.sessions()].filter((s) => s.backend.name === "janus-a")
            .map((s) => s.id);
          assert.ok(onA.length > 0);
          await a!.stop();
          const downAt = Date.now();
          await waitFor(
            "janus-a out of rotation",
            () => {
              const s = xrtc.upstreams.all()[0].backends.find((x) => x.name === "janus-a")!;
              return !s.up || undefined;
            },
            10_000,
            50,
          );
          const outAfter = Date.now() - downAt;
          assert.deepEqual(
            onA.filter((id) => xrtc.signalling.sessions.get(id)),
            [],
            "janus-a's sessions released",
          );
          const stale = await post(`${base}/janus/${onA[0]}`, { janus: "keepalive" });
          assert.equal(stale.janus, "error", "a request for a released session gets a Janus-style error");
          const placed = [];
          for (let i = 0; i < 4; i++) {
            placed.push(
              backendOf(xrtc, ((await post(`${base}/janus`, { janus: "create" })).data as { id: number }).id),
            );
          }
          assert.deepEqual(
            placed,
            ["janus-b", "janus-b", "janus-b", "janus-b"],
            "every new session on the live one",
          );
          a = await startJanus(topo, { instance: 0 });
          await waitFor(
            "janus-a back in rotation",
            () => {
              const s = xrtc.upstreams.all()[0].backends.find((x) => x.name === "janus-a")!;
              return s.up || undefined;
            },
            10_000,
            50,
          );
          const again = [];
          for (let i = 0; i < 4; i++) {
            again.push(
              backendOf(xrtc, ((await post(`${base}/janus`, { janus: "create" })).data as { id: number }).id),
            );
          }
          assert.ok(again.includes("janus-a") && again.includes("janus-b"), `spread again: ${again}`);
          assert.ok(
            outAfter < 3_000,
            `out of rotation ${outAfter} ms after it died (probe every 500 ms, 2 failures)`,
          );
        },
      );
    } finally {
      await x?.stop();
      await a?.stop();
      await b?.stop();
      await topo.close();
    }
  },
);
