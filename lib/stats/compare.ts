/**
 * Comparisons of two sample sets: the change of OTHER against BASE at each percentile in %,
 * with a 95 % bootstrap interval (both sides resampled), the speed-up factor with its
 * uncertainty, and a two-sided Mann-Whitney U test (exact for small samples without ties,
 * else the tie-corrected normal approximation).
 * Arms of one run compare paired by time block (a block bootstrap and a signed-rank test of
 * per-block ratios), and a comparison says what makes it doubtful (sample sizes, failure
 * rates).
 * @module
 */

import { percentile, percentileSorted } from "./percentile.ts";
import { seededRandom } from "../util/random.ts";
import { boundedPercentile, type Sample, type SortedSample, sortSample } from "./censor.ts";

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
  /** With censored timeouts: the change is at least (`at-least`) or at most (`at-most`) this,
   * or cannot be told (`unknown`: both percentiles are lower bounds). */
  bound?: "at-least" | "at-most" | "unknown";
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

/** Samples up to this size (each side, no ties) get the exact Mann-Whitney p-value. */
export const MANN_WHITNEY_EXACT_MAX = 50;

/**
 * The null distribution of U for sizes m and n without ties: the count of arrangements with
 * each U = 0 … m·n, the coefficients of the Gaussian binomial [m+n choose m]_q =
 * ∏_{i=1..m} (1 − q^{n+i}) / (1 − q^i) (Mann & Whitney 1947; the same counts as their
 * recurrence f(u; m, n) = f(u − n; m − 1, n) + f(u; m, n − 1)). O(m²·n) operations.
 */
export function mannWhitneyCounts(m: number, n: number): Float64Array {
  const deg = m * n;
  const c = new Float64Array(deg + 1);
  c[0] = 1;
  for (let i = 1; i <= m; i++) {
    // Multiply by (1 − q^{n+i}), then divide by (1 − q^i) (a running sum with stride i).
    const k = n + i;
    for (let u = deg; u >= k; u--) c[u]! -= c[u - k]!;
    for (let u = i; u <= deg; u++) c[u]! += c[u - i]!;
  }
  return c;
}

/** The exact two-sided p-value of U1 = u for sizes m, n (no ties): 2·P(U ≥ max(u, mn − u)). */
export function mannWhitneyExactP(u: number, m: number, n: number): number {
  const c = mannWhitneyCounts(m, n);
  const big = Math.max(u, m * n - u);
  let total = 0, tail = 0;
  for (let k = 0; k < c.length; k++) {
    total += c[k]!;
    if (k >= big - 1e-9) tail += c[k]!;
  }
  return Math.min(1, 2 * tail / total);
}

/**
 * Two-sided Mann-Whitney U p-value: exact (the null distribution of U, as scipy's
 * `method="exact"`) when both samples have at most {@link MANN_WHITNEY_EXACT_MAX} values and
 * no value repeats; otherwise the normal approximation with the tie correction and no
 * continuity correction (scipy's `method="asymptotic", use_continuity=False`). Both are
 * checked against scipy's values in tests/fixtures/stats_reference.json.
 */
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
  if (tie === 0 && Math.max(n1, n2) <= MANN_WHITNEY_EXACT_MAX) {
    return mannWhitneyExactP(u, n1, n2);
  }
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
  return compareSampleSets(
    { values: base, censoredAt: [] },
    { values: other, censoredAt: [] },
    { ps, seed },
  );
}

/** Options of {@link compareSampleSets} and {@link compareArms}. */
export interface CompareOptions {
  /** Percentiles (default 50, 75, 90). */
  ps?: readonly number[];
  /** Bootstrap seed (default 7). */
  seed?: number;
}

/** Where a censored change stands: a change computed with a lower-bound percentile. */
function changeBound(baseAtLeast: boolean, otherAtLeast: boolean): Change["bound"] {
  if (baseAtLeast && otherAtLeast) return "unknown";
  if (otherAtLeast) return "at-least";
  if (baseAtLeast) return "at-most";
  return undefined;
}

/**
 * Compares OTHER with BASE, either side possibly with timeouts censored at their timeout: a
 * percentile that reaches a censored value is a lower bound, so its change is one too (the
 * change carries `bound`). Both sides are resampled (1000 bootstrap replicates).
 */
export function compareSampleSets(
  base: Sample,
  other: Sample,
  options: CompareOptions = {},
): Comparison {
  const bs = sortSample(base), os = sortSample(other);
  return compareSorted(bs, os, options, (random) => [resample(bs, random), resample(os, random)], {
    base: [...base.values, ...base.censoredAt],
    other: [...other.values, ...other.censoredAt],
  });
}

function resample(s: SortedSample, random: () => number, cap = 20_000): SortedSample {
  const n = Math.min(s.v.length, cap);
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = Math.floor(random() * s.v.length);
  idx.sort();
  const v = new Float64Array(n), cens = new Uint8Array(n);
  let firstCensored = n;
  for (let i = 0; i < n; i++) {
    v[i] = s.v[idx[i]!]!;
    cens[i] = s.cens[idx[i]!]!;
    if (cens[i] && firstCensored === n) firstCensored = i;
  }
  return { v, cens, firstCensored };
}

function compareSorted(
  bs: SortedSample,
  os: SortedSample,
  options: CompareOptions,
  draw: (random: () => number) => [SortedSample, SortedSample],
  all: { base: number[]; other: number[] },
): Comparison {
  const ps = options.ps ?? [50, 75, 90];
  const B = 1000;
  const random = seededRandom(options.seed ?? 7);
  const qs = [...ps, 50];
  const changes = qs.map(() => new Float64Array(B));
  for (let b = 0; b < B; b++) {
    const [x, y] = draw(random);
    qs.forEach((p, k) => {
      const bv = percentileSorted(x.v, p);
      changes[k]![b] = ((percentileSorted(y.v, p) - bv) / bv) * 100;
    });
  }
  const out: Change[] = ps.map((p, k) => {
    const b = boundedPercentile(bs, p), o = boundedPercentile(os, p);
    const c = changes[k]!.sort();
    const bound = changeBound(b.atLeast, o.atLeast);
    return {
      p,
      base: b.value,
      other: o.value,
      changePct: ((o.value - b.value) / b.value) * 100,
      lo: percentileSorted(c, 2.5),
      hi: percentileSorted(c, 97.5),
      ...(bound ? { bound } : {}),
    };
  });
  const med = changes[qs.length - 1]!.sort();
  const f = (pct: number) => 1 / (1 + pct / 100);
  const m50 = percentileSorted(os.v, 50) / percentileSorted(bs.v, 50);
  return {
    changes: out,
    factor: {
      value: 1 / m50,
      lo: f(percentileSorted(med, 97.5)),
      hi: f(percentileSorted(med, 2.5)),
    },
    pValue: mannWhitney(all.base, all.other),
    n: { base: all.base.length, other: all.other.length },
  };
}

/** Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped, ties
 * averaged, normal approximation with tie correction). */
export function signedRank(diffs: number[]): number {
  const d = diffs.filter((x) => x !== 0 && Number.isFinite(x));
  const n = d.length;
  if (n === 0) return NaN;
  const sorted = d.map((x) => [Math.abs(x), x > 0 ? 1 : -1] as const).sort((a, b) => a[0] - b[0]);
  let wPlus = 0, tie = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j < n && sorted[j]![0] === sorted[i]![0]) j++;
    const rank = (i + j + 1) / 2;
    const t = j - i;
    tie += t * t * t - t;
    for (let k = i; k < j; k++) if (sorted[k]![1] > 0) wPlus += rank;
    i = j;
  }
  const mean = n * (n + 1) / 4;
  const sigma = Math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - tie / 48);
  if (sigma === 0) return 1;
  const z = (wPlus - mean) / sigma;
  return 2 * (1 - normCdf(Math.abs(z)));
}

/** Blocks drawn per bootstrap replicate of {@link compareArms}, at most. */
export const MAX_BLOCKS_PER_REPLICATE = 10_000;

/** One time block of an arms run: each arm's samples in it. */
export interface ArmBlock {
  /** BASE's samples in the block. */
  base: Sample;
  /** OTHER's samples in the block. */
  other: Sample;
}

/** A comparison of two arms paired by time block. */
export interface ArmComparison extends Comparison {
  /** Blocks where both arms have a sample (the ones compared). */
  pairedBlocks: number;
  /** Blocks where only one arm has a sample (left out). */
  unpairedBlocks: number;
  /** Wilcoxon signed-rank p-value of the per-block log ratio of medians. */
  pairedPValue: number;
  /** Median over blocks of OTHER/BASE (per-block medians). */
  medianBlockRatio: number;
}

function median(s: Sample): number {
  return percentileSorted(sortSample(s).v, 50);
}

/**
 * Compares two arms of one run paired by time block: only blocks where both arms have a
 * sample count, the bootstrap resamples whole blocks (both arms' samples of a drawn block
 * together, so a slow minute weighs on both), the changes per percentile come with their 95 %
 * interval as in {@link compareSamples}, beside the Mann-Whitney U of the pooled samples and a
 * Wilcoxon signed-rank test of the per-block ratios.
 */
export function compareArms(blocks: ArmBlock[], options: CompareOptions = {}): ArmComparison {
  const nonEmpty = (s: Sample) => s.values.length + s.censoredAt.length > 0;
  const paired = blocks.filter((b) => nonEmpty(b.base) && nonEmpty(b.other));
  const unpaired = blocks.filter((b) => nonEmpty(b.base) !== nonEmpty(b.other)).length;
  const pool = (list: ArmBlock[], side: "base" | "other"): Sample => ({
    values: list.flatMap((b) => b[side].values),
    censoredAt: list.flatMap((b) => b[side].censoredAt),
  });
  const base = pool(paired, "base"), other = pool(paired, "other");
  const bs = sortSample(base), os = sortSample(other);
  // Each block's samples as ranks into its side's sorted pool: a replicate concatenates the
  // ranks of the drawn blocks and sorts integers, which is fast for days of blocks.
  const ranksOf = (side: "base" | "other"): Uint32Array[] => {
    const entries: [number, number, number][] = [];
    paired.forEach((b, k) => {
      for (const v of b[side].values) entries.push([v, 0, k]);
      for (const v of b[side].censoredAt) entries.push([v, 1, k]);
    });
    entries.sort((a, c) => a[0] - c[0] || a[1] - c[1]);
    const lists: number[][] = paired.map(() => []);
    entries.forEach(([, , k], rank) => lists[k]!.push(rank));
    return lists.map((l) => Uint32Array.from(l));
  };
  const bRanks = ranksOf("base"), oRanks = ranksOf("other");
  const gather = (ranks: Uint32Array[], pick: Uint32Array, sorted: SortedSample) => {
    let n = 0;
    for (const k of pick) n += ranks[k]!.length;
    const idx = new Uint32Array(n);
    let off = 0;
    for (const k of pick) {
      idx.set(ranks[k]!, off);
      off += ranks[k]!.length;
    }
    idx.sort();
    const v = new Float64Array(n), cens = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      v[i] = sorted.v[idx[i]!]!;
      cens[i] = sorted.cens[idx[i]!]!;
    }
    return { v, cens, firstCensored: n };
  };
  const draw = (random: () => number): [SortedSample, SortedSample] => {
    // As compareSamples caps a replicate at 20 000 samples, at most 10 000 blocks are drawn
    // (days of fetches stay quick; the interval is then a little wider, never narrower).
    const pick = new Uint32Array(Math.min(paired.length, MAX_BLOCKS_PER_REPLICATE));
    for (let i = 0; i < pick.length; i++) pick[i] = Math.floor(random() * paired.length);
    return [gather(bRanks, pick, bs), gather(oRanks, pick, os)];
  };
  const c = compareSorted(bs, os, options, draw, {
    base: [...base.values, ...base.censoredAt],
    other: [...other.values, ...other.censoredAt],
  });
  const logRatios = paired.map((b) => Math.log(median(b.other) / median(b.base)));
  return {
    ...c,
    pairedBlocks: paired.length,
    unpairedBlocks: unpaired,
    pairedPValue: signedRank(logRatios),
    medianBlockRatio: Math.exp(percentile(logRatios, 50)),
  };
}

/** Two-sided p-value that two failure rates are equal (two-proportion z-test). */
export function twoProportions(failA: number, nA: number, failB: number, nB: number): number {
  if (!nA || !nB) return NaN;
  const p = (failA + failB) / (nA + nB);
  const se = Math.sqrt(p * (1 - p) * (1 / nA + 1 / nB));
  if (se === 0) return 1;
  const z = (failA / nA - failB / nB) / se;
  return 2 * (1 - normCdf(Math.abs(z)));
}

/** Counts of one side for {@link comparisonDoubts}. */
export interface SideCounts {
  /** Name (arm or file). */
  name: string;
  /** Fetches. */
  count: number;
  /** Successful. */
  ok: number;
  /** Timed out. */
  timeouts: number;
  /** Failed otherwise. */
  failed: number;
  /** Still running when the run ended (not failures, not timed). */
  unfinished?: number;
}

/**
 * Why a comparison may mislead: sample sizes that differ by more than a fifth, failure rates
 * that differ (two-proportion test p < 0.05 and at least 2 points apart) — then successes
 * alone compare different populations — and too few paired blocks.
 */
export function comparisonDoubts(
  a: SideCounts,
  b: SideCounts,
  pairedBlocks?: number,
): string[] {
  const out: string[] = [];
  if (Math.min(a.ok, b.ok) < 0.8 * Math.max(a.ok, b.ok)) {
    out.push(
      `sample sizes differ: ${a.ok} successful fetches (${a.name}) vs ${b.ok} (${b.name})`,
    );
  }
  const na = a.count - (a.unfinished ?? 0), nb = b.count - (b.unfinished ?? 0);
  const fa = na - a.ok, fb = nb - b.ok;
  const p = twoProportions(fa, na, fb, nb);
  const ra = na ? fa / na : 0, rb = nb ? fb / nb : 0;
  if (p < 0.05 && Math.abs(ra - rb) >= 0.02) {
    out.push(
      `failure rates differ: ${
        (ra * 100).toFixed(1)
      } % (${a.name}: ${a.timeouts} timeouts, ${a.failed} other) vs ${
        (rb * 100).toFixed(1)
      } % (${b.name}: ${b.timeouts} timeouts, ${b.failed} other), p = ${
        p.toPrecision(2)
      }: percentiles of successes compare different populations (try --censor)`,
    );
  }
  if (Math.min(a.ok, b.ok) < 10) {
    out.push(
      `few samples: ${a.ok} (${a.name}) and ${b.ok} (${b.name}) successful fetches — bootstrap intervals from fewer than 10 are unreliable, doubt the result`,
    );
  }
  if (pairedBlocks !== undefined && pairedBlocks < 10) {
    out.push(`only ${pairedBlocks} time blocks have both arms: wide intervals, doubt the result`);
  }
  return out;
}

/** The paper's words for one change: "improved by 62 % at the median" / "worsened by …". */
export function describeChange(metric: string, c: Change): string {
  const where = c.p === 50 ? "at the median" : `at the ${c.p}th percentile`;
  const ci = `(95 % CI ${fmtPct(c.lo)} .. ${fmtPct(c.hi)})`;
  if (c.bound === "unknown") {
    return `${metric}: cannot tell ${where}: both sides reach censored timeouts (≥ ${
      c.base.toFixed(0)
    } ms, ≥ ${c.other.toFixed(0)} ms)`;
  }
  if (c.bound) {
    const rel = c.bound === "at-least" ? "≥" : "≤";
    return `${metric}: change ${rel} ${
      fmtPct(c.changePct)
    } ${where} (a censored timeout bounds it) ${ci}`;
  }
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
