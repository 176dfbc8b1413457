// The cluster's test network, in network namespaces joined by two bridges (in a "wire" namespace of
// their own): the server link (198.18.8.0/24: the xRTC nodes, the Janus host, Redis, and the test
// process) and the public link (198.19.8.0/24: the xRTC nodes, the nginx front, the client host, and the
// test process). The client host reaches nginx and the nodes' ICE ports only (nftables), and has no
// route to the server link.
import { run } from "./run.ts";
import { applyNft, settled, type Topology, withoutDad } from "./topology.ts";

export const CLUSTER_PORTS = { udp: 6001, tcp: 6443, http: 8080, admin: 6090, redis: 6379, front: 8080 };

export interface ClusterTopology {
  nodes: Array<{ ns: string; serverAddr: string; publicAddr: string }>;
  janusNs: string;
  janusAddr: string;
  redisNs: string;
  redisAddr: string;
  frontNs: string;
  frontAddr: string;
  clientNs: string;
  clientAddr: string;
  /** The Janus host and the client host in the shape tests/lib's helpers take (Janus, werift, Chromium). */
  asTopology: Topology;
  inNs(ns: string, cmd: string[]): string[];
  close(): Promise<void>;
}

let counter = 0;

export async function makeClusterTopology(nodeCount = 3): Promise<ClusterTopology> {
  await removeStale();
  const inUse = await run(["ip", "-br", "addr"]);
  if (/\b198\.1[89]\.8\./.test(inUse)) throw new Error(`198.18.8.0/24 or 198.19.8.0/24 is in use:\n${inUse}`);
  const tag = `${Deno.pid % 10000}${counter++}`;
  const ns = (role: string) => `xrtc-k${tag}${role}`;
  const wire = ns("w");
  const all: string[] = [wire];
  const links: string[] = [];
  const c: ClusterTopology = {
    nodes: Array.from({ length: nodeCount }, (_, i) => ({
      ns: ns(`n${i}`),
      serverAddr: `198.18.8.${10 + i}`,
      publicAddr: `198.19.8.${10 + i}`,
    })),
    janusNs: ns("j"),
    janusAddr: "198.18.8.2",
    redisNs: ns("r"),
    redisAddr: "198.18.8.3",
    frontNs: ns("g"),
    frontAddr: "198.19.8.2",
    clientNs: ns("c"),
    clientAddr: "198.19.8.100",
    asTopology: undefined as unknown as Topology,
    inNs: (n, cmd) => ["ip", "netns", "exec", n, ...cmd],
    close: async () => {
      for (const n of all) {
        const pids = (await run(["ip", "netns", "pids", n], { allowFail: true })).split(/\s+/).filter(
          Boolean,
        );
        for (const pid of pids) await run(["kill", "-9", pid], { allowFail: true });
      }
      for (const n of all) await run(["ip", "netns", "del", n], { allowFail: true });
      for (const l of links) await run(["ip", "link", "del", l], { allowFail: true });
    },
  };
  c.asTopology = {
    serverNs: c.janusNs,
    clientNs: c.clientNs,
    xrtcServerSide: c.nodes[0].serverAddr,
    janusAddr: c.janusAddr,
    xrtcPublic: c.frontAddr,
    clientAddr: c.clientAddr,
    xrtcServerSide6: "",
    janusAddr6: "",
    xrtcPublic6: "",
    clientAddr6: "",
    inClient: (cmd) => c.inNs(c.clientNs, cmd),
    close: () => c.close(),
  };
  let veth = 0;
  /** A host's interface on a bridge: a veth pair, one end in the wire namespace on the bridge. */
  const attach = async (host: string | undefined, bridge: "brs" | "brp", addr: string) => {
    const name = `xk${tag}v${veth++}`;
    await run(["ip", "-n", wire, "link", "add", `${name}w`, "type", "veth", "peer", "name", `${name}h`]);
    await run(["ip", "-n", wire, "link", "set", `${name}w`, "master", bridge, "up"]);
    if (host) await run(["ip", "-n", wire, "link", "set", `${name}h`, "netns", host]);
    else {
      await run(["ip", "-n", wire, "link", "set", `${name}h`, "netns", "1"]);
      links.push(`${name}h`);
    }
    const where = host ? ["-n", host] : [];
    await run(["ip", ...where, "addr", "add", `${addr}/24`, "dev", `${name}h`]);
    await withoutDad(host, `${name}h`);
    await run(["ip", ...where, "link", "set", `${name}h`, "up"]);
  };
  try {
    await run(["ip", "netns", "add", wire]);
    for (const br of ["brs", "brp"]) {
      await run(["ip", "-n", wire, "link", "add", br, "type", "bridge"]);
      await run(["ip", "-n", wire, "link", "set", br, "up"]);
    }
    const hosts = [...c.nodes.map((n) => n.ns), c.janusNs, c.redisNs, c.frontNs, c.clientNs];
    for (const h of hosts) {
      await run(["ip", "netns", "add", h]);
      all.push(h);
      await run(["ip", "-n", h, "link", "set", "lo", "up"]);
    }
    for (const n of c.nodes) {
      await attach(n.ns, "brs", n.serverAddr);
      await attach(n.ns, "brp", n.publicAddr);
    }
    await attach(c.janusNs, "brs", c.janusAddr);
    await attach(c.redisNs, "brs", c.redisAddr);
    await attach(c.frontNs, "brp", c.frontAddr);
    await attach(c.clientNs, "brp", c.clientAddr);
    // The test process itself, on both links (it checks the nodes' admin endpoints and Janus's).
    await attach(undefined, "brs", "198.18.8.254");
    await attach(undefined, "brp", "198.19.8.254");
    await limitClient(c);
    await settled(c.clientNs);
    const route = await run(c.inNs(c.clientNs, ["ip", "route", "get", c.janusAddr]), { allowFail: true });
    if (!/unreachable/i.test(route)) throw new Error(`client namespace can route to Janus: ${route}`);
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}

/** The client host reaches the front (any port) and the nodes' ICE ports, nothing else of the nodes. */
async function limitClient(c: ClusterTopology): Promise<void> {
  const nodes = c.nodes.map((n) => n.publicAddr).join(", ");
  await applyNft(
    c.clientNs,
    `table inet xrtc_cluster_client {
  chain out {
    type filter hook output priority 0;
    ip daddr { ${nodes} } udp dport ${CLUSTER_PORTS.udp} accept
    ip daddr { ${nodes} } tcp dport ${CLUSTER_PORTS.tcp} accept
    ip daddr { ${nodes} } drop
  }
}
`,
  );
}

/** What a crashed earlier run left: its namespaces (and their processes) and the test process's links. */
async function removeStale(): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  for (const n of list.split("\n").map((l) => l.split(" ")[0]).filter((n) => /^xrtc-k\d+[a-z]\d*$/.test(n))) {
    const pids = (await run(["ip", "netns", "pids", n], { allowFail: true })).split(/\s+/).filter(Boolean);
    for (const pid of pids) await run(["kill", "-9", pid], { allowFail: true });
    await run(["ip", "netns", "del", n], { allowFail: true });
  }
  const links = await run(["ip", "-br", "link"]);
  for (
    const name of links.split("\n").map((l) => l.split(/[\s@]/)[0]).filter((n) => /^xk\d+v\d+h$/.test(n))
  ) {
    await run(["ip", "link", "del", name], { allowFail: true });
  }
}
