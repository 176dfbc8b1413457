// Prints the README's metric reference from the catalog: every metric's name, type, labels (with their
// declared values) and meaning.   deno run -A tests/tools/metrics_doc.ts
import { registry } from "../../src/telemetry/catalog.ts";

export function metricsTable(): string {
  const rows = registry.snapshot().map((m) => {
    const shown = m.labels.map((k) => m.values?.[k] ? `${k}: ${m.values[k]!.join(", ")}` : k);
    if (m.merge === "per_shard") shown.push("shard");
    return `| \`${m.name}\` | ${m.type} | ${shown.join("; ") || "—"} | ${m.help} |`;
  });
  return ["| metric | type | labels | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

if (import.meta.main) console.log(metricsTable());
