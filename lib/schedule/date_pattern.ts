/**
 * strftime-like date patterns in output file names (`records-%Y-%m-%d.jsonl`), expanded when
 * `pctcp measure` starts, so one cron entry writes one file per day. Local time, as cron's.
 * @module
 */

const FIELDS: Record<string, (d: Date) => string> = {
  Y: (d) => String(d.getFullYear()),
  m: (d) => String(d.getMonth() + 1).padStart(2, "0"),
  d: (d) => String(d.getDate()).padStart(2, "0"),
  H: (d) => String(d.getHours()).padStart(2, "0"),
  M: (d) => String(d.getMinutes()).padStart(2, "0"),
  S: (d) => String(d.getSeconds()).padStart(2, "0"),
  "%": () => "%",
};

/**
 * Replaces `%Y %m %d %H %M %S %%` in `pattern` with the local date `at`; any other `%x` is a
 * SyntaxError (a typo should not silently name a file).
 *
 * @example Daily files
 * ```ts
 * import { expandDatePattern } from "./date_pattern.ts";
 * const name = expandDatePattern("records-%Y-%m-%d.jsonl", new Date(2026, 10, 26, 12));
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
