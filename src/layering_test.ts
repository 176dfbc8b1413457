// The folders are the layers: no module imports from a layer above its own. The order, bottom up (the
// README's "How it works" draws the same picture):
//   telemetry (metrics, logs) < io (sockets, framing, addresses) < config < stun, sdp (pure codecs)
//   < ice (negotiation, shards, demux, sessions) < signalling < http < front, admin < app.ts
import assert from "node:assert/strict";

const RANK: Record<string, number> = {
  telemetry: 0,
  io: 1,
  config: 2,
  stun: 3,
  sdp: 3,
  ice: 4,
  signalling: 5,
  http: 6,
  front: 7,
  admin: 7,
  state: 8,
  cluster: 8,
  whip: 8,
};
const SRC = new URL("./", import.meta.url).pathname;

function* modules(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}${e.name}`;
    if (e.isDirectory) yield* modules(`${path}/`);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

function layerOf(path: string): string {
  const rel = path.slice(SRC.length);
  return rel.includes("/") ? rel.slice(0, rel.indexOf("/")) : rel;
}

Deno.test("no import runs from a lower layer to a higher one", () => {
  const wrong: string[] = [];
  for (const file of modules(SRC)) {
    const from = layerOf(file);
    if (file.endsWith("_test.ts")) continue;
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/^(?:import|export)[^"']*from\s+["'](\.[^"']+)["']/gm)) {
      const target = new URL(m[1], `file://${file}`).pathname;
      const to = layerOf(target);
      if (target.endsWith("test_support.ts")) wrong.push(`${file.slice(SRC.length)} -> ${m[1]} (test code)`);
      if (from === to || !(to in RANK)) continue;
      if (!(from in RANK)) continue; // app.ts sits on top
      if (RANK[to] > RANK[from]) wrong.push(`${file.slice(SRC.length)} (${from}) -> ${m[1]} (${to})`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("every folder of src/ has its place in the order", () => {
  const folders = [...Deno.readDirSync(SRC)].filter((e) => e.isDirectory).map((e) => e.name);
  assert.deepEqual(folders.filter((f) => !(f in RANK)), []);
});
