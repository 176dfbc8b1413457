// Where xRTC's CPU per packet goes, against the C relay: both forward the same echo stream (4 clients,
// 1,200-byte packets, 20k packets/s for 8 s, ffi backend); for each, user and system CPU time of the
// process (/proc), and for xRTC a V8 CPU profile (--cpu-prof) summed by function, self time.
//   deno run -A bench/profile.ts          prints the split and the profile's top functions
import { buildCRelay, gen, startPeer } from "./scenarios.ts";
import { benchConfigYaml } from "./xrtc.ts";
import { freePort, sleep, spawn } from "./procs.ts";

/** /proc's clock ticks per second (USER_HZ): the user/system split exists only in ticks. */
const CLK_TCK = 100;

const RATE = 20_000, STEP_MS = 8_000, CLIENTS = 4;

interface Split {
  userMs: number;
  systemMs: number;
  forwarded: number;
}

function times(pid: number): [number, number] {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return [Number(f[11]), Number(f[12])];
}

async function measure(pid: number, run: () => ReturnType<typeof gen>): Promise<Split> {
  const [u0, s0] = times(pid);
  const r = await run();
  const [u1, s1] = times(pid);
  const step = r.steps[0];
  return {
    userMs: (u1 - u0) * 1000 / CLK_TCK,
    systemMs: (s1 - s0) * 1000 / CLK_TCK,
    forwarded: step.received * 2,
  };
}

/** Self time by function from a .cpuprofile, as shares of all samples. */
function topFunctions(file: string, n = 12): Array<[string, number]> {
  const p = JSON.parse(Deno.readTextFileSync(file)) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    samples: number[];
  };
  const byId = new Map(p.nodes.map((x) => [x.id, x.callFrame]));
  const counts = new Map<string, number>();
  for (const id of p.samples) {
    const f = byId.get(id)!;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").at(-1)}:${f.lineNumber + 1}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, c]) => [k, c / p.samples.length]);
}

const peer = await startPeer();
const common = { clients: CLIENTS, size: 1200, maxLoss: 1, stepMs: STEP_MS, rates: [RATE] };
try {
  const cmd = await buildCRelay();
  const port = freePort();
  const c = await spawn([String(port), String(peer.udp)], /^RELAY/, { command: cmd });
  const cSplit = await measure(c.pid, () => gen({ ...common, mode: "raw", port }));
  await c.stop();

  const profDir = await Deno.makeTempDir({ prefix: "xrtc-profile-" });
  const x = { backend: "ffi" as const, peerHttp: peer.http, udpPort: freePort(), httpPort: freePort() };
  const file = `${profDir}/routes.yml`;
  await Deno.writeTextFile(file, benchConfigYaml(x));
  const p = await spawn(
    ["run", "-A", "--cpu-prof", `--cpu-prof-dir=${profDir}`, "main.ts", "--config", file],
    /^xrtc: ready/,
  );
  const xSplit = await measure(
    p.pid,
    () =>
      gen({ ...common, mode: "xrtc", port: x.udpPort, http: `http://127.0.0.1:${x.httpPort}`, tag: "prof" }),
  );
  // The first SIGINT drains; the second stops at once, and V8 writes the profile on the way out.
  p.child.kill("SIGINT");
  await sleep(300);
  p.child.kill("SIGINT");
  await p.child.status;

  const per = (s: Split, ms: number) => (ms / s.forwarded * 1000).toFixed(3);
  console.log(
    `CPU per 1,000 forwarded packets at ${RATE} pps (${CLIENTS} clients, 1,200 bytes), user + system:`,
  );
  for (const [name, s] of [["C relay", cSplit], ["xRTC half proxy", xSplit]] as const) {
    console.log(
      `  ${name.padEnd(16)} ${per(s, s.userMs)} + ${per(s, s.systemMs)} = ${
        per(s, s.userMs + s.systemMs)
      } ms`,
    );
  }
  const total = (s: Split) => (s.userMs + s.systemMs) / s.forwarded;
  console.log(`  ratio to the C relay: ${(total(xSplit) / total(cSplit)).toFixed(2)}`);
  const prof = [...Deno.readDirSync(profDir)].find((e) => e.name.endsWith(".cpuprofile"));
  if (prof) {
    console.log("xRTC's main thread, self time by function (V8 CPU profile, whole run):");
    for (const [k, share] of topFunctions(`${profDir}/${prof.name}`)) {
      console.log(`  ${(share * 100).toFixed(1).padStart(5)} % ${k}`);
    }
  }
  await Deno.remove(profDir, { recursive: true });
} finally {
  await peer.stop();
}
