/**
 * Helpers shared by the command files: exit codes and error reporting.
 *
 * Usage errors exit 2, runtime failures exit 1 (STYLE.md, "Ours, in short").
 * @module
 */

import { InvalidArgumentError } from "commander";

/** Exit code for a usage error (bad flag, bad value). */
export const EXIT_USAGE = 2;
/** Exit code for a runtime failure. */
export const EXIT_FAILURE = 1;

/** An error in how the command was called; printed without a stack, exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Prints `pctcp: message` on stderr and exits with the code that fits the error. */
export function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  console.error(`pctcp: ${message}`);
  Deno.exit(err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE);
}

/** Runs a command body, turning any thrown error into a clear message and exit code. */
export async function run(body: () => Promise<number | void> | number | void): Promise<void> {
  try {
    const code = await body();
    if (typeof code === "number" && code !== 0) Deno.exit(code);
  } catch (err) {
    // A reader that went away (`pctcp export … | head`) is not a failure.
    if (err instanceof Deno.errors.BrokenPipe) Deno.exit(0);
    fail(err);
  }
}

/** Says that a command exists in the design but is not built yet, and exits 1. */
export function notBuilt(command: string, issue: number): never {
  console.error(`pctcp: '${command}' is not built yet (see issue ${issue})`);
  Deno.exit(EXIT_FAILURE);
}

/** Parses a positive integer flag value for commander (a bad value is a usage error). */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses a non-negative number flag value for commander. */
export function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(`expected a non-negative number, got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * Resolves on SIGINT or SIGTERM, or when process `exitWith` is gone (checked every second):
 * processes an experiment starts end with it even if it is killed.
 */
export function untilStopped(exitWith?: number): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      clearInterval(timer);
      resolve(why);
    };
    Deno.addSignalListener("SIGINT", () => done("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => done("SIGTERM"));
    const timer = exitWith
      ? setInterval(() => {
        try {
          Deno.statSync(`/proc/${exitWith}`);
        } catch {
          done(`process ${exitWith} is gone`);
        }
      }, 1000)
      : undefined;
  });
}
