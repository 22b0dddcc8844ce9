/**
 * Comparisons of two sample sets: the change of OTHER against BASE at each percentile in %,
 * with a 95 % bootstrap interval (both sides resampled), the speed-up factor with its
 * uncertainty, and a two-sided Mann-Whitney U test (normal approximation, tie-corrected).
 * @module
 */

import { percentileSorted } from "./percentile.ts";
import { seededRandom } from "../util/random.ts";

/** One percentile's comparison. */
export interface Change {
  /** Percentile. */
  p: number;
  /** BASE's value, ms. */
  base: number;
  /** OTHER's value, ms. */
  other: number;
  /** (other − base) / base in % (negative: OTHER is faster). */
  changePct: number;
  /** 95 % interval of the change, %. */
  lo: number;
  /** 95 % interval of the change, %. */
  hi: number;
}

/** A whole comparison of one metric. */
export interface Comparison {
  /** Per percentile. */
  changes: Change[];
  /** Median speed-up base/other (>1: OTHER faster) and its 95 % interval. */
  factor: { value: number; lo: number; hi: number };
  /** Mann-Whitney U two-sided p-value. */
  pValue: number;
  /** Sample sizes. */
  n: { base: number; other: number };
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf). */
function normCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(z) / Math.SQRT2);
  const y = 1 -
    (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

/** Two-sided Mann-Whitney U p-value. */
export function mannWhitney(a: number[], b: number[]): number {
  const n1 = a.length, n2 = b.length;
  if (n1 === 0 || n2 === 0) return NaN;
  const all = [...a.map((v) => [v, 0] as const), ...b.map((v) => [v, 1] as const)].sort((x, y) =>
    x[0] - y[0]
  );
  let r1 = 0, tie = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j]![0] === all[i]![0]) j++;
    const rank = (i + j + 1) / 2;
    const t = j - i;
    tie += t * t * t - t;
    for (let k = i; k < j; k++) if (all[k]![1] === 0) r1 += rank;
    i = j;
  }
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt((n1 * n2 / 12) * ((n + 1) - tie / (n * (n - 1))));
  if (sigma === 0) return 1;
  const z = (u - (n1 * n2) / 2) / sigma;
  return 2 * (1 - normCdf(Math.abs(z)));
}

/** Compares OTHER with BASE at the given percentiles. */
export function compareSamples(
  base: number[],
  other: number[],
  ps: readonly number[] = [50, 75, 90],
  seed = 7,
): Comparison {
  const bs = Float64Array.from(base).sort(), os = Float64Array.from(other).sort();
  const B = 1000;
  const random = seededRandom(seed);
  const cap = 20_000;
  const boot = (src: Float64Array) => {
    const n = Math.min(src.length, cap);
    const s = new Float64Array(n);
    for (let i = 0; i < n; i++) s[i] = src[Math.floor(random() * src.length)]!;
    return s.sort();
  };
  const qs = [...ps, 50];
  const changes = qs.map(() => new Float64Array(B));
  for (let b = 0; b < B; b++) {
    const x = boot(bs), y = boot(os);
    qs.forEach((p, k) => {
      const bv = percentileSorted(x, p);
      changes[k]![b] = ((percentileSorted(y, p) - bv) / bv) * 100;
    });
  }
  const out: Change[] = ps.map((p, k) => {
    const base = percentileSorted(bs, p), oth = percentileSorted(os, p);
    const c = changes[k]!.sort();
    return {
      p,
      base,
      other: oth,
      changePct: ((oth - base) / base) * 100,
      lo: percentileSorted(c, 2.5),
      hi: percentileSorted(c, 97.5),
    };
  });
  const med = changes[qs.length - 1]!.sort();
  const f = (pct: number) => 1 / (1 + pct / 100);
  const m50 = percentileSorted(os, 50) / percentileSorted(bs, 50);
  return {
    changes: out,
    factor: {
      value: 1 / m50,
      lo: f(percentileSorted(med, 97.5)),
      hi: f(percentileSorted(med, 2.5)),
    },
    pValue: mannWhitney(base, other),
    n: { base: base.length, other: other.length },
  };
}

/** The paper's words for one change: "improved by 62 % at the median" / "worsened by …". */
export function describeChange(metric: string, c: Change): string {
  const where = c.p === 50 ? "at the median" : `at the ${c.p}th percentile`;
  const ci = `(95 % CI ${fmtPct(c.lo)} .. ${fmtPct(c.hi)})`;
  if (c.lo <= 0 && c.hi >= 0) {
    return `${metric}: no clear change ${where}: ${fmtPct(c.changePct)} ${ci}`;
  }
  const verb = c.changePct < 0 ? "improved" : "worsened";
  return `${metric} ${verb} by ${Math.abs(c.changePct).toFixed(0)} % ${where} ${ci}`;
}

function fmtPct(x: number): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(1)} %`;
}

/** hyperfine's sentence: "OTHER ran 1.90 ± 0.10 times faster than BASE" (at the median). */
export function describeFactor(baseName: string, otherName: string, c: Comparison): string {
  const { value, lo, hi } = c.factor;
  const pm = Math.max(value - lo, hi - value);
  if (value >= 1) {
    return `${otherName} ran ${value.toFixed(2)} ± ${
      pm.toFixed(2)
    } times faster than ${baseName} (median)`;
  }
  return `${baseName} ran ${(1 / value).toFixed(2)} ± ${
    (pm / value / value).toFixed(2)
  } times faster than ${otherName} (median)`;
}
