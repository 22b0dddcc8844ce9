/**
 * The arms of `measure --arm` runs, compared: per label, every arm against a baseline, paired
 * by time block (run, worker, block), with counts of ok, timed-out and failed fetches beside
 * the percentile changes, and the doubts a comparison should print.
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";
import { type Sample, timeoutOf } from "./censor.ts";
import {
  type ArmBlock,
  type ArmComparison,
  compareArms,
  comparisonDoubts,
  describeChange,
  describeFactor,
  type SideCounts,
} from "./compare.ts";
import { exclusionWarning, isUnfinished, type TimeBase } from "./summary.ts";

/** The metrics compared. */
export type ArmMetric = "response" | "download";

/** One side (an arm, a file) of one label: counts and samples. */
export interface SideSamples {
  /** Counts of outcomes. */
  counts: SideCounts;
  /** Response-time samples. */
  response: Sample;
  /** Download-time samples. */
  download: Sample;
}

/** An empty side named `name`. */
export function newSide(name: string): SideSamples {
  return {
    counts: { name, count: 0, ok: 0, timeouts: 0, failed: 0, unfinished: 0 },
    response: { values: [], censoredAt: [] },
    download: { values: [], censoredAt: [] },
  };
}

/** Adds a record to a side: successes timed, timeouts counted (and censored with `censor`). */
export function addToSide(
  side: SideSamples,
  r: MeasureRecord,
  options: { base?: TimeBase; censor?: boolean } = {},
): void {
  side.counts.count++;
  const off = options.base === "tgen" ? (r.phases_ms.request ?? 0) : 0;
  const fb = r.phases_ms.first_byte, lb = r.phases_ms.last_byte;
  if (r.outcome === "ok") {
    side.counts.ok++;
    if (fb !== undefined) side.response.values.push(fb - off);
    if (lb !== undefined) side.download.values.push(lb - off);
    return;
  }
  if (isUnfinished(r.outcome)) {
    side.counts.unfinished = (side.counts.unfinished ?? 0) + 1;
    // A fetch cut short by the run's end that had its first byte keeps its response time.
    if (fb !== undefined) side.response.values.push(fb - off);
    return;
  }
  if (r.outcome !== "timeout") {
    side.counts.failed++;
    return;
  }
  side.counts.timeouts++;
  const t = options.censor ? timeoutOf(r) : undefined;
  if (t === undefined) return;
  if (fb !== undefined) side.response.values.push(fb - off);
  else side.response.censoredAt.push(t - off);
  side.download.censoredAt.push(t - off);
}

/** The size of a sample (observed and censored). */
export function sampleSize(s: Sample): number {
  return s.values.length + s.censoredAt.length;
}

/** One arm against the baseline for one label and metric. */
export interface ArmResult {
  label: string;
  metric: ArmMetric;
  baseline: string;
  arm: string;
  comparison: ArmComparison;
  counts: { baseline: SideCounts; arm: SideCounts };
}

/** What {@link ArmCollector.compare} finds. */
export interface ArmReport {
  /** Arms in the order first seen. */
  arms: string[];
  /** The baseline arm. */
  baseline: string | undefined;
  /** Per label, metric and arm. */
  results: ArmResult[];
  /** Text lines for people (counts, changes per percentile, factor, tests). */
  lines: string[];
  /** What to doubt. */
  doubts: string[];
  /** Records without an arm (left out). */
  withoutArm: number;
}

/** Collects records by label, arm and time block; compares the arms. */
export class ArmCollector {
  #sides = new Map<string, Map<string, SideSamples>>();
  #blocks = new Map<string, Map<string, Map<string, SideSamples>>>();
  #arms: string[] = [];
  #withoutArm = 0;
  #o: { base?: TimeBase; censor?: boolean };

  constructor(options: { base?: TimeBase; censor?: boolean } = {}) {
    this.#o = options;
  }

  /** Adds one record (records without an arm are counted and left out). */
  add(r: MeasureRecord): void {
    if (!r.arm) {
      this.#withoutArm++;
      return;
    }
    if (!this.#arms.includes(r.arm)) this.#arms.push(r.arm);
    let byArm = this.#sides.get(r.label);
    if (!byArm) this.#sides.set(r.label, byArm = new Map());
    let side = byArm.get(r.arm);
    if (!side) byArm.set(r.arm, side = newSide(r.arm));
    addToSide(side, r, this.#o);
    const bk = `${r.run}|${r.worker ?? 0}|${r.arm_block ?? r.id}`;
    let byBlock = this.#blocks.get(r.label);
    if (!byBlock) this.#blocks.set(r.label, byBlock = new Map());
    let inBlock = byBlock.get(bk);
    if (!inBlock) byBlock.set(bk, inBlock = new Map());
    let bs = inBlock.get(r.arm);
    if (!bs) inBlock.set(r.arm, bs = newSide(r.arm));
    addToSide(bs, r, this.#o);
  }

  /** Arms seen, in order. */
  get arms(): string[] {
    return [...this.#arms];
  }

  /** Compares every arm with `baseline` (default: the first arm seen). */
  compare(baseline = this.#arms[0]): ArmReport {
    const report: ArmReport = {
      arms: this.arms,
      baseline,
      results: [],
      lines: [],
      doubts: [],
      withoutArm: this.#withoutArm,
    };
    if (!baseline || this.#arms.length < 2) return report;
    const censor = this.#o.censor ?? false;
    const countsLine = (c: SideCounts) =>
      `  ${c.name}: ${c.count} fetches, ${c.ok} ok, ${c.timeouts} timed out${
        censor && c.timeouts ? " (censored)" : ""
      }, ${c.failed} failed otherwise${
        c.unfinished ? `, ${c.unfinished} unfinished at the end` : ""
      }`;
    for (const [label, byArm] of this.#sides) {
      const bSide = byArm.get(baseline);
      if (!bSide) continue;
      for (const arm of this.#arms) {
        const oSide = byArm.get(arm);
        if (arm === baseline || !oSide) continue;
        report.lines.push(`${label}: ${arm} against ${baseline}, paired by time block`);
        report.lines.push(countsLine(bSide.counts), countsLine(oSide.counts));
        for (const metric of ["response", "download"] as const) {
          if (!sampleSize(bSide[metric]) || !sampleSize(oSide[metric])) continue;
          const empty = { values: [], censoredAt: [] };
          const blocks: ArmBlock[] = [...this.#blocks.get(label)!.values()].map((inBlock) => ({
            base: inBlock.get(baseline)?.[metric] ?? empty,
            other: inBlock.get(arm)?.[metric] ?? empty,
          }));
          const c = compareArms(blocks);
          if (c.pairedBlocks === 0) continue;
          report.results.push({
            label,
            metric,
            baseline,
            arm,
            comparison: c,
            counts: { baseline: bSide.counts, arm: oSide.counts },
          });
          const name = `${label} ${metric} time`;
          report.lines.push(...c.changes.map((ch) => describeChange(name, ch)));
          report.lines.push(
            `  ${describeFactor(baseline, arm, c)}; Mann-Whitney U p = ${
              c.pValue.toPrecision(2)
            }; n = ${c.n.base} vs ${c.n.other}; ${c.pairedBlocks} paired blocks (${c.unpairedBlocks} unpaired left out), per-block ratio ${
              c.medianBlockRatio.toFixed(3)
            }, signed-rank p = ${c.pairedPValue.toPrecision(2)}`,
          );
          if (metric === "download") {
            report.doubts.push(
              ...comparisonDoubts(bSide.counts, oSide.counts, c.pairedBlocks).map((d) =>
                `${label} ${arm} vs ${baseline}: ${d}`
              ),
            );
          }
        }
        for (const s of [bSide, oSide]) {
          const w = exclusionWarning(s.counts, { censored: censor });
          const line = `${label} [${s.counts.name}]: ${w}`;
          if (w && !report.doubts.includes(line)) report.doubts.push(line);
        }
      }
    }
    return report;
  }
}
