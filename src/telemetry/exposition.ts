// Merging the snapshots of every shard, and the Prometheus text exposition format (version 0.0.4).
import type { MetricSnapshot, SeriesSnapshot } from "./metrics.ts";

export interface ShardSnapshot {
  shard: number;
  metrics: MetricSnapshot[];
}

function key(labels: Record<string, string>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join("\u0000");
}

/** One snapshot for the whole process: counters and histograms summed over shards, per-shard metrics
 * labelled with their shard. Metrics are taken in the first shard's order. */
export function mergeShards(shards: ShardSnapshot[]): MetricSnapshot[] {
  const out = new Map<string, MetricSnapshot & { index: Map<string, SeriesSnapshot> }>();
  for (const { shard, metrics } of shards) {
    for (const m of metrics) {
      let merged = out.get(m.name);
      if (!merged) {
        merged = { ...m, series: [], index: new Map() };
        out.set(m.name, merged);
      }
      for (const s of m.series) {
        const labels = m.merge === "per_shard" ? { ...s.labels, shard: String(shard) } : s.labels;
        const k = key(labels);
        const have = merged.index.get(k);
        if (!have) {
          const copy: SeriesSnapshot = { labels, value: s.value };
          if (s.buckets) copy.buckets = [...s.buckets], copy.count = s.count;
          merged.index.set(k, copy);
          merged.series.push(copy);
          continue;
        }
        have.value += s.value;
        if (s.buckets && have.buckets) {
          for (let i = 0; i < s.buckets.length; i++) have.buckets[i] += s.buckets[i];
          have.count = (have.count ?? 0) + (s.count ?? 0);
        }
      }
    }
  }
  return [...out.values()].map(({ index: _index, ...m }) => m);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(labels: Record<string, string>, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** The text exposition of merged metrics. */
export function exposition(metrics: MetricSnapshot[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.series) {
      if (m.type !== "histogram") {
        lines.push(`${m.name}${labelText(s.labels)} ${num(s.value)}`);
        continue;
      }
      let cumulative = 0;
      const bounds = m.bounds ?? [];
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += s.buckets?.[i] ?? 0;
        const le = i < bounds.length ? num(bounds[i]) : "+Inf";
        lines.push(`${m.name}_bucket${labelText(s.labels, ["le", le])} ${cumulative}`);
      }
      lines.push(`${m.name}_sum${labelText(s.labels)} ${num(s.value)}`);
      lines.push(`${m.name}_count${labelText(s.labels)} ${s.count ?? 0}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The value of one series in merged metrics (tests, status page): labels must match exactly. */
export function seriesValue(
  metrics: MetricSnapshot[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const m = metrics.find((x) => x.name === name);
  const k = key(labels);
  return m?.series.find((s) => key(s.labels) === k)?.value ?? 0;
}

/** The sum over every series of a metric whose labels include `partial`. */
export function seriesTotal(
  metrics: MetricSnapshot[],
  name: string,
  partial: Record<string, string> = {},
): number {
  const m = metrics.find((x) => x.name === name);
  let sum = 0;
  for (const s of m?.series ?? []) {
    if (Object.entries(partial).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}
