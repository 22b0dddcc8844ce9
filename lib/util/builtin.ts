/**
 * The files under measurements/ the program needs (scenarios, topologies, web pages), by name.
 * From the source tree they are read from measurements/ (so an edited scenario takes effect at
 * once); from the bundle or a compiled binary they come from lib/embedded.ts, which
 * scripts/embed.ts generates (tests/bundle_test.ts fails when it is out of date).
 * @module
 */

import * as embedded from "../embedded.ts";
import { selfForm } from "./self.ts";

/** The groups of built-in files and their folders under measurements/. */
export const BUILTIN_DIRS = {
  scenarios: "measurements/scenarios",
  topologies: "measurements/topologies",
  web: "measurements/web",
} as const;

/** A group of built-in files. */
export type BuiltinGroup = keyof typeof BUILTIN_DIRS;

/** The names of a group's built-in files (e.g. `quick.json`). */
export function builtinNames(group: BuiltinGroup): string[] {
  return Object.keys(embedded[group]).sort();
}

/** A built-in file's text, or undefined when there is no such file. */
export async function readBuiltin(group: BuiltinGroup, name: string): Promise<string | undefined> {
  if (name.split("/").some((p) => p === ".." || p === "")) return undefined;
  if (selfForm() === "source") {
    const url = new URL(`../../${BUILTIN_DIRS[group]}/${name}`, import.meta.url);
    try {
      return await Deno.readTextFile(url);
    } catch { /* not in the tree: fall back to the embedded copy */ }
  }
  return Object.hasOwn(embedded[group], name) ? embedded[group][name] : undefined;
}
