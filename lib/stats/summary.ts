/**
 * Summaries of records: per group, counts, error rate and percentiles of response time
 * (`first_byte`) and download time (`last_byte`), each with a 95 % confidence interval.
 *
 * Times count from the start of the stream, SOCKS included (OnionPerf's convention); the
 * `tgen` view counts from the request instead. Intervals: a percentile bootstrap with 1000
 * resamples (seeded) for up to 20 000 samples, else the distribution-free order-statistic
 * interval (the binomial ranks around n·p), which needs no resampling.
 * @module
 */

import { percentileSorted } from "./percentile.ts";
import { seededRandom } from "../util/random.ts";
import type { MeasureRecord } from "../measure/record.ts";

/** The percentiles every summary reports. */
export const PERCENTILES = [10, 25, 50, 75, 90, 99] as const;

/** Where times count from. */
export type TimeBase = "onionperf" | "tgen";

/** A percentile with its 95 % interval. */
export interface Estimate {
  /** The percentile (0–100). */
  p: number;
  /** Its value, ms. */
  value: number;
  /** 95 % interval low, ms. */
  lo: number;
  /** 95 % interval high, ms. */
  hi: number;
}

/** One group's summary. */
export interface GroupSummary {
  /** Group key fields. */
  label: string;
  /** Transport, when known. */
  transport: string | null;
  /** Expected size in bytes, when known. */
  size: number | null;
  /** URL fetched. */
  url: string;
  /** Fetches. */
  count: number;
  /** Successful fetches (the only ones in the percentiles). */
  ok: number;
  /** Failed fetches by outcome. */
  errors: Record<string, number>;
  /** Error rate (0–1). */
  errorRate: number;
  /** Response time (time to first byte). */
  response: Estimate[];
  /** Download time (time to last byte). */
  download: Estimate[];
  /** Web pages: whole page load time. */
  page?: Estimate[];
}

/** Inverse of the standard normal CDF at 0.975. */
const Z975 = 1.959964;

/** Percentiles of sorted values with 95 % intervals. */
export function estimate(
  sorted: Float64Array,
  ps: readonly number[] = PERCENTILES,
  seed = 1,
): Estimate[] {
  const n = sorted.length;
  if (n === 0) return ps.map((p) => ({ p, value: NaN, lo: NaN, hi: NaN }));
  if (n <= 20_000) {
    const B = 1000;
    const random = seededRandom(seed);
    const boots = ps.map(() => new Float64Array(B));
    const sample = new Float64Array(n);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n; i++) sample[i] = sorted[Math.floor(random() * n)]!;
      sample.sort();
      ps.forEach((p, k) => boots[k]![b] = percentileSorted(sample, p));
    }
    return ps.map((p, k) => {
      const bs = boots[k]!.sort();
      return {
        p,
        value: percentileSorted(sorted, p),
        lo: percentileSorted(bs, 2.5),
        hi: percentileSorted(bs, 97.5),
      };
    });
  }
  return ps.map((p) => {
    const q = p / 100;
    const half = Z975 * Math.sqrt(n * q * (1 - q));
    const lo = Math.max(0, Math.floor(n * q - half) - 1);
    const hi = Math.min(n - 1, Math.ceil(n * q + half));
    return { p, value: percentileSorted(sorted, p), lo: sorted[lo]!, hi: sorted[hi]! };
  });
}

/** The key that groups records. */
export function groupKey(r: MeasureRecord): string {
  return JSON.stringify([r.label, r.transport ?? null, r.size ?? null, r.url]);
}

/** Collects samples of records by group with bounded memory (numbers only). */
export class Summarizer {
  #groups = new Map<string, {
    label: string;
    transport: string | null;
    size: number | null;
    url: string;
    count: number;
    errors: Record<string, number>;
    response: number[];
    download: number[];
    page: number[];
  }>();
  #base: TimeBase;

  /** `base`: which time origin the summaries use (default OnionPerf's). */
  constructor(base: TimeBase = "onionperf") {
    this.#base = base;
  }

  /** Adds one record. */
  add(r: MeasureRecord): void {
    const key = groupKey(r);
    let g = this.#groups.get(key);
    if (!g) {
      g = {
        label: r.label,
        transport: r.transport ?? null,
        size: r.size ?? null,
        url: r.url,
        count: 0,
        errors: {},
        response: [],
        download: [],
        page: [],
      };
      this.#groups.set(key, g);
    }
    g.count++;
    if (r.outcome !== "ok") {
      g.errors[r.outcome] = (g.errors[r.outcome] ?? 0) + 1;
      return;
    }
    const off = this.#base === "tgen" ? (r.phases_ms.request ?? 0) : 0;
    const fb = r.phases_ms.first_byte, lb = r.phases_ms.last_byte;
    if (typeof fb === "number") g.response.push(fb - off);
    if (typeof lb === "number") g.download.push(lb - off);
    if (typeof r.page_ms === "number") g.page.push(r.page_ms - off);
  }

  /** The summaries, sorted by label, transport, size. */
  summaries(): GroupSummary[] {
    const out: GroupSummary[] = [];
    for (const g of this.#groups.values()) {
      const ok = g.count - Object.values(g.errors).reduce((a, b) => a + b, 0);
      const s: GroupSummary = {
        label: g.label,
        transport: g.transport,
        size: g.size,
        url: g.url,
        count: g.count,
        ok,
        errors: g.errors,
        errorRate: g.count ? (g.count - ok) / g.count : 0,
        response: estimate(Float64Array.from(g.response).sort()),
        download: estimate(Float64Array.from(g.download).sort()),
      };
      if (g.page.length) s.page = estimate(Float64Array.from(g.page).sort());
      out.push(s);
    }
    return out.sort((a, b) =>
      a.label.localeCompare(b.label) || String(a.transport).localeCompare(String(b.transport)) ||
      (a.size ?? 0) - (b.size ?? 0)
    );
  }

  /** Raw successful samples of a group (for plots and comparisons). */
  samples(key: string): { response: number[]; download: number[] } | undefined {
    const g = this.#groups.get(key);
    return g ? { response: g.response, download: g.download } : undefined;
  }
}
