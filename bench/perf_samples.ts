// `perf script` output (perf record -g of Deno with V8's --perf-basic-prof) read into what bench/profile.ts
// prints: each thread's samples by what was running, and JS functions with the time in and below them.
/** What was running when a sample was taken: the leaf frame's object file. */
export const KINDS = ["kernel", "libc", "runtime", "js", "program", "other"] as const;
export type Kind = typeof KINDS[number];

export function kindOf(dso: string): Kind {
  if (dso.includes("kernel")) return "kernel";
  if (dso.includes("libc.so")) return "libc";
  if (/\/perf-\d+\.map$/.test(dso)) return "js";
  if (dso.endsWith("/deno")) return "runtime";
  if (dso.includes("c_relay")) return "program";
  return "other";
}

export interface ThreadProfile {
  samples: number;
  byKind: Record<Kind, number>;
}

export interface FunctionSamples {
  self: number;
  runtime: number;
  system: number;
}

export interface Profile {
  total: number;
  threads: Map<string, ThreadProfile>;
  /** By the innermost JS function on the stack: samples in its own code, in the runtime's native code
   * below it (FFI transitions, ops, builtins), and in libc or the kernel below it (the calls it made). */
  functions: Map<string, FunctionSamples>;
}

/** "JS:*'drain file:///…/src/io/ffi_udp.ts:862:103" -> "drain src/io/ffi_udp.ts:862". */
export function jsName(frame: string): string {
  const m = /JS:[*~^+']*(\S*) (?:file:\/\/)?(\S+?)(?::\d+)? \(/.exec(frame);
  if (!m) return frame;
  const where = m[2].replace(/^.*?\/(src|bench)\//, "$1/");
  return `${m[1] || "(anonymous)"} ${where}`;
}

/** Samples are blank-line separated: a "comm tid" line, then the frames, innermost first
 * ("<ip> <symbol> (<object file>)"). */
export function parsePerfScript(text: string): Profile {
  const p: Profile = { total: 0, threads: new Map(), functions: new Map() };
  for (const sample of text.split("\n\n")) {
    const lines = sample.split("\n").filter((l) => l.trim());
    if (lines.length < 2) continue;
    const thread = lines[0].trim().replace(/\s+\d+$/, "");
    const dso = /\(([^()]*)\)\s*$/.exec(lines[1])?.[1] ?? "";
    const kind = kindOf(dso);
    const t = p.threads.get(thread) ??
      { samples: 0, byKind: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number> };
    t.samples++;
    t.byKind[kind]++;
    p.threads.set(thread, t);
    p.total++;
    const js = lines.slice(1).find((l) => l.includes(" JS:"));
    if (!js) continue;
    const name = jsName(js.slice(js.indexOf("JS:")));
    const f = p.functions.get(name) ?? { self: 0, runtime: 0, system: 0 };
    if (kind === "js" && js === lines[1]) f.self++;
    else if (kind === "kernel" || kind === "libc") f.system++;
    else f.runtime++;
    p.functions.set(name, f);
  }
  return p;
}
