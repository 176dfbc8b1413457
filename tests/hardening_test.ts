// Hostile clients and long days, against the real Janus in its namespace: each finding of the review of
// acb1080 has a test here that failed on that commit. Floods that need the batched backend's rate run
// on the ffi backend only.
import assert from "node:assert/strict";
import { openEchoSession, PORTS, runWeriftClient, signedCheck, TEST_BACKEND, withStack } from "./lib/xrtc.ts";
import { recordFigure, run, sleep, waitFor } from "./lib/run.ts";
import { dropped, metric } from "./lib/metrics.ts";
import type { Topology } from "./lib/topology.ts";
import { iceCredentials, parseSdp } from "../src/sdp/sdp.ts";
import {
  Attr,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  buildStun,
  encodeXorAddress,
  parseStun,
} from "../src/stun/message.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const OFFER = Deno.readTextFileSync(new URL("./fixtures/chromium-offer.sdp", import.meta.url));
const CLIENT = iceCredentials(parseSdp(OFFER))!;
const SPOOF = new URL("./tools/spoof.py", import.meta.url).pathname;

function rssMb(): number {
  const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"));
  return Number(m![1]) / 1024;
}

function fdCount(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

async function post(
  base: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const r = await fetch(`${base}/janus${path}`, { method: "POST", body: JSON.stringify(body) });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

/** Janus's established WebSocket connections, counted in its namespace. */
async function janusWebSockets(t: Topology): Promise<number> {
  const out = await run([
    "ip",
    "netns",
    "exec",
    t.serverNs,
    "ss",
    "-Htn",
    "state",
    "established",
    "( sport = :8188 )",
  ]);
  return out.split("\n").filter((l) => l.trim()).length;
}

/** A WebSocket upgrade request without Sec-WebSocket-Key or version, on a raw connection: its status. */
async function badUpgrade(hostname: string, port: number): Promise<number> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await conn.write(new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: janus-protocol\r\n\r\n",
    ));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return Number(/^HTTP\/1\.1 (\d+)/.exec(new TextDecoder().decode(buf.subarray(0, n ?? 0)))?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "janus-protocol");
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("ws error"));
  });
}

/** Requests over one WebSocket, each resolved by the first reply with its transaction. */
function wsClient(ws: WebSocket) {
  const waiting = new Map<string, (m: Record<string, unknown>) => void>();
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    const f = waiting.get(m.transaction);
    if (f && m.janus !== "ack") {
      waiting.delete(m.transaction);
      f(m);
    }
  };
  return (body: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const transaction = crypto.randomUUID();
      waiting.set(transaction, resolve);
      ws.send(JSON.stringify({ ...body, transaction }));
    });
}

Deno.test(
  "signalling: ids Janus never issued are refused at once and nothing is kept; capacity is reserved when checked",
  opts,
  async (t) => {
    await withStack(
      { xrtc: { options: "  consent_timeout: 30s\n  max_sessions: 2" } },
      async ({ topo, xrtc, base }) => {
        await t.step(
          "300 offers of 255 KB to made-up ids over HTTP and WebSocket: Janus-style 458, no state, no memory kept",
          async () => {
            const big = OFFER + "a=x-padding:" + "p".repeat(255_000) + "\r\n";
            const rssBefore = rssMb();
            for (let i = 0; i < 150; i++) {
              const r = await post(base, `/${1_000_000 + i}/${2_000_000 + i}`, {
                janus: "message",
                transaction: "m",
                body: {},
                jsep: { type: "offer", sdp: big },
              });
              assert.equal((r.json.error as { code: number }).code, 458);
            }
            const ws = await openWs(`ws://${topo.xrtcPublic}:${PORTS.http}/`);
            const send = wsClient(ws);
            for (let i = 0; i < 150; i++) {
              const r = await send({
                janus: "message",
                session_id: 3_000_000 + i,
                handle_id: 7,
                body: {},
                jsep: { type: "offer", sdp: big },
              });
              assert.equal((r.error as { code: number }).code, 458);
            }
            const hugeId = await send({ janus: "keepalive", session_id: "9".repeat(900_000) });
            assert.equal(hugeId.janus, "error", "a 900 KB string of digits is not an id");
            ws.close();
            assert.equal(xrtc.signalling.sessions.size, 0);
            assert.equal(xrtc.signalling.sessions.trackedClients, 0);
            assert.equal(xrtc.negotiator!.committed, 0);
            assert.ok(
              rssMb() - rssBefore < 100,
              `RSS grew ${Math.round(rssMb() - rssBefore)} MB for 77 MB of offers`,
            );
          },
        );

        await t.step(
          "three offers on one WebSocket with max_sessions 2: two go through, the third gets a Janus-style error; xRTC lives",
          async () => {
            const ws = await openWs(`ws://${topo.xrtcPublic}:${PORTS.http}/`);
            const send = wsClient(ws);
            const replies: Array<Record<string, unknown>> = [];
            const sessions: number[] = [];
            for (let i = 0; i < 3; i++) {
              const sid = ((await send({ janus: "create" })).data as { id: number }).id;
              const hid =
                ((await send({ janus: "attach", session_id: sid, plugin: "janus.plugin.echotest" })).data as {
                  id: number;
                }).id;
              sessions.push(sid);
              replies.push(
                await send({
                  janus: "message",
                  session_id: sid,
                  handle_id: hid,
                  body: { audio: true },
                  jsep: { type: "offer", sdp: OFFER },
                }),
              );
            }
            assert.deepEqual(replies.map((r) => r.janus), ["event", "event", "error"]);
            assert.equal((replies[2].error as { code: number }).code, 503);
            assert.equal(ws.readyState, WebSocket.OPEN, "the WebSocket (and xRTC) lived");
            assert.equal(xrtc.negotiator!.sessionCount, 2);
            for (const sid of sessions) await send({ janus: "destroy", session_id: sid });
            ws.close();
            await waitFor("sessions released", () => xrtc.negotiator!.committed === 0 || undefined, 5_000);
          },
        );

        await t.step(
          "the same over HTTP: the third offer is refused with 503 and Retry-After, not lost behind a 502",
          async () => {
            const statuses: number[] = [];
            const sids: number[] = [];
            for (let i = 0; i < 3; i++) {
              const sid =
                ((await post(base, "", { janus: "create", transaction: "c" })).json.data as { id: number })
                  .id;
              const hid = ((await post(base, `/${sid}`, {
                janus: "attach",
                transaction: "a",
                plugin: "janus.plugin.echotest",
              })).json.data as { id: number }).id;
              sids.push(sid);
              const r = await post(base, `/${sid}/${hid}`, {
                janus: "message",
                transaction: "m",
                body: { audio: true },
                jsep: { type: "offer", sdp: OFFER },
              });
              statuses.push(r.status);
              if (i === 2) assert.ok(Number(r.headers.get("retry-after")) > 0);
            }
            assert.deepEqual(statuses, [200, 200, 503]);
            for (const sid of sids) await post(base, `/${sid}`, { janus: "destroy", transaction: "d" });
          },
        );
      },
    );
  },
);

Deno.test(
  "WebSocket upgrades: a failed one opens nothing towards Janus; frames over the limit close with 1009",
  opts,
  async (t) => {
    await withStack({}, async ({ topo }) => {
      await t.step("1,000 bad upgrades leave no WebSocket open in Janus", async () => {
        for (let i = 0; i < 1_000; i += 50) {
          const statuses = await Promise.all(
            Array.from({ length: 50 }, () => badUpgrade(topo.xrtcPublic, PORTS.http)),
          );
          assert.ok(statuses.every((s) => s === 400), `refused: ${statuses}`);
        }
        await sleep(500);
        assert.equal(await janusWebSockets(topo), 0);
      });
      await t.step("a 2 MB binary frame closes the connection with 1009 (too big)", async () => {
        const ws = await openWs(`ws://${topo.xrtcPublic}:${PORTS.http}/`);
        const closed = new Promise<number>((r) => ws.onclose = (ev) => r(ev.code));
        ws.send(new Uint8Array(2 * 1024 * 1024));
        assert.equal(await closed, 1009);
        await waitFor(
          "Janus's side closed too",
          async () => await janusWebSockets(topo) === 0 || undefined,
          5_000,
        );
      });
    });
  },
);

Deno.test(
  "SDP: ICE attributes in any letter case never reach Janus; Janus never checks an address the client chose",
  opts,
  async () => {
    await withStack({}, async ({ topo, base }) => {
      const trap = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcServerSide, port: 0 });
      const port = (trap.addr as Deno.NetAddr).port;
      const smuggled =
        OFFER.replace(/a=ice-ufrag:(\S+)/g, "a=ICE-UFRAG:$1").replace(/a=ice-pwd:(\S+)/g, "a=Ice-Pwd:$1") +
        `a=CANDIDATE:1 1 UDP 2130706431 ${topo.xrtcServerSide} ${port} typ host\r\n`;
      try {
        const sid =
          ((await post(base, "", { janus: "create", transaction: "c" })).json.data as { id: number }).id;
        const hid = ((await post(base, `/${sid}`, {
          janus: "attach",
          transaction: "a",
          plugin: "janus.plugin.echotest",
        })).json.data as { id: number }).id;
        await post(base, `/${sid}/${hid}`, {
          janus: "message",
          transaction: "m",
          body: { audio: true },
          jsep: { type: "offer", sdp: smuggled },
        });
        const buf = new Uint8Array(2048);
        const got = await Promise.race([trap.receive(buf).then(() => true), sleep(3_000).then(() => false)]);
        assert.equal(got, false, "Janus sent nothing to the smuggled candidate");
        await post(base, `/${sid}`, { janus: "destroy", transaction: "d" });
      } finally {
        trap.close();
      }
    });
  },
);

Deno.test(
  "per-client limits: sessions per address and create rate refused with 429; connections per address with 503",
  opts,
  async (t) => {
    const options =
      "  consent_timeout: 30s\n  limits: { janus_sessions_per_address: 3, janus_session_rate_per_address: 50, max_connections_per_address: 20 }";
    await withStack({ xrtc: { options } }, async ({ topo, base }) => {
      await t.step("the fourth Janus session from one address", async () => {
        const sids: number[] = [];
        for (let i = 0; i < 3; i++) {
          sids.push(
            ((await post(base, "", { janus: "create", transaction: "c" })).json.data as { id: number }).id,
          );
        }
        const fourth = await post(base, "", { janus: "create", transaction: "c" });
        assert.equal(fourth.status, 429);
        assert.equal(fourth.json.janus, "error");
        assert.ok(Number(fourth.headers.get("retry-after")) > 0);
        for (const sid of sids) await post(base, `/${sid}`, { janus: "destroy", transaction: "d" });
        const again = await post(base, "", { janus: "create", transaction: "c" });
        assert.equal(again.json.janus, "success", "destroyed sessions free the address's quota");
        await post(base, `/${(again.json.data as { id: number }).id}`, {
          janus: "destroy",
          transaction: "d",
        });
      });
      await t.step("the 21st connection from one address gets 503 and is closed", async () => {
        const before = await metric("xrtc_tcp_connections_closed_total", { reason: "address_limit" });
        const conns = await Promise.all(
          Array.from({ length: 20 }, () => Deno.connect({ hostname: topo.xrtcPublic, port: PORTS.http })),
        );
        await sleep(200);
        const extra = await Deno.connect({ hostname: topo.xrtcPublic, port: PORTS.http });
        const buf = new Uint8Array(512);
        const n = await extra.read(buf);
        assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 503/);
        // The test's own pooled keep-alive connections count too: at least this one was refused.
        assert.ok(
          (await metric("xrtc_tcp_connections_closed_total", { reason: "address_limit" })) >= before + 1,
        );
        for (const c of [...conns, extra]) c.close();
      });
    });
  },
);

Deno.test("vanished clients: Janus is told, and every table entry goes", opts, async (t) => {
  const options = "  consent_timeout: 3s\n  janus: { session_timeout: 4s }";
  await withStack({ xrtc: { options } }, async ({ xrtc, janus, base }) => {
    await t.step("an ICE session no client ever checks ends, and Janus hangs the handle up", async () => {
      const s = await openEchoSession(base);
      assert.equal(xrtc.negotiator!.sessionCount, 1);
      // The client keeps its Janus session alive as janus.js does: one long-poll alone lasts until the
      // hangup (consent timeout 3 s, swept once a second), which raced the 4 s session timeout.
      const keepalive = setInterval(() => {
        post(base, `/${s.sid}`, { janus: "keepalive", transaction: "k" }).catch(() => {});
      }, 1000);
      let hangup = false;
      try {
        for (let i = 0; i < 10 && !hangup; i++) {
          const events = await (await fetch(`${base}/janus/${s.sid}?maxev=5`)).json();
          hangup = (Array.isArray(events) ? events : [events]).some((e) =>
            e.janus === "hangup" && e.sender === s.hid
          );
        }
      } finally {
        clearInterval(keepalive);
      }
      assert.ok(hangup, "Janus reported the hangup xRTC asked for");
      assert.equal(xrtc.negotiator!.sessionCount, 0);
    });
    await t.step(
      "a client that stops polling: xRTC forgets its Janus session and Janus destroys it",
      async () => {
        const sid =
          ((await post(base, "", { janus: "create", transaction: "c" })).json.data as { id: number }).id;
        await waitFor(
          "xRTC forgot the idle session",
          () => xrtc.signalling.sessions.get(String(sid)) === undefined || undefined,
          12_000,
          250,
        );
        const list = await janus.admin({ janus: "list_sessions" });
        assert.ok(!(list.sessions as number[]).includes(sid), "gone from Janus too");
        assert.equal(xrtc.signalling.sessions.size, 0);
        assert.equal(xrtc.signalling.sessions.trackedClients, 0);
      },
    );
  });
});

Deno.test(
  "hangup, detach and destroy take effect in xRTC only when Janus accepts them (Janus with an API secret)",
  opts,
  async () => {
    const secret = "xrtc-test-api-secret";
    await withStack({ janus: { apiSecret: secret } }, async ({ xrtc, base }) => {
      const sid =
        ((await post(base, "", { janus: "create", transaction: "c", apisecret: secret })).json.data as {
          id: number;
        }).id;
      const hid = ((await post(base, `/${sid}`, {
        janus: "attach",
        transaction: "a",
        plugin: "janus.plugin.echotest",
        apisecret: secret,
      })).json.data as { id: number }).id;
      await post(base, `/${sid}/${hid}`, {
        janus: "message",
        transaction: "m",
        body: { audio: true },
        apisecret: secret,
        jsep: { type: "offer", sdp: OFFER },
      });
      await waitFor("the answer", async () => {
        const ev = await (await fetch(`${base}/janus/${sid}?maxev=5&apisecret=${secret}`)).json();
        return (Array.isArray(ev) ? ev : [ev]).some((e) => e.jsep) || xrtc.negotiator!.sessionCount === 1 ||
          undefined;
      }, 10_000);
      assert.equal(xrtc.negotiator!.sessionCount, 1);
      for (
        const [janus, path] of [["hangup", `/${sid}/${hid}`], ["detach", `/${sid}/${hid}`], [
          "destroy",
          `/${sid}`,
        ]]
      ) {
        const r = await post(base, path, { janus, transaction: "x" }); // no secret: Janus refuses
        assert.equal(r.json.janus, "error");
      }
      assert.equal(xrtc.negotiator!.sessionCount, 1, "the ICE session lives");
      assert.ok(xrtc.signalling.sessions.handle(String(sid), String(hid)));
      const ok = await post(base, `/${sid}`, { janus: "destroy", transaction: "d", apisecret: secret });
      assert.equal(ok.json.janus, "success");
      assert.equal(xrtc.negotiator!.sessionCount, 0);
      assert.equal(xrtc.signalling.sessions.size, 0);
    });
  },
);

Deno.test(
  "media redirection: a forged nominating check from a victim's address sends the victim no media",
  opts,
  async () => {
    await withStack({}, async ({ topo, base }) => {
      const target = { transport: "udp" as const, hostname: topo.xrtcPublic, port: PORTS.udp };
      const s = await openEchoSession(base);
      // The attacker's own socket: it signals its own session, answers xRTC's checks, keeps consent.
      const attacker = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
      const victim = 47_001;
      let attackerMedia = 0;
      const answering = (async () => {
        const buf = new Uint8Array(2048);
        for (;;) {
          let d: Uint8Array;
          try {
            [d] = await attacker.receive(buf);
          } catch {
            return;
          }
          if (d[0] > 3) {
            attackerMedia++;
            continue;
          }
          const m = parseStun(d.slice());
          if (m.type !== BINDING_REQUEST) continue;
          const local = attacker.addr as Deno.NetAddr;
          await attacker.send(
            buildStun({
              type: BINDING_SUCCESS,
              transactionId: m.transactionId,
              attributes: [[
                Attr.XOR_MAPPED_ADDRESS,
                encodeXorAddress({ host: local.hostname, port: local.port }, m.transactionId),
              ]],
              integrityKey: new TextEncoder().encode(CLIENT.pwd),
              fingerprint: true,
            }),
            target,
          );
        }
      })();
      // The victim: a host in the client's network that never asked for anything, counting what it gets.
      const counter = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          topo.clientNs,
          "python3",
          "-c",
          `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("${topo.clientAddr}", ${victim}))
s.settimeout(0.2)
stun = media = 0
end = time.time() + 6
while time.time() < end:
    try:
        d = s.recv(4096)
    except socket.timeout:
        continue
    if d[0] <= 3: stun += 1
    else: media += 1
print(f"STUN {stun} MEDIA {media}")
`,
        ],
        stdout: "piped",
      }).spawn();
      await sleep(300);
      await attacker.send(signedCheck(s.ufrag, s.clientUfrag, s.pwd, { useCandidate: true }), target);
      await sleep(300);
      const forged = signedCheck(s.ufrag, s.clientUfrag, s.pwd, { useCandidate: true });
      await run(
        topo.inClient([
          "python3",
          SPOOF,
          "once",
          topo.xrtcPublic,
          String(PORTS.udp),
          topo.clientAddr,
          String(victim),
          [...forged].map((b) => b.toString(16).padStart(2, "0")).join(""),
        ]),
      );
      for (let i = 0; i < 10; i++) {
        await sleep(500);
        await attacker.send(signedCheck(s.ufrag, s.clientUfrag, s.pwd), target); // consent from the real address
      }
      const out = new TextDecoder().decode((await counter.output()).stdout);
      const [, stun, media] = /STUN (\d+) MEDIA (\d+)/.exec(out)!.map(Number);
      attacker.close();
      await answering;
      assert.equal(media, 0, `the victim received ${media} media packets`);
      assert.ok(stun <= 5, `the victim received only xRTC's few checks and an answer: ${stun}`);
      assert.ok(attackerMedia > 0, "Janus's DTLS went to the attacker's own, validated address");
    });
  },
);

Deno.test({
  name:
    "flood with a live call: 250,000 spoofed source tuples, unknown-ufrag checks, half-open TCP and bad upgrades; the call keeps >= 95 %",
  ignore: TEST_BACKEND !== "ffi",
  ...opts,
  fn: async () => {
    const options = "  consent_timeout: 30s\n  limits: { max_connections_per_address: 100000 }";
    await withStack({ xrtc: { options } }, async ({ topo, xrtc, base }) => {
      const fdsBefore = fdCount();
      const rssBefore = rssMb();
      const call = runWeriftClient(topo, {
        signal: "http",
        base,
        scenario: "echotest",
        tag: "long",
        messages: 5,
        rtp: 600,
        timeoutMs: 60_000,
      });
      await sleep(2_000);
      const unknownBefore = await dropped("unknown_tuple");
      const floods = [
        run(
          topo.inClient([
            "python3",
            SPOOF,
            "flood",
            topo.xrtcPublic,
            String(PORTS.udp),
            "198.19.0",
            "250000",
            "25000",
          ]),
        ),
        (async () => {
          const sock = Deno.listenDatagram({ transport: "udp", hostname: topo.xrtcPublic, port: 0 });
          const target = { transport: "udp" as const, hostname: topo.xrtcPublic, port: PORTS.udp };
          for (let i = 0; i < 20_000; i++) {
            await sock.send(
              signedCheck(`nosuch${i % 1000}`, "attacker", "attackerpasswordattackerp"),
              target,
            );
            if (i % 500 === 0) await sleep(20);
          }
          sock.close();
        })(),
        (async () => {
          const conns = await Promise.all(
            Array.from(
              { length: 2_000 },
              () => Deno.connect({ hostname: topo.xrtcPublic, port: PORTS.tcp }).catch(() => undefined),
            ),
          );
          await sleep(3_000);
          for (const c of conns) c?.close();
        })(),
        (async () => {
          for (let i = 0; i < 500; i++) await badUpgrade(topo.xrtcPublic, PORTS.http).catch(() => 0);
        })(),
      ];
      await Promise.all(floods);
      const r = await call;
      await recordFigure("flood with a live call", {
        rtp_echoed_of_600: r.rtpEchoed as number,
        spoofed_dropped_unknown_tuple: (await dropped("unknown_tuple")) - unknownBefore,
      });
      assert.deepEqual(r.errors, []);
      assert.ok((r.rtpEchoed as number) >= 570, `the live call kept ${r.rtpEchoed}/600 packets`);
      assert.ok(
        (await dropped("unknown_tuple")) - unknownBefore > 200_000,
        "the spoofed flood was dropped and counted",
      );
      assert.equal(await janusWebSockets(topo), 0);
      await waitFor(
        "descriptors back to baseline",
        () => fdCount() <= fdsBefore + 10 || undefined,
        15_000,
        500,
      );
      await waitFor("sessions released", () => xrtc.negotiator!.committed === 0 || undefined, 10_000);
      await recordFigure("flood with a live call", { rss_growth_mb: Math.round(rssMb() - rssBefore) });
      assert.ok(rssMb() - rssBefore < 150, `RSS grew ${Math.round(rssMb() - rssBefore)} MB`);
    });
  },
});
