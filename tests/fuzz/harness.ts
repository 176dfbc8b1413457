// What every fuzz target shares: a small deterministic PRNG seeded from (target, seed, index) only, so
// any input can be regenerated alone, and the shape of a target (generate, check, describe).

/** murmur3's 32-bit finalizer: spreads every input bit over the whole word. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a of the target's name, so two targets never share an input stream. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The PRNG state of one input: a pure function of its target, seed and index. */
export function inputSeed(target: string, seed: number, index: number): number {
  return mix32(
    mix32(hashName(target) ^ mix32(seed >>> 0)) ^ mix32(index >>> 0) ^ Math.floor(index / 2 ** 32),
  );
}

/** mulberry32: tiny, fast, and good enough to drive structure choices. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** An integer in [low, high], both included. */
  int(low: number, high: number): number {
    return low + this.below(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.u32() < probability * 2 ** 32;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  /** One of several values, each with a relative weight. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [weight] of choices) total += weight;
    let r = this.below(total);
    for (const [weight, value] of choices) {
      if (r < weight) return value;
      r -= weight;
    }
    return choices[choices.length - 1][1];
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i += 4) {
      const word = this.u32();
      out[i] = word;
      if (i + 1 < length) out[i + 1] = word >>> 8;
      if (i + 2 < length) out[i + 2] = word >>> 16;
      if (i + 3 < length) out[i + 3] = word >>> 24;
    }
    return out;
  }

  /** Text from an alphabet. */
  text(alphabet: string, length: number): string {
    let s = "";
    for (let i = 0; i < length; i++) s += alphabet[this.below(alphabet.length)];
    return s;
  }

  /** The same letters in a random mix of upper and lower case. */
  randomCase(s: string): string {
    let out = "";
    for (const ch of s) out += this.chance(0.5) ? ch.toUpperCase() : ch.toLowerCase();
    return out;
  }
}

/** An oracle that did not hold (as opposed to an exception the code under test threw). */
export class OracleFailure extends Error {
  override name = "OracleFailure";
}

export function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new OracleFailure(message);
}

/** A call into xRTC threw what it must not: the failure names the call, and keeps the exception. */
export function threw(what: string, e: unknown): OracleFailure {
  const thrown = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new OracleFailure(`${what} threw ${thrown}`, { cause: e });
}

/** The name and message of anything thrown, for one FAIL line. */
export function describeError(e: unknown): string {
  if (e instanceof OracleFailure) return e.message;
  if (e instanceof Error) return `unexpected ${e.name}: ${e.message}`;
  return `unexpected throw of ${typeof e}: ${String(e)}`;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The attribute name of an SDP line, "a=<name>[:<value>]" (RFC 8866 §5.13), in ASCII lower case:
 * the oracles' own reading, to hold xRTC's against. */
export function sdpAttributeName(line: string): string | undefined {
  if (!line.startsWith("a=")) return undefined;
  const colon = line.indexOf(":");
  return (colon < 0 ? line.slice(2) : line.slice(2, colon)).replace(/[A-Z]/g, (ch) => ch.toLowerCase());
}

export function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** How a target is defined: its input type stays inside its module. */
export interface TargetDefinition<Input> {
  readonly name: string;
  /** One input, drawn only from `rng`. */
  generate(rng: Rng): Input;
  /** Runs the code under test on the input; throws when an oracle does not hold. */
  check(input: Input): void;
  /** The input as text (hex or JSON), to reproduce it by hand. */
  describe(input: Input): string;
}

/** One generated input, ready to be printed or checked. */
export interface PreparedInput {
  describe(): string;
  check(): void;
}

/** A target as the runner sees it, whatever its input type. */
export interface Target {
  readonly name: string;
  prepare(rng: Rng): PreparedInput;
}

export function defineTarget<Input>(definition: TargetDefinition<Input>): Target {
  return {
    name: definition.name,
    prepare(rng) {
      const input = definition.generate(rng);
      return { describe: () => definition.describe(input), check: () => definition.check(input) };
    },
  };
}
