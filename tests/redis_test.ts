// The cluster directory's Redis client against Debian's redis-server on loopback: commands, pipelines,
// error replies, a server that goes away (commands fail at once, the state is reported) and comes back
// (the client reconnects by itself).
import assert from "node:assert/strict";
import { RedisClient, RedisUnavailable } from "../src/io/redis.ts";
import { RespError } from "../src/io/resp.ts";
import { freePort, sleep, waitFor } from "./lib/run.ts";
import { startRedis } from "./lib/redis.ts";
import { ClusterDirectory } from "../src/cluster/cluster.ts";
import type { RegistryChange } from "../src/signalling/sessions.ts";

Deno.test("redis client: commands, pipelines, errors, loss and return of the server", async () => {
  const port = freePort();
  let redis = await startRedis("127.0.0.1", port, { password: "s3cret" });
  const states: boolean[] = [];
  const client = new RedisClient({
    url: `redis://:s3cret@127.0.0.1:${port}/2`,
    commandTimeoutMs: 500,
    onState: (up) => states.push(up),
  });
  try {
    await client.start();
    assert.equal(client.up, true);
    assert.equal(await client.command(["SET", "k", "välue", "PX", "5000"]), "OK");
    assert.equal(await client.command(["GET", "k"]), "välue");
    assert.equal(await client.command(["GET", "missing"]), null);
    const many = await client.pipeline(Array.from({ length: 500 }, () => ["INCR", "n"]));
    assert.equal(many.at(-1), 500);
    assert.ok((await client.command(["NOSUCHCOMMAND"])) instanceof RespError);
    // The database of the URL was selected: db 0 does not have the key.
    assert.equal(await client.command(["SELECT", "0"]), "OK");
    assert.equal(await client.command(["GET", "k"]), null);

    await redis.stop();
    await waitFor("client sees redis down", () => !client.up || undefined, 5_000);
    const t0 = performance.now();
    await assert.rejects(client.command(["GET", "k"]), RedisUnavailable);
    assert.ok(performance.now() - t0 < 50, "a command fails at once while Redis is down");

    redis = await startRedis("127.0.0.1", port, { password: "s3cret" });
    await waitFor("client reconnects", () => client.up || undefined, 10_000);
    assert.equal(await client.command(["PING"]), "PONG");
    assert.deepEqual(states, [true, false, true]);
  } finally {
    client.close();
    await redis.stop();
  }
});

Deno.test("redis client: a wrong password is a failed connection, reported, not a crash", async () => {
  const port = freePort();
  const redis = await startRedis("127.0.0.1", port, { password: "right" });
  const reasons: string[] = [];
  const client = new RedisClient({
    url: `redis://:wrong@127.0.0.1:${port}`,
    onState: (up, reason) => !up && reasons.push(reason ?? ""),
  });
  try {
    void client.start();
    await waitFor("failure reported", () => reasons.length > 0 || undefined, 5_000);
    assert.equal(client.up, false);
    assert.match(reasons[0], /refused the connection set-up: WRONGPASS/);
    assert.ok(!reasons[0].includes("wrong"), "the password is not in the reason");
  } finally {
    client.close();
    await redis.stop();
  }
});

/** A stand-in for the registry's change of a session (the directory reads only its id). */
const added = (id: string, whip?: string) =>
  ({
    kind: "session",
    session: { id, whipResource: whip ? { resource: whip } : undefined },
  }) as unknown as RegistryChange;
const gone = (id: string): RegistryChange => ({ kind: "session_gone", id });

function directory(redisUrl: string, node: string, held: Set<string>): ClusterDirectory {
  const sessions = () => [...held].map((id) => ({ id }));
  return new ClusterDirectory({
    redisUrl,
    node,
    peerUrl: `http://127.0.0.1:${node === "a" ? 1001 : node === "b" ? 1002 : 1003}`,
    keyPrefix: `test${Deno.pid}`,
    nodeTtlMs: 1_000,
    redisTimeoutMs: 500,
    forwardTimeoutMs: 1_000,
  }, sessions);
}

Deno.test("cluster directory on Redis: publish, locate, node gone, outage, return, takeover", async () => {
  const port = freePort();
  let redis = await startRedis("127.0.0.1", port);
  const heldA = new Set<string>(), heldB = new Set<string>(), heldC = new Set<string>();
  const a = directory(redis.url, "a", heldA), b = directory(redis.url, "b", heldB);
  let c: ClusterDirectory | undefined;
  try {
    a.start();
    b.start();
    await waitFor("both nodes listed", () => b.status().nodes.length === 2 || undefined, 5_000, 50);
    heldA.add("101");
    a.onRegistryChange(added("101"));
    await a.published("101");
    assert.deepEqual(await b.locate("101"), { where: "node", node: "a", url: "http://127.0.0.1:1001" });
    assert.deepEqual(await b.locate("999"), { where: "unknown" });
    // A WHIP resource is located like its session.
    a.onRegistryChange(added("101", "RRRRRRRRRRRRRRRRRRRRRR"));
    await a.published("101");
    await sleep(20);
    assert.deepEqual(await b.locateWhip("RRRRRRRRRRRRRRRRRRRRRR"), {
      where: "node",
      node: "a",
      url: "http://127.0.0.1:1001",
    });
    assert.deepEqual(await b.locateWhip("SSSSSSSSSSSSSSSSSSSSSS"), { where: "unknown" });
    // A node's own entry for a session it does not hold (it outlived the session) is no owner.
    assert.deepEqual(await a.locate("101"), { where: "unknown" });

    heldA.delete("101");
    a.onRegistryChange(gone("101"));
    await a.published("101");
    b.forget("101");
    assert.deepEqual(await b.locate("101"), { where: "unknown" });

    // Takeover: node c holds 103 now; a's late deletion leaves c's entry.
    c = directory(redis.url, "c", heldC);
    c.start();
    heldA.add("103");
    a.onRegistryChange(added("103"));
    await a.published("103");
    heldC.add("103");
    await waitFor("c is up", () => c!.redis.up || undefined, 5_000, 20);
    c.onRegistryChange(added("103"));
    await c.published("103");
    a.onRegistryChange(gone("103"));
    await a.published("103");
    assert.equal((await b.locate("103") as { node?: string }).node, "c");

    // Outage: what b located before is still served; anything else is "unreachable", at once.
    heldA.add("102");
    a.onRegistryChange(added("102"));
    await a.published("102");
    assert.equal((await b.locate("102")).where, "node");
    heldA.add("104");
    a.onRegistryChange(added("104"));
    await a.published("104");
    await redis.stop();
    await waitFor("b sees redis down", () => b.status().redis === "down" || undefined, 5_000, 20);
    assert.deepEqual(await b.locate("102"), { where: "node", node: "a", url: "http://127.0.0.1:1001" });
    const t0 = performance.now();
    assert.equal((await b.locate("104")).where, "unreachable");
    assert.ok(performance.now() - t0 < 50, "no wait on a dead Redis");

    // Redis returns empty: every node writes what it holds again.
    redis = await startRedis("127.0.0.1", port);
    await waitFor(
      "b locates 104 again",
      async () => (await b.locate("104")).where === "node" || undefined,
      10_000,
      100,
    );

    // Node a stops (its entry expires after the node TTL; its sessions' entries outlive it): "node_gone".
    a.stop();
    await sleep(1_300);
    b.forget("104");
    assert.deepEqual(await b.locate("104"), { where: "node_gone", node: "a" });
  } finally {
    a.stop();
    b.stop();
    c?.stop();
    await redis.stop();
  }
});
