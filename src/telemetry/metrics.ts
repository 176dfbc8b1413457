// Typed metric instruments and their registry. Every metric is declared once (catalog.ts) with a
// name, help text, type and a fixed label set; label values that are enumerations are declared too, so
// each series exists (at zero) from the start and the number of series is bounded by the declaration.
// Each isolate (the main thread, each shard worker) holds its own registry; snapshots are plain data,
// posted to the main thread and merged there (merge.ts).

export type MetricType = "counter" | "gauge" | "histogram";

/** How the series of several shards combine: summed, or kept apart with a `shard` label. */
export type ShardMerge = "sum" | "per_shard";

export interface MetricDeclaration<L extends string = string> {
  name: string;
  help: string;
  labels: readonly L[];
  /** Declared values of a label: these series exist from the start; any other value is refused. */
  values?: { readonly [K in L]?: readonly string[] };
  merge?: ShardMerge;
}

export interface HistogramDeclaration<L extends string = string> extends MetricDeclaration<L> {
  /** Upper bounds, ascending, in the metric's base unit. */
  buckets: readonly number[];
}

/** A series beyond this many per metric is refused (counted): no label may grow without bound. */
export const MAX_SERIES_PER_METRIC = 512;

export interface SeriesSnapshot {
  labels: Record<string, string>;
  /** Counter or gauge value; a histogram's sum. */
  value: number;
  /** Histogram only: cumulative-free bucket counts (one per bound, then +Inf), and the count. */
  buckets?: number[];
  count?: number;
}

export interface MetricSnapshot {
  name: string;
  help: string;
  type: MetricType;
  /** The declared label names, and the declared values of those that have them. */
  labels: string[];
  values?: Record<string, readonly string[]>;
  merge: ShardMerge;
  bounds?: number[];
  series: SeriesSnapshot[];
}

type Labels<L extends string> = { readonly [K in L]: string };

function labelKey(labels: Record<string, string>, names: readonly string[]): string {
  let k = "";
  for (const n of names) k += `${labels[n]}\u0000`;
  return k;
}

/** Every combination of the declared label values (labels without declared values are left out). */
function declaredCombinations<L extends string>(decl: MetricDeclaration<L>): Array<Labels<L>> {
  const names = decl.labels;
  if (names.length === 0) return [{} as Labels<L>];
  if (!names.every((n) => decl.values?.[n] !== undefined)) return [];
  let combos: Array<Record<string, string>> = [{}];
  for (const n of names) {
    const next: Array<Record<string, string>> = [];
    for (const c of combos) for (const v of decl.values![n]!) next.push({ ...c, [n]: v });
    combos = next;
  }
  return combos as Array<Labels<L>>;
}

abstract class Instrument<L extends string, S> {
  protected readonly series = new Map<string, { labels: Labels<L>; state: S }>();
  refused = 0;

  constructor(readonly decl: MetricDeclaration<L>, readonly type: MetricType) {
    for (const labels of declaredCombinations(decl)) this.#create(labels);
  }

  protected abstract initial(): S;

  #create(labels: Labels<L>): S {
    const entry = { labels: { ...labels }, state: this.initial() };
    this.series.set(labelKey(labels, this.decl.labels), entry);
    return entry.state;
  }

  /** The state of one series, created on first use when its label values are allowed. */
  protected state(labels: Labels<L>): S | undefined {
    const found = this.series.get(labelKey(labels, this.decl.labels));
    if (found) return found.state;
    for (const n of this.decl.labels) {
      const allowed = this.decl.values?.[n];
      if (allowed !== undefined && !allowed.includes(labels[n])) {
        this.refused++;
        return undefined;
      }
    }
    if (this.series.size >= MAX_SERIES_PER_METRIC) {
      this.refused++;
      return undefined;
    }
    return this.#create(labels);
  }

  abstract snapshot(): MetricSnapshot;

  protected base(): Omit<MetricSnapshot, "series"> {
    return {
      name: this.decl.name,
      help: this.decl.help,
      type: this.type,
      labels: [...this.decl.labels],
      values: this.decl.values as Record<string, readonly string[]> | undefined,
      merge: this.decl.merge ?? "sum",
    };
  }
}

/** A bound series: `inc` on the hot path is one field update. */
export interface CounterChild {
  inc(by?: number): void;
  readonly value: number;
}

class CounterState implements CounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter<L extends string = never> extends Instrument<L, CounterState> {
  #collect?: (set: (labels: Labels<L>, total: number) => void) => void;
  constructor(decl: MetricDeclaration<L>) {
    super(decl, "counter");
  }
  /** A counter kept elsewhere (the kernel's, the process's CPU time): read when a snapshot is taken. */
  collectWith(f: (set: (labels: Labels<L>, total: number) => void) => void): void {
    this.#collect = f;
  }
  protected initial(): CounterState {
    return new CounterState();
  }
  /** The series for these label values, to keep and increment without a lookup. */
  with(labels: Labels<L>): CounterChild {
    return this.state(labels) ?? DISCARD;
  }
  inc(labels: Labels<L> = {} as Labels<L>, by = 1): void {
    this.state(labels)?.inc(by);
  }
  value(labels: Labels<L>): number {
    return this.series.get(labelKey(labels, this.decl.labels))?.state.value ?? 0;
  }
  /** Sum over every series whose labels include `partial`. */
  total(partial: Partial<Labels<L>> = {}): number {
    let sum = 0;
    for (const { labels, state } of this.series.values()) {
      if (Object.entries(partial).every(([k, v]) => labels[k as L] === v)) sum += state.value;
    }
    return sum;
  }
  snapshot(): MetricSnapshot {
    this.#collect?.((labels, total) => {
      const s = this.state(labels);
      if (s) s.value = total;
    });
    return {
      ...this.base(),
      series: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.state.value })),
    };
  }
}

const DISCARD: CounterChild = { inc() {}, value: 0 };

export class Gauge<L extends string = never> extends Instrument<L, { value: number }> {
  #collect?: (set: (labels: Labels<L>, value: number) => void) => void;
  constructor(decl: MetricDeclaration<L>) {
    super(decl, "gauge");
  }
  protected initial(): { value: number } {
    return { value: 0 };
  }
  set(labels: Labels<L>, value: number): void {
    const s = this.state(labels);
    if (s) s.value = value;
  }
  add(labels: Labels<L>, by: number): void {
    const s = this.state(labels);
    if (s) s.value += by;
  }
  value(labels: Labels<L>): number {
    return this.series.get(labelKey(labels, this.decl.labels))?.state.value ?? 0;
  }
  /** Computes the gauge when a snapshot is taken (sizes of tables, process figures). */
  collectWith(f: (set: (labels: Labels<L>, value: number) => void) => void): void {
    this.#collect = f;
  }
  snapshot(): MetricSnapshot {
    this.#collect?.((labels, value) => this.set(labels, value));
    return {
      ...this.base(),
      series: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.state.value })),
    };
  }
}

interface HistogramState {
  buckets: Float64Array;
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Instrument<L, HistogramState> {
  readonly bounds: readonly number[];
  constructor(decl: HistogramDeclaration<L>) {
    super(decl, "histogram");
    this.bounds = decl.buckets;
  }
  protected initial(): HistogramState {
    return {
      buckets: new Float64Array((this.decl as HistogramDeclaration<L>).buckets.length + 1),
      sum: 0,
      count: 0,
    };
  }
  observe(labels: Labels<L>, v: number): void {
    const s = this.state(labels);
    if (!s) return;
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]) i++;
    s.buckets[i]++;
    s.sum += v;
    s.count++;
  }
  count(labels: Labels<L>): number {
    return this.series.get(labelKey(labels, this.decl.labels))?.state.count ?? 0;
  }
  snapshot(): MetricSnapshot {
    return {
      ...this.base(),
      bounds: [...this.bounds],
      series: [...this.series.values()].map((s) => ({
        labels: s.labels,
        value: s.state.sum,
        buckets: [...s.state.buckets],
        count: s.state.count,
      })),
    };
  }
}

/** What the registry needs of an instrument. */
interface AnyInstrument {
  readonly decl: { name: string };
  readonly type: MetricType;
  readonly refused: number;
  snapshot(): MetricSnapshot;
}

/** The instruments of one isolate. */
export class Registry {
  readonly #instruments: AnyInstrument[] = [];

  counter<L extends string = never>(decl: MetricDeclaration<L>): Counter<L> {
    return this.#add(new Counter(decl));
  }
  gauge<L extends string = never>(decl: MetricDeclaration<L>): Gauge<L> {
    return this.#add(new Gauge(decl));
  }
  histogram<L extends string = never>(decl: HistogramDeclaration<L>): Histogram<L> {
    return this.#add(new Histogram(decl));
  }

  #add<T extends AnyInstrument>(m: T): T {
    if (!/^xrtc_[a-z0-9_]+$/.test(m.decl.name)) {
      throw new Error(`metric name ${m.decl.name} lacks the xrtc_ prefix`);
    }
    if (this.#instruments.some((x) => x.decl.name === m.decl.name)) {
      throw new Error(`metric ${m.decl.name} declared twice`);
    }
    if (m.type === "counter" !== m.decl.name.endsWith("_total")) {
      throw new Error(`metric ${m.decl.name}: "_total" is for counters, and every counter has it`);
    }
    this.#instruments.push(m);
    return m;
  }

  /** Series refused because their label values were not declared or the metric was full. */
  get refusedSeries(): number {
    return this.#instruments.reduce((n, m) => n + m.refused, 0);
  }

  snapshot(): MetricSnapshot[] {
    return this.#instruments.map((m) => m.snapshot());
  }
}
