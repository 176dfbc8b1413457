// The routes.yml reader's building blocks: a Reader that collects every error with file, line and YAML
// path, and field tables (YAML key -> how it is read, its default, how its effective value is shown)
// that the loader and --check-config's effective configuration share, so a key is named once.
import { isMap, isScalar, isSeq, type LineCounter, type Node, type YAMLMap } from "yaml";
import { formatDuration, parseDuration } from "./duration.ts";

export class Reader {
  errors: string[] = [];
  warnings: string[] = [];
  constructor(readonly file: string, readonly lines: LineCounter) {}

  #where(path: string, node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    const line = offset === undefined ? "" : `:${this.lines.linePos(offset).line}`;
    return `${this.file}${line}: ${path}`;
  }
  error(path: string, node: Node | null | undefined, message: string): void {
    this.errors.push(`${this.#where(path, node)}: ${message}`);
  }
  warn(path: string, node: Node | null | undefined, message: string): void {
    this.warnings.push(`${this.#where(path, node)}: ${message}`);
  }

  map(path: string, node: Node | null | undefined, known: readonly string[]): YAMLMap | undefined {
    if (node === null || node === undefined) return undefined;
    if (!isMap(node)) {
      this.error(path, node, "expected a mapping");
      return undefined;
    }
    for (const item of node.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      if (!known.includes(key)) this.warn(`${path}.${key}`, item.key as Node, "unknown key, ignored");
    }
    return node;
  }

  get(map: YAMLMap | undefined, key: string): Node | undefined {
    if (!map) return undefined;
    for (const item of map.items) {
      if (isScalar(item.key) && String(item.key.value) === key) {
        return (item.value ?? undefined) as Node | undefined;
      }
    }
    return undefined;
  }

  string(path: string, node: Node | undefined): string | undefined {
    if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (!isScalar(node) || typeof node.value === "object") {
      this.error(path, node, "expected a string");
      return undefined;
    }
    return String(node.value);
  }

  bool(path: string, node: Node | undefined, fallback: boolean): boolean {
    if (node === undefined || (isScalar(node) && node.value === null)) return fallback;
    if (isScalar(node)) {
      if (typeof node.value === "boolean") return node.value;
      if (node.value === "true") return true;
      if (node.value === "false") return false;
    }
    this.error(path, node, 'expected a boolean (true/false, or the strings "true"/"false")');
    return fallback;
  }

  int(path: string, node: Node | undefined, fallback: number, min: number, max: number): number {
    if (node === undefined) return fallback;
    const v = isScalar(node) ? Number(node.value) : NaN;
    if (!Number.isInteger(v) || v < min || v > max) {
      this.error(path, node, `expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return v;
  }

  duration(path: string, node: Node | undefined, fallback: number): number {
    if (node === undefined) return fallback;
    const text = isScalar(node) ? String(node.value) : "";
    const ms = parseDuration(text);
    if (ms === undefined) {
      this.error(
        path,
        node,
        'expected a duration such as "10s", "100ms", "1m30s" (a bare number is milliseconds)',
      );
      return fallback;
    }
    return ms;
  }

  stringList(path: string, node: Node | undefined): string[] {
    if (node === undefined || (isScalar(node) && node.value === null)) return [];
    if (isScalar(node)) {
      const s = this.string(path, node);
      return s === undefined ? [] : [s];
    }
    if (!isSeq(node)) {
      this.error(path, node, "expected a list of strings");
      return [];
    }
    const out: string[] = [];
    node.items.forEach((item, i) => {
      const s = this.string(`${path}[${i}]`, item as Node);
      if (s !== undefined) out.push(s);
    });
    return out;
  }
}

/** One YAML key of a section: how it is read into the target, and shown as effective configuration. */
export interface Field<T> {
  read(r: Reader, path: string, node: Node | undefined, target: T): void;
  show(target: T): unknown;
}

export type Fields<T> = Record<string, Field<T>>;

type KeysOf<T, V> = { [K in keyof T]-?: T[K] extends V ? K : never }[keyof T];

export const field = {
  /** A duration; with `min`, a shorter one is an error that says why (`min.why`). */
  duration<T>(prop: KeysOf<T, number>, fallback: number, min?: { ms: number; why: string }): Field<T> {
    return {
      read: (r, path, node, t) => {
        const ms = (t[prop] as number) = r.duration(path, node, fallback);
        if (min && ms < min.ms) r.error(path, node, `at least ${formatDuration(min.ms)} (${min.why})`);
      },
      show: (t) => formatDuration(t[prop] as number),
    };
  },
  int<T>(prop: KeysOf<T, number>, fallback: number, min: number, max: number): Field<T> {
    return {
      read: (r, path, node, t) => (t[prop] as number) = r.int(path, node, fallback, min, max),
      show: (t) => t[prop],
    };
  },
  bool<T>(prop: KeysOf<T, boolean>, fallback: boolean): Field<T> {
    return {
      read: (r, path, node, t) => (t[prop] as boolean) = r.bool(path, node, fallback),
      show: (t) => t[prop],
    };
  },
  oneOf<T, V extends string>(prop: KeysOf<T, V>, values: readonly V[], fallback: V): Field<T> {
    return {
      read: (r, path, node, t) => {
        const v = r.string(path, node) ?? fallback;
        if (!values.includes(v as V)) {
          r.error(
            path,
            node,
            `expected one of ${values.map((x) => `"${x}"`).join(", ")}`,
          );
        }
        (t[prop] as V) = values.includes(v as V) ? v as V : fallback;
      },
      show: (t) => t[prop],
    };
  },
  optionalString<T>(prop: KeysOf<T, string | undefined>): Field<T> {
    return {
      read: (r, path, node, t) => (t[prop] as string | undefined) = r.string(path, node),
      show: (t) => t[prop] ?? null,
    };
  },
};

/** Reads a section's known keys (warning about the others) into `target`. */
export function readFields<T>(
  r: Reader,
  path: string,
  node: Node | undefined,
  fields: Fields<T>,
  target: T,
  extraKeys: readonly string[] = [],
): YAMLMap | undefined {
  const m = r.map(path, node, [...Object.keys(fields), ...extraKeys]);
  for (const [key, f] of Object.entries(fields)) f.read(r, `${path}.${key}`, r.get(m, key), target);
  return m;
}

/** The effective values of a section, under their YAML keys. */
export function showFields<T>(fields: Fields<T>, target: T): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.show(target)]));
}
