/**
 * Helpers shared by the command files: exit codes, error reporting, flag value parsers.
 *
 * Exit codes (docs/cli.md, the same for every command): 0 done; 1 runtime failure (the command
 * could not do its job: proxy down, every fetch failed, a file it needs is bad); 2 usage error
 * (bad flag or value); 3 partial (the job was done but some items failed: some fetches, some
 * lines skipped); 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM, after writing what it had.
 * @module
 */

import { type Command, InvalidArgumentError, type Option } from "commander";
import { parseDuration } from "../lib/util/duration.ts";

/** Exit code for a usage error (bad flag, bad value). */
export const EXIT_USAGE = 2;
/** Exit code for a runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit code when the job was done but some of its items failed (some fetches, some lines). */
export const EXIT_PARTIAL = 3;
/** Exit code after Ctrl-C (128 + SIGINT), once what was measured is written. */
export const EXIT_INTERRUPTED = 130;
/** Exit code after SIGTERM (128 + 15), once what was measured is written. */
export const EXIT_TERMINATED = 143;

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
 * Parses a duration flag into seconds for commander: `90s`, `500ms`, `5m`, `1h`, `1m30s`, or a
 * bare number of seconds (as before units).
 */
export function seconds(value: string): number {
  try {
    return parseDuration(value, "s") / 1000;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Parses a duration flag into milliseconds, a bare number being ms (`measure --timeout`). */
export function millis(value: string): number {
  try {
    const ms = parseDuration(value, "ms");
    if (ms <= 0) throw new SyntaxError(`expected a positive duration, got ${value}`);
    return ms;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Parses a duration flag into milliseconds where 0 is allowed (e.g. "0: off"), bare = ms. */
export function millisOrZero(value: string): number {
  try {
    return parseDuration(value, "ms");
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
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

/**
 * A role's orderly shutdown, bounded: past `ms` the process exits anyway. Beside a busy loop a
 * relay and a client in namespaces were still running 30 s after their owner was killed (their
 * stop() did not return; cause not found): "exit with its owner" must not depend on every link
 * closing cleanly.
 */
export async function exitAfter(
  stop: () => Promise<unknown>,
  options: { ms?: number; log?: (msg: string) => void } = {},
): Promise<never> {
  const ms = options.ms ?? 5000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), ms));
  const how = await Promise.race([
    stop().then(() => "done", (e) => `failed: ${(e as Error).message}`),
    late,
  ]);
  clearTimeout(timer);
  if (how !== "done") {
    options.log?.(`shutdown ${how === "late" ? `took over ${ms} ms` : how}; exiting`);
  }
  Deno.exit(0);
}

/**
 * Adds `option` as the documented name of a flag whose old name stays as a hidden alias: its
 * value is stored under `attr`, the old flag's attribute, so the command's code reads one
 * place (e.g. `--time-origin` for the old `--base` of stats, see docs/cli.md "Flag names").
 */
export function renamedFlag(
  c: Command,
  option: Option,
  attr: string,
  parse: (value: string) => unknown = (v) => v,
): Command {
  c.addOption(option);
  c.on(`option:${option.name()}`, (v: string) => c.setOptionValueWithSource(attr, parse(v), "cli"));
  return c;
}
