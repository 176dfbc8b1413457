// Three xRTC nodes (each in its own namespace, with its own address and candidates), two Janus servers,
// Redis as the session directory, and Debian's nginx with the shipped front configuration
// (deploy/nginx/xrtc.conf) as a round-robin signalling front without stickiness. Clients reach only nginx
// and the nodes' ICE ports. Every call gets media on the node whose candidates it received, whichever
// node each of its requests landed on; sessions spread over both Janus servers; a Janus that dies leaves
// rotation and its sessions are released; with Redis stopped, what the README says still works does.
import assert from "node:assert/strict";
import { CLUSTER_PORTS, type ClusterTopology, makeClusterTopology } from "./lib/cluster_topology.ts";
import { type Janus, startJanus } from "./lib/janus.ts";
import { type Redis, startRedis } from "./lib/redis.ts";
import { type Nginx, startNginx } from "./lib/nginx.ts";
import { spawnXrtc, type XrtcProcess } from "./lib/xrtc_process.ts";
import { ROOT, runWeriftClient, TEST_BACKEND, whipPublish } from "./lib/xrtc.ts";
import { chromiumEchotest } from "./lib/browser.ts";
import { recordFigure, sleep, waitFor } from "./lib/run.ts";
import { janusPost, type Msg, openWs, wsRequest } from "./lib/janus_api.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function nodeConfig(c: ClusterTopology, i: number, redisUrl: string): string {
  const n = c.nodes[i];
  // The front and the other nodes are trusted proxies: the client's own address reaches the node
  // holding its session (limits, logs).
  const proxies = [c.frontAddr, ...c.nodes.map((x) => x.serverAddr)].join(", ");
  return `
options:
  consent_timeout: 30s
  limits:
    trusted_proxies: [${proxies}]
cluster:
  redis: ${redisUrl}
  node: node-${i}
  peer_url: http://${n.serverAddr}:${CLUSTER_PORTS.http}
  node_ttl: 2s
services:
  janus:
    proto: upstream
    mode: rr
    backends:
      - { name: janus-a, http: "http://${c.janusAddr}:8088", ws: "ws://${c.janusAddr}:8188" }
      - { name: janus-b, http: "http://${c.janusAddr}:8089", ws: "ws://${c.janusAddr}:8189" }
    health: { interval: 500ms, timeout: 400ms, fall: 2, rise: 1 }
  ice_udp:
    proto: udp
    net:
      addr: ${n.publicAddr}:${CLUSTER_PORTS.udp}
      enable_ice: true
      candidate_ips: [${n.publicAddr}]
  web:
    proto: http
    net:
      addr: 0.0.0.0:${CLUSTER_PORTS.http}
    http:
      root: ${ROOT}html
      routes:
        janus:
          upstream: http://janus
          paths: [/janus]
          protos: [ws@janus-protocol]
      whip:
        live: { upstream: http://janus, room: 1234 }
  admin:
    proto: admin
    net: { addr: "${n.serverAddr}:${CLUSTER_PORTS.admin}" }
`;
}

interface NodeStatus {
  cluster: { node: string; redis: string; nodes: string[] };
  backends: Array<{ name: string; up: boolean }>;
}

const post = janusPost;

Deno.test("cluster: 3 xRTC nodes, 2 Janus, Redis, nginx round robin", opts, async (t) => {
  const c = await makeClusterTopology(3);
  let janusA: Janus | undefined, janusB: Janus | undefined, redis: Redis | undefined;
  let front: Nginx | undefined;
  const nodes: XrtcProcess[] = [];
  const dirs: string[] = [];
  const adminOf = (i: number) => `http://${c.nodes[i].serverAddr}:${CLUSTER_PORTS.admin}`;
  const signallingOf = (i: number) => `http://${c.nodes[i].publicAddr}:${CLUSTER_PORTS.http}`;
  const frontUrl = `http://${c.frontAddr}:${CLUSTER_PORTS.front}`;
  const status = async (i: number) => await (await fetch(`${adminOf(i)}/status`)).json() as NodeStatus;
  const metric = async (i: number, series: string) => {
    const text = await (await fetch(`${adminOf(i)}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    return line ? Number(line.split(" ")[1]) : 0;
  };
  /** The node that created a Janus session, and the backend it placed it on (from the node's log, whose
   * pipe is read apart from the reply: the line may come a moment after it), or undefined. */
  const holderOf = async (session: unknown) => {
    const find = () => {
      for (let i = 0; i < nodes.length; i++) {
        const line = nodes[i].lines.find((l) =>
          l.includes("event=janus_session_created") && l.includes(`janus_session=${session} `)
        );
        if (line) return { node: i, backend: /backend=(\S+)/.exec(line)![1] };
      }
      return undefined;
    };
    return await waitFor(`the log of session ${session}'s creation`, find, 5_000, 20).catch(() => undefined);
  };
  const allBackendsUp = async () => {
    for (let i = 0; i < nodes.length; i++) {
      if (!(await status(i)).backends.every((b) => b.up)) return undefined;
    }
    return true;
  };
  try {
    janusA = await startJanus(c.asTopology, { instance: 0 });
    janusB = await startJanus(c.asTopology, { instance: 1 });
    redis = await startRedis(c.redisAddr, CLUSTER_PORTS.redis, {
      netns: c.redisNs,
      password: "cluster-test",
    });
    for (let i = 0; i < c.nodes.length; i++) {
      const dir = await Deno.makeTempDir({ prefix: "xrtc-node-" });
      dirs.push(dir);
      await Deno.writeTextFile(`${dir}/routes.yml`, nodeConfig(c, i, redis.url));
      nodes.push(spawnXrtc(`${dir}/routes.yml`, { netns: c.nodes[i].ns, io: TEST_BACKEND }));
    }
    await Promise.all(nodes.map((n) => n.ready()));
    front = await startNginx(c.frontNs, `${frontUrl}/janus/info`);
    await waitFor(
      "every node sees the three nodes and both Janus",
      async () => {
        for (let i = 0; i < nodes.length; i++) {
          const s = await status(i);
          if (s.cluster.redis !== "up" || s.cluster.nodes.length !== 3) return undefined;
        }
        return await allBackendsUp();
      },
      20_000,
      200,
    );

    await t.step(
      "30 werift clients over nginx (HTTP long-poll and WS): media on the node of their candidates",
      async () => {
        const before = await Promise.all(
          nodes.map((_, i) => metric(i, 'xrtc_cluster_forwarded_total{protocol="http",outcome="ok"}')),
        );
        const runs = await Promise.all(["http", "ws"].map((signal) =>
          runWeriftClient(c.asTopology, {
            signal,
            base: frontUrl,
            scenario: "echotest",
            tag: `cluster-${signal}`,
            messages: 5,
            rtp: 30,
            clients: 15,
            timeoutMs: 90_000,
          })
        ));
        const placed = new Map<string, number>();
        const perNode = [0, 0, 0];
        for (const r of runs) {
          assert.deepEqual(r.errors, [], JSON.stringify(r.errors).slice(0, 2000));
          const clients = r.perClient as Array<Msg>;
          assert.equal(clients.length, 15);
          for (const cl of clients) {
            assert.ok((cl.rtpEchoed as number) >= 27, `RTP echoed ${cl.rtpEchoed}/30`);
            assert.equal(cl.dcEchoes, 5);
            assert.equal(cl.rtpForeign, 0, "no other client's media");
            const holder = await holderOf(cl.session);
            assert.ok(holder, `a node created session ${cl.session}`);
            const addr = c.nodes[holder.node].publicAddr;
            const cands = cl.answerCandidates as string[];
            assert.ok(
              cands.length > 0 && cands.every((l) => l.includes(` ${addr} `)),
              `candidates of node ${holder.node}: ${cands}`,
            );
            assert.equal(cl.selectedRemote, `udp:${addr}:${CLUSTER_PORTS.udp}`);
            placed.set(holder.backend, (placed.get(holder.backend) ?? 0) + 1);
            perNode[holder.node]++;
          }
        }
        assert.ok(
          (placed.get("janus-a") ?? 0) >= 5 && (placed.get("janus-b") ?? 0) >= 5,
          `spread: ${[...placed]}`,
        );
        assert.ok(perNode.every((n) => n >= 3), `sessions created on every node: ${perNode}`);
        // Round robin sent requests of these sessions to nodes that did not hold them: they were forwarded.
        const after = await Promise.all(
          nodes.map((_, i) => metric(i, 'xrtc_cluster_forwarded_total{protocol="http",outcome="ok"}')),
        );
        const forwarded = after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0);
        assert.ok(forwarded > 50, `requests forwarded between nodes: ${forwarded}`);
        await recordFigure("cluster: 30 werift clients", {
          per_node: perNode.join("/"),
          janus_a: placed.get("janus-a") ?? 0,
          janus_b: placed.get("janus-b") ?? 0,
          forwarded_http: forwarded,
        });
      },
    );

    await t.step("2 Chromium echotests through nginx (HTTP and WS)", async () => {
      for (const signal of ["http", "ws"]) {
        const out = await chromiumEchotest(
          c.asTopology,
          `${frontUrl}/echotest.html?autostart=1&signal=${signal}`,
          {
            secureOrigin: frontUrl,
          },
        );
        assert.deepEqual(out.result.errors, []);
        assert.ok(out.framesDecoded > 30, `${signal}: frames ${out.framesDecoded}`);
        const addrs = out.result.answerCandidates.map((l) => l.split(" ")[4]);
        const node = c.nodes.find((n) => addrs.length > 0 && addrs.every((a) => a === n.publicAddr));
        assert.ok(node, `answer names one node: ${addrs}`);
        assert.equal(out.selectedRemote, `udp:${node.publicAddr}:${CLUSTER_PORTS.udp}`);
      }
    });

    await t.step(
      "a session created over WebSocket on one node continues over HTTP on another, and the reverse",
      async () => {
        const ws = await openWs(signallingOf(0).replace("http", "ws"));
        try {
          const created = await wsRequest(ws, { janus: "create" });
          const sid = (created.data as Msg).id;
          const holder = (await holderOf(sid))!;
          assert.equal(holder.node, 0);
          const attached = await post(`${signallingOf(1)}/janus/${sid}`, {
            janus: "attach",
            plugin: "janus.plugin.echotest",
          });
          assert.equal(attached.body.janus, "success", JSON.stringify(attached.body));
          const hid = (attached.body.data as Msg).id;
          const janus = holder.backend === "janus-a" ? janusA! : janusB!;
          const handles = await janus.admin({ janus: "list_handles" }, `/${sid}`);
          assert.deepEqual(handles.handles, [hid], "the handle is on the Janus that holds the session");

          // Created over HTTP on node 2, continued over a WebSocket on node 1.
          const viaHttp = await post(`${signallingOf(2)}/janus`, { janus: "create" });
          const sid2 = (viaHttp.body.data as Msg).id;
          assert.equal((await holderOf(sid2))!.node, 2);
          const ws1 = await openWs(signallingOf(1).replace("http", "ws"));
          try {
            const a2 = await wsRequest(ws1, {
              janus: "attach",
              plugin: "janus.plugin.echotest",
              session_id: sid2,
            });
            assert.equal(a2.janus, "success", JSON.stringify(a2));
            const j2 = (await holderOf(sid2))!.backend === "janus-a" ? janusA! : janusB!;
            assert.deepEqual((await j2.admin({ janus: "list_handles" }, `/${sid2}`)).handles, [
              (a2.data as Msg).id,
            ]);
            const k = await wsRequest(ws1, { janus: "keepalive", session_id: sid2 });
            assert.equal(k.janus, "ack");
            // A claim moves a session's events to the claiming transport: only on the node holding it.
            const claim = await wsRequest(ws1, { janus: "claim", session_id: sid2 });
            assert.equal(claim.janus, "error");
            assert.match(JSON.stringify(claim), /node-2/);
          } finally {
            ws1.close();
          }
          // A made-up id is Janus's "no such session", from any node.
          const none = await post(`${signallingOf(1)}/janus/123456789`, { janus: "keepalive" });
          assert.equal((none.body.error as Msg).code, 458);
          await post(`${signallingOf(1)}/janus/${sid}`, { janus: "destroy" });
          await post(`${signallingOf(0)}/janus/${sid2}`, { janus: "destroy" });
        } finally {
          ws.close();
        }
      },
    );

    await t.step(
      "a WHIP resource created through nginx: PATCH and DELETE served from every node",
      async () => {
        const offer = Deno.readTextFileSync(new URL("./fixtures/chromium-offer.sdp", import.meta.url));
        const { answer, location, etag } = await whipPublish(`${frontUrl}/whip/live`, offer);
        const resource = location.split("/").at(-1)!;
        const holder = await waitFor(
          "a node holds the resource (its log)",
          () => {
            const i = nodes.findIndex((n) =>
              n.lines.some((l) => l.includes("event=whip_session_open") && l.includes(`resource=${resource}`))
            );
            return i >= 0 ? i : undefined;
          },
          5_000,
          20,
        );
        const candidates = answer.split(/\r?\n/).filter((l) => l.startsWith("a=candidate:"));
        assert.ok(
          candidates.length > 0 && candidates.every((l) => l.includes(` ${c.nodes[holder].publicAddr} `)),
          `the answer names the holding node's candidates: ${candidates}`,
        );
        const patch = async (i: number, tag: string) => {
          const r = await fetch(`${signallingOf(i)}${location}`, {
            method: "PATCH",
            headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": tag },
            body: "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n",
          });
          await r.body?.cancel();
          return r.status;
        };
        for (let i = 0; i < nodes.length; i++) {
          assert.equal(await patch(i, etag), 204, `PATCH through node ${i}`);
        }
        const other = (holder + 1) % nodes.length, third = (holder + 2) % nodes.length;
        assert.equal(await patch(other, '"stale"'), 412, "the holder's answer comes back whole");
        const del = await fetch(`${signallingOf(other)}${location}`, { method: "DELETE" });
        await del.body?.cancel();
        assert.equal(del.status, 200);
        const again = await fetch(`${signallingOf(third)}${location}`, { method: "DELETE" });
        await again.body?.cancel();
        assert.equal(again.status, 404);
        await nodes[holder].logged(new RegExp(`event=whip_session_end .*resource=${resource}`));
      },
    );

    await t.step(
      "one Janus dies: new sessions go to the other, its sessions are released; it returns",
      async () => {
        const ids: unknown[] = [];
        for (let i = 0; i < 6; i++) {
          ids.push(((await post(`${frontUrl}/janus`, { janus: "create" })).body.data as Msg).id);
        }
        const holders = await Promise.all(ids.map(holderOf));
        const onA = ids.filter((_, i) => holders[i]?.backend === "janus-a");
        assert.ok(onA.length > 0, "some sessions on janus-a");
        const killedAt = performance.now();
        await janusA!.stop();
        janusA = undefined;
        await waitFor(
          "janus-a down on every node",
          async () => {
            for (let i = 0; i < nodes.length; i++) {
              if ((await status(i)).backends.find((b) => b.name === "janus-a")!.up) return undefined;
            }
            return true;
          },
          10_000,
          100,
        );
        const outMs = performance.now() - killedAt;
        for (const id of onA) {
          const holder = (await holderOf(id))!;
          await waitFor(
            `session ${id} released`,
            () =>
              nodes[holder.node].lines.some((l) =>
                l.includes("event=janus_session_ended") && l.includes(`janus_session=${id} `) &&
                l.includes("backend_down")
              ) || undefined,
            5_000,
          );
          // Any node answers for it now with Janus's own "no such session".
          const r = await post(`${frontUrl}/janus/${id}`, { janus: "keepalive" });
          assert.equal((r.body.error as Msg | undefined)?.code, 458, JSON.stringify(r.body));
        }
        const fresh: unknown[] = [];
        for (let i = 0; i < 6; i++) {
          fresh.push(((await post(`${frontUrl}/janus`, { janus: "create" })).body.data as Msg).id);
        }
        assert.deepEqual(
          (await Promise.all(fresh.map(holderOf))).map((h) => h?.backend),
          Array(6).fill("janus-b"),
        );
        janusA = await startJanus(c.asTopology, { instance: 0 });
        await waitFor("janus-a back on every node", allBackendsUp, 10_000, 100);
        const again: unknown[] = [];
        for (let i = 0; i < 6; i++) {
          again.push(((await post(`${frontUrl}/janus`, { janus: "create" })).body.data as Msg).id);
        }
        assert.ok(
          (await Promise.all(again.map(holderOf))).some((h) => h?.backend === "janus-a"),
          "janus-a back in rotation",
        );
        await recordFigure("cluster: janus killed", { out_of_rotation_ms: Math.round(outMs) });
        for (const id of [...ids, ...fresh, ...again]) {
          await post(`${frontUrl}/janus/${id}`, { janus: "destroy" });
        }
      },
    );

    await t.step(
      "Redis stops mid-call: calls go on, known sessions are served, unknown ones get 503; it returns",
      async () => {
        // A call through nginx that outlives the outage: its requests reach every node, so every node has
        // located its session before Redis stops.
        const call = runWeriftClient(c.asTopology, {
          signal: "http",
          base: frontUrl,
          scenario: "echotest",
          tag: "cluster-redis-outage",
          messages: 5,
          rtp: 400,
          timeoutMs: 60_000,
        });
        // A session on node 0 that no other node has asked about.
        const quiet = ((await post(`${signallingOf(0)}/janus`, { janus: "create" })).body.data as Msg).id;
        await sleep(3_000);
        await redis!.stop();
        redis = undefined;
        await waitFor(
          "every node sees Redis down",
          async () => {
            for (let i = 0; i < nodes.length; i++) {
              if ((await status(i)).cluster.redis !== "down") return undefined;
            }
            return true;
          },
          10_000,
          100,
        );
        // Its own node serves it; another node cannot locate it: a retryable Janus-style 503.
        assert.equal(
          (await post(`${signallingOf(0)}/janus/${quiet}`, { janus: "keepalive" })).body.janus,
          "ack",
        );
        const elsewhere = await post(`${signallingOf(1)}/janus/${quiet}`, { janus: "keepalive" });
        assert.equal(elsewhere.status, 503);
        assert.equal((elsewhere.body.error as Msg).code, 503);
        // New sessions are still created and served by the node that made them.
        const created = await post(`${signallingOf(2)}/janus`, { janus: "create" });
        assert.equal(created.body.janus, "success");
        const sid = (created.body.data as Msg).id;
        assert.equal(
          (await post(`${signallingOf(2)}/janus/${sid}`, {
            janus: "attach",
            plugin: "janus.plugin.echotest",
          })).body.janus,
          "success",
        );
        const r = await call;
        assert.deepEqual(r.errors, []);
        assert.ok((r.rtpEchoed as number) >= 390, `the call went on: ${r.rtpEchoed}/400 echoed`);
        assert.equal(r.dcEchoes, 5);

        redis = await startRedis(c.redisAddr, CLUSTER_PORTS.redis, {
          netns: c.redisNs,
          password: "cluster-test",
        });
        // Redis came back empty: every node writes its sessions again, and the quiet one is found.
        await waitFor(
          "node 1 locates node 0's session again",
          async () =>
            (await post(`${signallingOf(1)}/janus/${quiet}`, { janus: "keepalive" })).body.janus === "ack" ||
            undefined,
          10_000,
          200,
        );
        await recordFigure("cluster: redis outage", {
          echoed: r.rtpEchoed as number,
          poll_failures: (r.pollFailures as number) ?? 0,
        });
        await post(`${signallingOf(0)}/janus/${quiet}`, { janus: "destroy" });
        await post(`${signallingOf(2)}/janus/${sid}`, { janus: "destroy" });
      },
    );
  } finally {
    await front?.stop();
    for (const n of nodes) await n.kill9();
    await redis?.stop();
    await janusA?.stop();
    await janusB?.stop();
    await c.close();
    for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});

Deno.test("the shipped HAProxy front configuration is valid (haproxy -c)", async () => {
  const out = await new Deno.Command("haproxy", {
    args: ["-c", "-f", `${ROOT}deploy/haproxy/xrtc.cfg`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  assert.match(text, /Configuration file is valid/);
});
