/**
 * Byte sizes as users write them: `51200`, `50KiB`, `5MiB`, `1GiB`, `300KB` (SI).
 * @module
 */

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** Parses a size; a SyntaxError says what is wrong. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? "";
  if (!m || !(unit in UNITS)) throw new SyntaxError(`not a size: ${JSON.stringify(text)}`);
  const n = Number(m[1]) * UNITS[unit]!;
  if (!Number.isSafeInteger(Math.round(n))) throw new RangeError(`size too large: ${text}`);
  return Math.round(n);
}

/** Formats a byte count the short way (`50KiB`, `5MiB`, `1234`). */
export function formatSize(n: number): string {
  for (const [u, f] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (n >= f && n % f === 0) return `${n / f}${u}`;
  }
  return String(n);
}
