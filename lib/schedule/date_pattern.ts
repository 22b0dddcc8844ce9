/**
 * strftime-like date patterns in output file names (`records-%Y-%m-%d.jsonl`), expanded when
 * `pctcp measure` starts, so one cron entry writes one file per day. UTC, whatever the machine's
 * time zone (as run ids and record times are), so files of machines in different zones line up
 * and a day's file is the same day as its records' `start`.
 * @module
 */

const FIELDS: Record<string, (d: Date) => string> = {
  Y: (d) => String(d.getUTCFullYear()),
  m: (d) => String(d.getUTCMonth() + 1).padStart(2, "0"),
  d: (d) => String(d.getUTCDate()).padStart(2, "0"),
  H: (d) => String(d.getUTCHours()).padStart(2, "0"),
  M: (d) => String(d.getUTCMinutes()).padStart(2, "0"),
  S: (d) => String(d.getUTCSeconds()).padStart(2, "0"),
  "%": () => "%",
};

/**
 * Replaces `%Y %m %d %H %M %S %%` in `pattern` with the UTC date `at`; any other `%x` is a
 * SyntaxError (a typo should not silently name a file).
 *
 * @example Daily files
 * ```ts
 * import { expandDatePattern } from "./date_pattern.ts";
 * const name = expandDatePattern("records-%Y-%m-%d.jsonl", new Date(Date.UTC(2026, 10, 26, 23, 30)));
 * if (name !== "records-2026-11-26.jsonl") throw new Error(name);
 * ```
 */
export function expandDatePattern(pattern: string, at: Date = new Date()): string {
  return pattern.replace(/%(.)/g, (_m, c: string) => {
    const f = FIELDS[c];
    if (!f) throw new SyntaxError(`unknown date field in file name: %${c} (use %Y %m %d %H %M %S)`);
    return f(at);
  });
}
