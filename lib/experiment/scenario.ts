/**
 * Experiment scenarios (files under measurements/scenarios/): the network, the workload and
 * the durations, with defaults a reader can see in one place.
 * @module
 */

import { parseSize } from "../serve/sizes.ts";
import { type EmulationSpec, withBase } from "../emulate/config.ts";
import { builtinNames, readBuiltin } from "../util/builtin.ts";

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
  /** Seconds of measurement per arm. */
  durationS: number;
  /** Per-fetch timeout, seconds. */
  timeoutS: number;
  /** Jitter of the think time (fraction). */
  jitter: number;
  /** Seed of the jitter. */
  seed: number;
  /** With --netns: the emulated links (latency, loss, rates, topology; lib/emulate). */
  emulation?: EmulationSpec;
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
