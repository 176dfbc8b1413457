// The test network, made with network namespaces: Janus on a "server host", clients on a "client
// host" that has a route to xRTC's public address and none to Janus, and xRTC in the root namespace
// between them. Janus never gathers candidates on loopback, so it needs a real interface.
// Addresses are from the benchmarking range (RFC 2544, 198.18.0.0/15) and, for IPv6, unique local
// addresses (RFC 4193, fd18::/64 and fd19::/64), and exist only on these links; the topology refuses to
// start if the machine already uses them.
import { run, waitFor } from "./run.ts";

export interface Topology {
  serverNs: string;
  clientNs: string;
  /** xRTC's address on the server link, and Janus's. */
  xrtcServerSide: string;
  janusAddr: string;
  /** xRTC's address as clients reach it, and the client host's. */
  xrtcPublic: string;
  clientAddr: string;
  /** The same four on IPv6 (each link also has its ULA /64). */
  xrtcServerSide6: string;
  janusAddr6: string;
  xrtcPublic6: string;
  clientAddr6: string;
  /** Runs a command inside the client namespace. */
  inClient(cmd: string[]): string[];
  close(): Promise<void>;
}

let counter = 0;

export async function makeTopology(): Promise<Topology> {
  const tag = `${Deno.pid % 100000}${counter++}`;
  const serverNs = `xrtc-s${tag}`, clientNs = `xrtc-c${tag}`;
  const sv = `xs${tag}`, cv = `xc${tag}`;
  const t: Topology = {
    serverNs,
    clientNs,
    xrtcServerSide: "198.18.0.1",
    janusAddr: "198.18.0.2",
    xrtcPublic: "198.19.0.1",
    clientAddr: "198.19.0.2",
    xrtcServerSide6: "fd18::1",
    janusAddr6: "fd18::2",
    xrtcPublic6: "fd19::1",
    clientAddr6: "fd19::2",
    inClient: (cmd) => ["ip", "netns", "exec", clientNs, ...cmd],
    close: async () => {
      await run(["ip", "netns", "del", serverNs], { allowFail: true });
      await run(["ip", "netns", "del", clientNs], { allowFail: true });
      await run(["ip", "link", "del", `${sv}a`], { allowFail: true });
      await run(["ip", "link", "del", `${cv}a`], { allowFail: true });
    },
  };
  await removeStale();
  const inUse = await run(["ip", "-br", "addr"]);
  if (/\b198\.1[89]\.|\bfd1[89]::/.test(inUse)) {
    throw new Error(`198.18.0.0/15 or fd18::/fd19:: is already in use on this machine:\n${inUse}`);
  }
  try {
    for (
      const [ns, veth, mine, theirs, mine6, theirs6] of [
        [serverNs, sv, t.xrtcServerSide, t.janusAddr, t.xrtcServerSide6, t.janusAddr6],
        [clientNs, cv, t.xrtcPublic, t.clientAddr, t.xrtcPublic6, t.clientAddr6],
      ]
    ) {
      await run(["ip", "netns", "add", ns]);
      await run(["ip", "link", "add", `${veth}a`, "type", "veth", "peer", "name", `${veth}b`, "netns", ns]);
      await run(["ip", "addr", "add", `${mine}/24`, "dev", `${veth}a`]);
      await withoutDad(undefined, `${veth}a`);
      await run(["ip", "link", "set", `${veth}a`, "up"]);
      await run(["ip", "-n", ns, "addr", "add", `${theirs}/24`, "dev", `${veth}b`]);
      await withoutDad(ns, `${veth}b`);
      await run(["ip", "-n", ns, "link", "set", `${veth}b`, "up"]);
      await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
      // nodad: usable at once, no duplicate-address detection wait on a link of two ends.
      await run(["ip", "addr", "add", `${mine6}/64`, "dev", `${veth}a`, "nodad"]);
      await run(["ip", "-n", ns, "addr", "add", `${theirs6}/64`, "dev", `${veth}b`, "nodad"]);
    }
    await settled(clientNs);
    // The client host has only its /24: no route to Janus's network, and no default route.
    const route = await run(["ip", "netns", "exec", clientNs, "ip", "route", "get", t.janusAddr], {
      allowFail: true,
    });
    if (!/unreachable/i.test(route)) throw new Error(`client namespace can route to Janus: ${route}`);
    const route6 = await run(["ip", "netns", "exec", clientNs, "ip", "-6", "route", "get", t.janusAddr6], {
      allowFail: true,
    });
    if (!/unreachable/i.test(route6)) {
      throw new Error(`client namespace can route to Janus over IPv6: ${route6}`);
    }
  } catch (e) {
    await t.close();
    throw e;
  }
  return t;
}

/** Turns IPv6 duplicate-address detection off on a link before it comes up: its link-local address is then
 * final at once. With DAD it changes state about a second later, which Chromium in that namespace takes
 * for a network change, failing a page load in progress (net::ERR_NETWORK_CHANGED). */
export async function withoutDad(ns: string | undefined, dev: string): Promise<void> {
  const write = ["sh", "-c", `echo 0 > /proc/sys/net/ipv6/conf/${dev}/accept_dad`];
  await run(ns ? ["ip", "netns", "exec", ns, ...write] : write);
}

/** Waits until no address in the namespace is still tentative (none is, with DAD off), so that no
 * address change reaches a browser started there afterwards. */
export async function settled(ns: string): Promise<void> {
  await waitFor(
    `no tentative address in ${ns}`,
    async () => !(await run(["ip", "-n", ns, "-o", "addr", "show", "tentative"])).trim() || undefined,
    5_000,
  );
}

/** Loads an nftables ruleset inside a namespace. */
export async function applyNft(ns: string, ruleset: string): Promise<void> {
  const file = await Deno.makeTempFile({ suffix: ".nft" });
  await Deno.writeTextFile(file, ruleset);
  try {
    await run(["ip", "netns", "exec", ns, "nft", "-f", file]);
  } finally {
    await Deno.remove(file);
  }
}

/** Blocks UDP in the client namespace (for ICE-TCP tests), with nftables. */
export async function blockClientUdp(t: Topology): Promise<void> {
  await applyNft(
    t.clientNs,
    `table inet xrtc_test {
  chain out {
    type filter hook output priority 0;
    meta l4proto udp drop
  }
  chain in {
    type filter hook input priority 0;
    meta l4proto udp drop
  }
}
`,
  );
}

/** Removes what a crashed earlier run of these tests left: its namespaces (and their processes). */
async function removeStale(): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  for (const ns of list.split("\n").map((l) => l.split(" ")[0]).filter((n) => /^xrtc-[sc]\d+$/.test(n))) {
    const pids = (await run(["ip", "netns", "pids", ns], { allowFail: true })).split(/\s+/).filter(Boolean);
    for (const pid of pids) await run(["kill", "-9", pid], { allowFail: true });
    await run(["ip", "netns", "del", ns], { allowFail: true });
  }
  const links = await run(["ip", "-br", "link"]);
  for (const name of links.split("\n").map((l) => l.split(/[\s@]/)[0]).filter((n) => /^x[sc]\d+a$/.test(n))) {
    await run(["ip", "link", "del", name], { allowFail: true });
  }
}
