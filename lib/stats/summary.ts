/**
 * Summaries of records: per group, counts, error rate and percentiles of response time
 * (`first_byte`) and download time (`last_byte`), each with a 95 % confidence interval.
 *
 * Times count from the start of the stream, SOCKS included (OnionPerf's convention); the
 * `tgen` view counts from the request instead. Intervals: a percentile bootstrap with 1000
 * resamples (seeded) for up to 20 000 samples, else the distribution-free order-statistic
 * interval (the binomial ranks around n·p), which needs no resampling.
 *
 * Percentiles are of successful fetches; failures and timeouts are counted beside them, and a
 * group warns when more than a few percent are left out. With `censor`, timeouts stay in the
 * sample as "at least the timeout" (lib/stats/censor.ts) and percentiles that reach them read
 * "≥".
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";
import { type BoundedEstimate, estimateSample, type Sample, timeoutOf } from "./censor.ts";

/** The percentiles every summary reports. */
export const PERCENTILES = [10, 25, 50, 75, 90, 99] as const;

/** Where times count from. */
export type TimeBase = "onionperf" | "tgen";

/** A percentile with its 95 % interval (and, when timeouts are censored, which are bounds). */
export type Estimate = BoundedEstimate;

/** Above this fraction of fetches left out of the percentiles, a summary warns (5 %). */
export const EXCLUSION_WARN_FRACTION = 0.05;

/** Fields records can be grouped by (the label always groups). */
export type GroupField = "transport" | "size" | "url" | "arm";

/** The default grouping: label, transport, size, URL, and arm when records have one. */
export const DEFAULT_GROUPING: readonly GroupField[] = ["transport", "size", "url", "arm"];

/** One group's summary. */
export interface GroupSummary {
  /** The group's key (see {@link Summarizer.samples}). */
  key: string;
  /** Group key fields (null where the grouping does not use them). */
  label: string;
  /** Transport, when known. */
  transport: string | null;
  /** Expected size in bytes, when known. */
  size: number | null;
  /** URL fetched. */
  url: string;
  /** The arm (`measure --arm`), or null. */
  arm: string | null;
  /** Fetches. */
  count: number;
  /** Successful fetches. */
  ok: number;
  /** Fetches that timed out. */
  timeouts: number;
  /** Fetches that failed otherwise (refused, reset, short read, …). */
  failed: number;
  /** Fetches still running when the run ended (outcome `interrupted` or `unfinished`):
   * counted, not failures, not in the percentiles. */
  unfinished: number;
  /** Failed fetches by outcome (timeouts included). */
  errors: Record<string, number>;
  /** Error rate (0–1). */
  errorRate: number;
  /** True if timeouts are in the percentiles, censored at their timeout. */
  censored: boolean;
  /** Fetches not in the download percentiles (failures, and timeouts unless censored). */
  excluded: number;
  /** What to doubt about the percentiles, when more than a few percent are left out. */
  warning?: string;
  /** Response time (time to first byte). */
  response: Estimate[];
  /** Download time (time to last byte). */
  download: Estimate[];
  /** Web pages: whole page load time. */
  page?: Estimate[];
}

/** Percentiles of sorted values with 95 % intervals. */
export function estimate(
  sorted: Float64Array,
  ps: readonly number[] = PERCENTILES,
  seed = 1,
): Estimate[] {
  return estimateSample({ values: Array.from(sorted), censoredAt: [] }, ps, seed);
}

/**
 * The key that groups records: the label and the given fields. Size groups by URL: a failed
 * fetch has no size (no Content-Length arrived), and keying on it would put every failure in
 * a group of its own, out of sight of the percentiles it belongs beside.
 */
export function groupKey(
  r: MeasureRecord,
  by: readonly GroupField[] = DEFAULT_GROUPING,
): string {
  return JSON.stringify([
    r.label,
    by.includes("transport") ? r.transport ?? null : null,
    by.includes("url") || by.includes("size") ? r.url : null,
    by.includes("arm") ? r.arm ?? null : null,
  ]);
}

/** Counts of outcomes: the numbers every percentile table shows beside its percentiles. */
export interface OutcomeCounts {
  /** Fetches. */
  count: number;
  /** Successful. */
  ok: number;
  /** Timed out. */
  timeouts: number;
  /** Failed otherwise. */
  failed: number;
}

/**
 * The warning a group's percentiles need, or undefined when at most `threshold` of its
 * fetches are left out: "percentiles of successes only: 86 of 118 fetches timed out — biased
 * low" (timeouts dropped), or which failures are not in them.
 */
export function exclusionWarning(
  c: OutcomeCounts,
  options: { censored?: boolean; threshold?: number } = {},
): string | undefined {
  const threshold = options.threshold ?? EXCLUSION_WARN_FRACTION;
  const excluded = c.failed + (options.censored ? 0 : c.timeouts);
  if (!c.count || excluded / c.count <= threshold) return undefined;
  const parts: string[] = [];
  if (!options.censored && c.timeouts) {
    parts.push(
      `percentiles of successes only: ${c.timeouts} of ${c.count} fetches timed out — biased low` +
        (c.failed ? `, and ${c.failed} more failed otherwise` : "") +
        " (--censor counts timeouts as at least their timeout)",
    );
  } else {
    parts.push(
      `${c.failed} of ${c.count} fetches failed (not timeouts) and are not in the percentiles` +
        (options.censored && c.timeouts ? `; ${c.timeouts} timeouts are censored (≥)` : ""),
    );
  }
  return parts.join("; ");
}

/** Outcomes of fetches the run's end (or Ctrl-C) cut short: not a failure of the network. */
export const UNFINISHED_OUTCOMES: readonly string[] = ["interrupted", "unfinished"];

/** True if an outcome says the fetch was still running when the run ended. */
export function isUnfinished(outcome: string): boolean {
  return UNFINISHED_OUTCOMES.includes(outcome);
}

/** A group while records stream in: the summary's identity and counts, and its samples. */
interface Group extends
  Pick<
    GroupSummary,
    | "key"
    | "label"
    | "transport"
    | "size"
    | "url"
    | "arm"
    | "count"
    | "timeouts"
    | "unfinished"
    | "errors"
  > {
  response: Sample;
  download: Sample;
  page: Sample;
  uncensorable: number;
}

/** Options of a {@link Summarizer}. */
export interface SummarizerOptions {
  /** Count timeouts as censored at their timeout instead of leaving them out. */
  censor?: boolean;
  /** Group by the label and these fields (default {@link DEFAULT_GROUPING}). */
  by?: readonly GroupField[];
  /** Warn above this fraction left out (default {@link EXCLUSION_WARN_FRACTION}). */
  warnFraction?: number;
}

/**
 * Collects samples of records by group with bounded memory (numbers only); gives per group
 * the counts of ok, timed-out and failed fetches beside percentiles with intervals, and a
 * warning when the percentiles leave out more than a few percent. With `censor`, timeouts
 * stay in as "at least the timeout" (a fetch that got its first byte keeps its response time).
 *
 * @example Timeouts are counted, and censored when asked
 * ```ts
 * import { Summarizer } from "./summary.ts";
 * const s = new Summarizer("onionperf", { censor: true });
 * const base = { v: 1, run: "r", label: "web", transport: null, url: "u", size: 1, start: "",
 *   progress_ms: {}, marks_ms: {}, bytes: 1, status: 200, sha256: null, sha256_ok: null,
 *   circuit: null, source_port: null, error: null };
 * s.add({ ...base, id: 1, phases_ms: { first_byte: 5, last_byte: 10 }, outcome: "ok" });
 * s.add({ ...base, id: 2, phases_ms: {}, outcome: "timeout", timeout_ms: 2400, error: "no answer within 2400 ms" });
 * const [g] = s.summaries();
 * if (g!.timeouts !== 1 || !g!.download.find((e) => e.p === 90)!.censored!.value) throw new Error();
 * ```
 */
export class Summarizer {
  #groups = new Map<string, Group>();
  #base: TimeBase;
  #censor: boolean;
  #by: readonly GroupField[];
  #warn: number;

  /** A summarizer timing from `base` (OnionPerf's stream start, or tgen's request). */
  constructor(base: TimeBase = "onionperf", options: SummarizerOptions = {}) {
    this.#base = base;
    this.#censor = options.censor ?? false;
    this.#by = options.by ?? DEFAULT_GROUPING;
    this.#warn = options.warnFraction ?? EXCLUSION_WARN_FRACTION;
  }

  /** Adds one record. */
  add(r: MeasureRecord): void {
    const key = groupKey(r, this.#by);
    let g = this.#groups.get(key);
    if (!g) {
      const by = this.#by;
      g = {
        key,
        label: r.label,
        transport: by.includes("transport") ? r.transport ?? null : null,
        size: by.includes("size") ? r.size ?? null : null,
        url: by.includes("url") ? r.url : "",
        arm: by.includes("arm") ? r.arm ?? null : null,
        count: 0,
        timeouts: 0,
        unfinished: 0,
        errors: {},
        response: { values: [], censoredAt: [] },
        download: { values: [], censoredAt: [] },
        page: { values: [], censoredAt: [] },
        uncensorable: 0,
      };
      this.#groups.set(key, g);
    }
    g.count++;
    if (g.size === null && this.#by.includes("size") && r.size !== null) g.size = r.size;
    const off = this.#base === "tgen" ? (r.phases_ms.request ?? 0) : 0;
    const fb = r.phases_ms.first_byte, lb = r.phases_ms.last_byte;
    if (r.outcome !== "ok") {
      g.errors[r.outcome] = (g.errors[r.outcome] ?? 0) + 1;
      if (isUnfinished(r.outcome)) {
        // Cut short by the run's end: a fetch that had its first byte keeps its response time.
        g.unfinished++;
        if (typeof fb === "number") g.response.values.push(fb - off);
        return;
      }
      if (r.outcome !== "timeout") return;
      g.timeouts++;
      if (!this.#censor) return;
      const t = timeoutOf(r);
      if (t === undefined) {
        g.uncensorable++;
        return;
      }
      if (typeof fb === "number") g.response.values.push(fb - off);
      else g.response.censoredAt.push(t - off);
      g.download.censoredAt.push(t - off);
      if (r.resources) g.page.censoredAt.push(t - off);
      return;
    }
    if (typeof fb === "number") g.response.values.push(fb - off);
    if (typeof lb === "number") g.download.values.push(lb - off);
    if (typeof r.page_ms === "number") g.page.values.push(r.page_ms - off);
  }

  /** The summaries, sorted by label, transport, size, arm. */
  summaries(ps: readonly number[] = PERCENTILES): GroupSummary[] {
    const out: GroupSummary[] = [];
    for (const g of this.#groups.values()) {
      const failedAll = Object.values(g.errors).reduce((a, b) => a + b, 0);
      const ok = g.count - failedAll;
      const failed = failedAll - g.timeouts - g.unfinished;
      const censored = this.#censor && g.timeouts > g.uncensorable;
      const counts = { count: g.count, ok, timeouts: g.timeouts, failed: failed + g.uncensorable };
      const warning = exclusionWarning(
        censored ? counts : { ...counts, failed },
        { censored, threshold: this.#warn },
      );
      const s: GroupSummary = {
        key: g.key,
        label: g.label,
        transport: g.transport,
        size: g.size,
        url: g.url,
        arm: g.arm,
        count: g.count,
        ok,
        timeouts: g.timeouts,
        failed,
        unfinished: g.unfinished,
        errors: g.errors,
        errorRate: g.count - g.unfinished
          ? (g.count - g.unfinished - ok) / (g.count - g.unfinished)
          : 0,
        censored,
        excluded: g.count - g.download.values.length - g.download.censoredAt.length,
        ...(warning ? { warning } : {}),
        response: estimateSample(g.response, ps),
        download: estimateSample(g.download, ps),
      };
      if (g.page.values.length || g.page.censoredAt.length) s.page = estimateSample(g.page, ps);
      out.push(s);
    }
    return out.sort((a, b) =>
      a.label.localeCompare(b.label) || String(a.transport).localeCompare(String(b.transport)) ||
      (a.size ?? 0) - (b.size ?? 0) || String(a.arm).localeCompare(String(b.arm))
    );
  }

  /** Raw successful samples of a group (for plots and comparisons). */
  samples(key: string): { response: number[]; download: number[] } | undefined {
    const g = this.#groups.get(key);
    return g ? { response: g.response.values, download: g.download.values } : undefined;
  }

  /** A group's samples with censored timeouts (empty `censoredAt` without `censor`). */
  censoredSamples(key: string): { response: Sample; download: Sample } | undefined {
    const g = this.#groups.get(key);
    return g ? { response: g.response, download: g.download } : undefined;
  }
}

/**
 * Summaries of records in one call, for callers that hold records (the experiment's summary):
 * per group the counts of ok, timed-out and failed fetches, percentiles (censored at the
 * timeout with `censor`) and the exclusion warning.
 */
export function summarizeRecords(
  records: Iterable<MeasureRecord>,
  options: SummarizerOptions & { base?: TimeBase } = {},
): GroupSummary[] {
  const s = new Summarizer(options.base ?? "onionperf", options);
  for (const r of records) s.add(r);
  return s.summaries();
}
