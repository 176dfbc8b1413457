// Dual-stack: one shared UDP port bound on "::" carries IPv4 and IPv6 clients, the answer carries
// xRTC's candidates of both families, and the Janus leg runs in Janus's family. The client link and the
// server link have unique local addresses (fd19::/64, fd18::/64) besides their IPv4 ones; the client
// has no route to Janus on either. On the batched libc backend (sockaddr_in6, IPV6_V6ONLY off).
import assert from "node:assert/strict";
import { PORTS, runWeriftClient, withStack } from "./lib/xrtc.ts";
import type { Topology } from "./lib/topology.ts";
import type { Xrtc } from "../src/app.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** werift in the client namespace on one family only: the call must go over xRTC's candidate of it. */
async function echoOver(family: 4 | 6, topo: Topology, base: string, tag: string) {
  const r = await runWeriftClient(topo, {
    signal: "http",
    base,
    scenario: "echotest",
    tag,
    messages: 5,
    rtp: 30,
    ipv6: family === 6,
  });
  assert.deepEqual(r.errors, [], JSON.stringify(r));
  assert.equal(r.dcEchoes, 5, "every data-channel message echoed");
  assert.ok((r.rtpEchoed as number) >= 27, `RTP echoed: ${r.rtpEchoed}/30`);
  assert.equal(r.rtpForeign, 0);
  const answer = r.answerCandidates as string[];
  assert.ok(answer.some((c) => c.includes(` ${topo.xrtcPublic} ${PORTS.udp} `)), `IPv4 candidate: ${answer}`);
  assert.ok(
    answer.some((c) => c.includes(` ${topo.xrtcPublic6} ${PORTS.udp} `)),
    `IPv6 candidate: ${answer}`,
  );
  assert.ok(
    answer.every((c) => c.includes(` ${topo.xrtcPublic} `) || c.includes(` ${topo.xrtcPublic6} `)),
    "only xRTC's candidates reach the client",
  );
  const xrtcAddress = family === 6 ? topo.xrtcPublic6 : topo.xrtcPublic;
  assert.equal(
    r.selectedRemote,
    `udp:${xrtcAddress}:${PORTS.udp}`,
    `the pair is IPv${family} to xRTC's port`,
  );
  return r;
}

/** The Janus address each live session's leg uses, from the status view. */
async function janusAddresses(x: Xrtc): Promise<string[]> {
  const status = await x.status() as {
    sessions: Array<{ janus?: string; paths: Array<{ remote: string }> }>;
  };
  return status.sessions.map((s) => s.janus ?? "");
}

Deno.test(
  "IPv6: a client on IPv6 through the dual-stack port to a Janus on IPv4 (half proxy)",
  opts,
  async () => {
    await withStack({ xrtc: { dualStack: true, ioBackend: "ffi" } }, async ({ topo, xrtc, base }) => {
      let seen: string[] = [];
      const poll = setInterval(async () => {
        const now = await janusAddresses(xrtc).catch(() => []);
        if (now.some(Boolean)) seen = now;
      }, 200);
      try {
        await echoOver(6, topo, base, "v6-to-v4");
      } finally {
        clearInterval(poll);
      }
      assert.ok(
        seen.length > 0 && seen.every((a) => a.startsWith(`${topo.janusAddr}:`)),
        `Janus leg on IPv4: ${seen}`,
      );
    });
  },
);

Deno.test(
  'dual-stack: a client on IPv4 through the same port ("::", v4-mapped) to a Janus on IPv4 (half proxy)',
  opts,
  async () => {
    await withStack({ xrtc: { dualStack: true, ioBackend: "ffi" } }, async ({ topo, base }) => {
      await echoOver(4, topo, base, "v4-dual");
    });
  },
);

for (const icedirect of [false, true]) {
  Deno.test(
    `IPv6: a client on IPv6 to a Janus whose media is on IPv6 only (${icedirect ? "full" : "half"} proxy)`,
    opts,
    async () => {
      await withStack(
        { janus: { ipv6Media: true }, xrtc: { dualStack: true, ioBackend: "ffi", icedirect } },
        async ({ topo, xrtc, base }) => {
          let seen: string[] = [];
          const poll = setInterval(async () => {
            const now = await janusAddresses(xrtc).catch(() => []);
            if (now.some(Boolean)) seen = now;
          }, 200);
          try {
            await echoOver(6, topo, base, icedirect ? "v6-full" : "v6-half");
          } finally {
            clearInterval(poll);
          }
          assert.ok(
            seen.length > 0 && seen.every((a) => a.startsWith(`[${topo.janusAddr6}]:`)),
            `Janus leg on IPv6: ${seen}`,
          );
        },
      );
    },
  );
}
