/**
 * The across-run interval: runs are independent networks and seeds, so each run's value (a
 * percentile, a change) is one observation, and their mean gets a two-sided 95 % Student t
 * interval, mean ± t(0.975, n − 1) · s / √n. Fewer than three runs give none: with two, t is
 * 12.7 and the interval says nothing (issue 25: −931 .. 6736 ms from 2 runs).
 * @module
 */

/** Two-sided 97.5 % quantiles of Student's t for 1…30 degrees of freedom (any t table). */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.160,
  2.145,
  2.131,
  2.120,
  2.110,
  2.101,
  2.093,
  2.086,
  2.080,
  2.074,
  2.069,
  2.064,
  2.060,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** The 97.5 % quantile of Student's t with `df` degrees of freedom (table to 30, then
 * 1.96 + 2.4 / df, within 0.002 of the exact value). */
export function t975(df: number): number {
  if (!(df >= 1)) throw new RangeError(`degrees of freedom must be ≥ 1: ${df}`);
  return T975[Math.floor(df) - 1] ?? 1.96 + 2.4 / df;
}

/** Fewest runs that give an across-run interval. */
export const MIN_RUNS = 3;

/** Mean of per-run values and its 95 % t interval (null below {@link MIN_RUNS} runs). */
export interface AcrossRuns {
  /** Runs. */
  n: number;
  /** Mean of the runs' values. */
  mean: number;
  /** 95 % t interval of the mean, or null with fewer than {@link MIN_RUNS} runs. */
  ci: [number, number] | null;
  /** Why there is no interval, when there is none. */
  note?: string;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * Mean of per-run values with a 95 % t interval (values rounded to 0.01).
 *
 * @example Three runs give an interval, two do not
 * ```ts
 * import { acrossRuns } from "./across.ts";
 * const a = acrossRuns([1, 2, 3]); // sd 1, t(0.975, 2) = 4.303
 * if (a.ci?.[0] !== -0.48 || a.ci[1] !== 4.48) throw new Error();
 * if (acrossRuns([1, 2]).ci !== null) throw new Error();
 * ```
 */
export function acrossRuns(values: number[]): AcrossRuns {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, n);
  if (n < MIN_RUNS) {
    return {
      n,
      mean: round(mean),
      ci: null,
      note: `no interval from ${n} run${n === 1 ? "" : "s"} (needs ${MIN_RUNS})`,
    };
  }
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const h = t975(n - 1) * sd / Math.sqrt(n);
  return { n, mean: round(mean), ci: [round(mean - h), round(mean + h)] };
}
