// Structured logs: one line per event, logfmt, to stderr. Never pass passwords or keys here.
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = ORDER[(Deno.env.get("XRTC_LOG") as Level | undefined) ?? "info"] ?? ORDER.info;

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
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
