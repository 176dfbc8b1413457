// Structured logs: one line per event, logfmt, to stderr, with the session's ids where there is one.
// Never pass passwords, keys or tokens here.
export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = typeof LEVELS[number];
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** XRTC_LOG, when set, overrides the configured level (tests, one-off debugging). */
const fromEnv = (() => {
  try {
    const v = Deno.env.get("XRTC_LOG");
    return v !== undefined && (LEVELS as readonly string[]).includes(v) ? v as Level : undefined;
  } catch {
    return undefined;
  }
})();
let threshold = ORDER[fromEnv ?? "info"];

export function setLogLevel(level: Level): void {
  threshold = ORDER[fromEnv ?? level];
}

function quote(v: unknown): string {
  const s = typeof v === "string" ? v : v instanceof Error ? v.message : JSON.stringify(v);
  return /^[\w.:/@\-[\]]+$/.test(s ?? "") ? s : JSON.stringify(s);
}

export function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  if (ORDER[level] < threshold) return;
  let line = `ts=${new Date().toISOString()} level=${level} event=${event}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${quote(v)}`;
  console.error(line);
}
