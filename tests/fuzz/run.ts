// Structure-aware fuzzing of xRTC's parsers and signalling. `deno task fuzz` runs every target on
// 1,000,000 inputs each; `deno task fuzz --count 20000` is the short run for CI. Other flags:
// --target NAME (one target), --seed S (another input stream; default 1). Each input is made only from
// (target, seed, index), so a failure is reproduced alone with the command printed after its FAIL line:
// `deno task fuzz --target NAME --seed S --index I` prints that input (hex or JSON) and what it threw.
import { describeError, inputSeed, Rng, type Target } from "./harness.ts";
import { stunTarget } from "./stun.ts";
import { framingTarget } from "./framing.ts";
import { classifyTarget } from "./classify.ts";
import { sdpTarget } from "./sdp.ts";
import { signallingTarget } from "./signalling.ts";
import { whipTarget } from "./whip.ts";
import { respTarget } from "./resp.ts";
import { setLogLevel } from "../../src/telemetry/log.ts";

const TARGETS: readonly Target[] = [
  stunTarget,
  framingTarget,
  classifyTarget,
  sdpTarget,
  signallingTarget,
  whipTarget,
  respTarget,
];
const DEFAULT_COUNT = 1_000_000;
const DEFAULT_SEED = 1;
/** FAIL lines printed per target; the rest are only counted. */
const MAX_REPORTED = 10;

interface Options {
  targets: readonly Target[];
  count: number;
  seed: number;
  index?: number;
}

function usage(problem: string): never {
  console.error(`fuzz: ${problem}`);
  console.error("usage: deno task fuzz [--target NAME] [--count N] [--seed S] [--index I]");
  console.error(`targets: ${TARGETS.map((t) => t.name).join(", ")}`);
  Deno.exit(2);
}

function integer(flag: string, text: string | undefined, max: number): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || n > max) {
    usage(`${flag} needs an integer from 0 to ${max}`);
  }
  return n;
}

function parseArgs(args: string[]): Options {
  const options: Options = { targets: TARGETS, count: DEFAULT_COUNT, seed: DEFAULT_SEED };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].includes("=") ? args[i].split(/=(.*)/s, 2) : [args[i], undefined];
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--target": {
        const name = value();
        const target = TARGETS.find((t) => t.name === name);
        if (!target) usage(`no target ${JSON.stringify(name)}`);
        options.targets = [target];
        break;
      }
      case "--count":
        options.count = integer(flag, value(), Number.MAX_SAFE_INTEGER);
        break;
      case "--seed":
        options.seed = integer(flag, value(), 2 ** 32 - 1);
        break;
      case "--index":
        options.index = integer(flag, value(), Number.MAX_SAFE_INTEGER);
        break;
      default:
        usage(`unknown argument ${JSON.stringify(args[i])}`);
    }
  }
  return options;
}

function reproduction(target: Target, seed: number, index: number): string {
  return `./node_modules/.bin/deno task fuzz --target ${target.name} --seed ${seed} --index ${index}`;
}

/** Runs `count` inputs of one target; returns its failures. */
function fuzz(target: Target, seed: number, count: number): number {
  let failures = 0;
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    try {
      target.prepare(new Rng(inputSeed(target.name, seed, index))).check();
    } catch (e) {
      failures++;
      if (failures <= MAX_REPORTED) {
        console.log(`FAIL ${target.name} seed=${seed} index=${index}: ${describeError(e)}`);
        console.log(`  reproduce: ${reproduction(target, seed, index)}`);
      }
      if (failures === MAX_REPORTED + 1) {
        console.log(`  (further failures of ${target.name} are counted only)`);
      }
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const rate = Math.round(count / Math.max(seconds, 1e-9));
  console.log(
    `fuzz ${target.name}: ${count} inputs in ${seconds.toFixed(2)} s (${rate}/s), ${failures} failures`,
  );
  return failures;
}

/** One input alone: printed, then checked, with the stack of whatever it threw. */
function reproduce(target: Target, seed: number, index: number): number {
  try {
    const input = target.prepare(new Rng(inputSeed(target.name, seed, index)));
    console.log(`input ${target.name} seed=${seed} index=${index}: ${input.describe()}`);
    input.check();
  } catch (e) {
    console.log(`FAIL ${target.name} seed=${seed} index=${index}: ${describeError(e)}`);
    // Where xRTC threw, when an oracle caught it; else where the oracle failed.
    const thrown = e instanceof Error && e.cause instanceof Error ? e.cause : e;
    if (thrown instanceof Error && thrown.stack) console.log(thrown.stack);
    return 1;
  }
  console.log(`ok ${target.name} seed=${seed} index=${index}`);
  return 0;
}

const options = parseArgs(Deno.args);
// xRTC logs a line per session opened or SDP refused: thousands of them would bury the report.
setLogLevel("error");
let total = 0, failures = 0;
for (const target of options.targets) {
  if (options.index !== undefined) {
    total++;
    failures += reproduce(target, options.seed, options.index);
  } else {
    total += options.count;
    failures += fuzz(target, options.seed, options.count);
  }
}
console.log(`fuzz: ${total} inputs, ${failures} failures`);
Deno.exit(failures > 0 ? 1 : 0);
