/**
 * Percentiles by one fixed, stated method: linear interpolation between closest ranks
 * (Hyndman & Fan type 7, the default of R, NumPy and Excel's PERCENTILE.INC).
 * @module
 */

/** The name of the method, printed beside every percentile table. */
export const PERCENTILE_METHOD = "linear interpolation (Hyndman-Fan type 7)";

/** The p-th percentile (0–100) of already sorted values. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted[n - 1]!;
  const h = (n - 1) * (p / 100);
  const lo = Math.floor(h);
  const frac = h - lo;
  const a = sorted[lo]!, b = sorted[Math.min(n - 1, lo + 1)]!;
  return a + (b - a) * frac;
}

/** The p-th percentile (0–100) of values (sorted internally). */
export function percentile(values: number[], p: number): number {
  return percentileSorted(Float64Array.from(values).sort(), p);
}
