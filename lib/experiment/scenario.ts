/**
 * Experiment scenarios (files under measurements/scenarios/): the network, the workload and
 * the durations, with defaults a reader can see in one place.
 * @module
 */

import { parseSize } from "../serve/sizes.ts";
import { type EmulationSpec, withBase } from "../emulate/config.ts";
import { builtinNames, readBuiltin } from "../util/builtin.ts";
import { DEFAULT_MIN_SAMPLES, type Metric, METRIC_NAMES } from "./arms.ts";
import type { NetworkDistribution } from "./ctor_networks.ts";
import { parseDuration, parseLoss, parseRate } from "../emulate/units.ts";

/** A scenario as stored (sizes may be strings like "300KiB"). */
export interface Scenario {
  /** Name. */
  name: string;
  /** What it is for. */
  description?: string;
  /** Relays (≥ 3). */
  relays: number;
  /** Every circuit through these relays (so loud and quiet circuits share relay pairs). */
  path?: string[];
  /** Per-relay rate limits (reads and writes), e.g. ["4MiB", "1536KiB", "4MiB"]. */
  bandwidths: (string | number)[];
  /** Web clients: fetch a file (sizes in turn when a list), think, repeat. */
  web: { clients: number; size: string | number | (string | number)[]; thinkS: number };
  /** Bulk clients: download large files back to back (or with a think time). */
  bulk: { clients: number; size: string | number | (string | number)[]; thinkS?: number };
  /** Seconds of measurement per arm: the least an arm measures. */
  durationS: number;
  /** Samples per arm and metric the experiment aims for (over all runs; default 100 web,
   * 20 bulk): an arm measures past `durationS` until it has them, at most `maxDurationS`. */
  minSamples?: Partial<Record<Metric, number>>;
  /** The most seconds an arm measures while it lacks samples (default durationS: no longer;
   * below durationS it counts as durationS, so a derived scenario may raise durationS alone). */
  maxDurationS?: number;
  /** Per-fetch timeout, seconds. */
  timeoutS: number;
  /** Jitter of the think time (fraction). */
  jitter: number;
  /** Seed of the jitter. */
  seed: number;
  /** With --netns: the emulated links (latency, loss, rates, topology; lib/emulate). */
  emulation?: EmulationSpec;
  /**
   * With `--network ctor --netns --networks K`: what each drawn network's circuit hops
   * (one-way latency, loss) and the pair's host rate are sampled from, `[lo, hi]` uniform.
   */
  sample?: NetworkDistribution;
}

/** Loads a scenario by name (measurements/scenarios/NAME.json, embedded in the program by
 * scripts/embed.ts) or path; a clear error if bad. */
export async function loadScenario(nameOrPath: string): Promise<Scenario> {
  const embedded = nameOrPath.endsWith(".json")
    ? undefined
    : await readBuiltin("scenarios", `${nameOrPath}.json`);
  const path = embedded !== undefined ? `measurements/scenarios/${nameOrPath}.json` : nameOrPath;
  let text: string;
  try {
    text = embedded ?? await Deno.readTextFile(path);
  } catch {
    throw new Error(
      `no scenario ${JSON.stringify(nameOrPath)} (not a file; built in: ${
        builtinNames("scenarios").map((n) => n.replace(/\.json$/, "")).sort().join(", ")
      })`,
    );
  }
  let s: Scenario;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`scenario ${path} is not JSON: ${(e as Error).message}`);
  }
  const need = ["relays", "bandwidths", "web", "bulk", "durationS"] as const;
  for (const k of need) {
    if (s[k] === undefined) throw new TypeError(`scenario ${path} lacks "${k}"`);
  }
  // The spelling (min_samples, max_duration) is read too.
  const raw = s as Scenario & { min_samples?: Scenario["minSamples"]; max_duration?: number };
  if (raw.min_samples && !s.minSamples) s.minSamples = raw.min_samples;
  if (raw.max_duration !== undefined && s.maxDurationS === undefined) {
    s.maxDurationS = raw.max_duration;
  }
  for (const [k, v] of Object.entries(s.minSamples ?? {})) {
    if (!(METRIC_NAMES as string[]).includes(k)) {
      throw new TypeError(
        `scenario ${path}: minSamples has no metric ${k} (${METRIC_NAMES.join(", ")})`,
      );
    }
    if (!(Number.isInteger(v) && v >= 0)) {
      throw new RangeError(`scenario ${path}: minSamples.${k} must be a count ≥ 0: ${v}`);
    }
  }
  if (s.maxDurationS !== undefined && !(s.maxDurationS > 0)) {
    throw new RangeError(`scenario ${path}: maxDurationS must be > 0: ${s.maxDurationS}`);
  }
  if (s.sample !== undefined) {
    const parse = { latency: parseDuration, loss: parseLoss, rate: parseRate } as const;
    for (const [k, v] of Object.entries(s.sample)) {
      const f = parse[k as keyof typeof parse];
      if (!f) {
        throw new TypeError(`scenario ${path}: sample has no field ${k} (latency, loss, rate)`);
      }
      if (!Array.isArray(v) || v.length !== 2) {
        throw new TypeError(`scenario ${path}: sample.${k} must be [lo, hi]: ${JSON.stringify(v)}`);
      }
      const [lo, hi] = v.map((x) => {
        try {
          return f(x);
        } catch (e) {
          throw new TypeError(`scenario ${path}: sample.${k}: ${(e as Error).message}`);
        }
      });
      if (!(lo! <= hi!)) throw new RangeError(`scenario ${path}: sample.${k} has lo > hi`);
    }
  }
  s.name ??= nameOrPath;
  s.timeoutS ??= 60;
  s.jitter ??= 0.2;
  s.seed ??= 1;
  if (s.emulation) s.emulation = withBase(s.emulation, path);
  return s;
}

/** The sizes of a size field that may be a list, in bytes. */
export function sizesOf(v: string | number | (string | number)[]): number[] {
  return (Array.isArray(v) ? v : [v]).map(sizeOf);
}

/** Bytes of a size field. */
export function sizeOf(v: string | number): number {
  return typeof v === "number" ? v : parseSize(v);
}

/** The minimum samples per metric of a scenario (its own over the defaults). */
export function minSamplesOf(s: Scenario): Record<Metric, number> {
  return { ...DEFAULT_MIN_SAMPLES, ...s.minSamples };
}

/** The most seconds an arm measures (the scenario's bound, else its duration; never below it). */
export function maxDurationOf(s: Scenario, durationS = s.durationS): number {
  return Math.max(durationS, s.maxDurationS ?? durationS);
}
