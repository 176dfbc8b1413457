// Reading xRTC's metrics in tests: the test process's own registry (shard 0 and everything on the main
// thread), or every shard's merged through the same code /metrics uses.
import { registry } from "../../src/telemetry/catalog.ts";
import type { MetricSnapshot } from "../../src/telemetry/metrics.ts";
import { mergeShards, seriesTotal } from "../../src/telemetry/exposition.ts";
import type { ShardSet } from "../../src/ice/shards/shards.ts";

export type Labels = Record<string, string>;

/** The xRTC under test (startXrtc sets it): its metrics are read over every shard, as /metrics reads them,
 * since with the ffi backend the media runs on a worker thread (media_thread: auto). */
let underTest: ShardSet | undefined;
export function readMetricsOf(shards: ShardSet | undefined): void {
  underTest = shards;
}

/** The sum of a metric's series whose labels include `labels`, over every shard of the xRTC under test
 * (this process's registry when there is none). */
export async function metric(name: string, labels: Labels = {}): Promise<number> {
  return (underTest ? await Snapshot.shards(underTest) : Snapshot.local()).get(name, labels);
}

/** Packets dropped for a reason (xrtc_dropped_packets_total). */
export function dropped(reason: string): Promise<number> {
  return metric("xrtc_dropped_packets_total", { reason });
}

/** A frozen copy of the metrics, to compute what changed since. */
export class Snapshot {
  constructor(readonly metrics: MetricSnapshot[]) {}
  static local(): Snapshot {
    return new Snapshot(registry.snapshot());
  }
  /** Every shard's metrics, summed as /metrics sums them. */
  static async shards(set: ShardSet): Promise<Snapshot> {
    const reports = await set.reports();
    return new Snapshot(mergeShards(reports.map((r) => ({ shard: r.shard, metrics: r.report.metrics }))));
  }
  get(name: string, labels: Labels = {}): number {
    return seriesTotal(this.metrics, name, labels);
  }
  delta(before: Snapshot, name: string, labels: Labels = {}): number {
    return this.get(name, labels) - before.get(name, labels);
  }
}
