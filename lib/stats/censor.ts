/**
 * Samples with timeouts counted as censored: a fetch that timed out after T ms took at least
 * T ms, so it stays in the sample at T, marked. A percentile whose rank reaches a censored
 * value is only a lower bound ("≥ 2400 ms"); below the first censored rank it is exact. This
 * is the honest alternative to dropping timeouts, which biases every percentile low.
 *
 * Method: the sample is sorted with each censored value placed after equal observed ones; the
 * p-th percentile (type 7, as everywhere here) interpolates between ranks ⌊h⌋ and ⌈h⌉,
 * h = (n − 1)·p; it is a lower bound if any censored value sits at rank ≤ ⌈h⌉ (moving such a
 * value up to its true, larger time can only raise the order statistic). Bootstrap resamples
 * draw ranks, so each replicate knows which of its values are censored.
 * @module
 */

import { percentileSorted } from "./percentile.ts";
import { seededRandom } from "../util/random.ts";

/** Observed values and the censoring points of timed-out fetches, ms. */
export interface Sample {
  /** Observed times. */
  values: number[];
  /** For each timed-out fetch, the time it was given up at (the timeout). */
  censoredAt: number[];
}

/** A percentile with its 95 % interval; `censored` says which of them are lower bounds. */
export interface BoundedEstimate {
  /** The percentile (0–100). */
  p: number;
  /** Its value, ms. */
  value: number;
  /** 95 % interval low, ms. */
  lo: number;
  /** 95 % interval high, ms. */
  hi: number;
  /** Present when the sample has censored values: true where the number is "at least". */
  censored?: { value: boolean; lo: boolean; hi: boolean };
}

/** A sorted sample: values ascending, a flag per rank, and the first censored rank. */
export interface SortedSample {
  /** Values, ascending. */
  v: Float64Array;
  /** 1 where the value at that rank is censored. */
  cens: Uint8Array;
  /** The lowest censored rank (n when none). */
  firstCensored: number;
}

/** Sorts a sample, censored values after equal observed ones. */
export function sortSample(s: Sample): SortedSample {
  const n = s.values.length + s.censoredAt.length;
  const pairs: [number, number][] = [
    ...s.values.map((x) => [x, 0] as [number, number]),
    ...s.censoredAt.map((x) => [x, 1] as [number, number]),
  ].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const v = new Float64Array(n), cens = new Uint8Array(n);
  let firstCensored = n;
  pairs.forEach(([x, c], i) => {
    v[i] = x;
    cens[i] = c;
    if (c && i < firstCensored) firstCensored = i;
  });
  return { v, cens, firstCensored };
}

/** The highest rank the p-th percentile (type 7) of n values reads. */
export function topRank(n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 100) return n - 1;
  const h = (n - 1) * (p / 100);
  return Math.min(n - 1, Math.ceil(h));
}

/** The p-th percentile of a sorted sample and whether it is a lower bound. */
export function boundedPercentile(s: SortedSample, p: number): { value: number; atLeast: boolean } {
  const n = s.v.length;
  if (n === 0) return { value: NaN, atLeast: false };
  return { value: percentileSorted(s.v, p), atLeast: s.firstCensored <= topRank(n, p) };
}

/**
 * Percentiles with 95 % bootstrap intervals (1000 resamples, seeded; samples over 20 000 use
 * the order-statistic interval), marking lower bounds when timeouts are censored.
 */
export function estimateSample(
  sample: Sample,
  ps: readonly number[],
  seed = 1,
): BoundedEstimate[] {
  const s = sortSample(sample);
  const n = s.v.length;
  const hasCensored = s.firstCensored < n;
  const mark = (e: Omit<BoundedEstimate, "censored">, c: BoundedEstimate["censored"]) =>
    hasCensored ? { ...e, censored: c! } : e;
  if (n === 0) {
    return ps.map((p) => ({ p, value: NaN, lo: NaN, hi: NaN }));
  }
  if (n <= 20_000) {
    const B = 1000;
    const random = seededRandom(seed);
    const boots = ps.map(() => new Float64Array(B));
    const bootCens = ps.map(() => new Uint8Array(B));
    const idx = new Uint32Array(n);
    const sample = new Float64Array(n);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n; i++) idx[i] = Math.floor(random() * n);
      idx.sort();
      let first = n;
      for (let i = 0; i < n; i++) {
        sample[i] = s.v[idx[i]!]!;
        if (first === n && s.cens[idx[i]!]) first = i;
      }
      ps.forEach((p, k) => {
        boots[k]![b] = percentileSorted(sample, p);
        bootCens[k]![b] = first <= topRank(n, p) ? 1 : 0;
      });
    }
    return ps.map((p, k) => {
      const order = Array.from({ length: B }, (_, i) => i).sort((a, c) =>
        boots[k]![a]! - boots[k]![c]! || bootCens[k]![a]! - bootCens[k]![c]!
      );
      const sortedBoot = Float64Array.from(order, (i) => boots[k]![i]!);
      const at = (q: number) => bootCens[k]![order[topRank(B, q)]!] === 1;
      const v = boundedPercentile(s, p);
      return mark({
        p,
        value: v.value,
        lo: percentileSorted(sortedBoot, 2.5),
        hi: percentileSorted(sortedBoot, 97.5),
      }, { value: v.atLeast, lo: at(2.5), hi: at(97.5) });
    });
  }
  return ps.map((p) => {
    const q = p / 100;
    const half = 1.959964 * Math.sqrt(n * q * (1 - q));
    const lo = Math.max(0, Math.floor(n * q - half) - 1);
    const hi = Math.min(n - 1, Math.ceil(n * q + half));
    const v = boundedPercentile(s, p);
    return mark(
      { p, value: v.value, lo: s.v[lo]!, hi: s.v[hi]! },
      { value: v.atLeast, lo: s.firstCensored <= lo, hi: s.firstCensored <= hi },
    );
  });
}

/** Formats a value in ms with "≥ " when it is a lower bound. */
export function formatBound(value: number, atLeast = false, digits = 1): string {
  if (!Number.isFinite(value)) return "-";
  return `${atLeast ? "≥ " : ""}${value.toFixed(digits)}`;
}

/** The timeout a timed-out record ran under: `timeout_ms`, else read from its error text. */
export function timeoutOf(r: { timeout_ms?: number; error: string | null }): number | undefined {
  if (typeof r.timeout_ms === "number") return r.timeout_ms;
  const m = /within (\d+(?:\.\d+)?) ms/.exec(r.error ?? "");
  return m ? Number(m[1]) : undefined;
}
