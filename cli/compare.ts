/**
 * `pctcp compare BASE OTHER`: how OTHER differs from BASE per label, metric and percentile;
 * `pctcp compare --by arm FILES…`: the arms of one run (`measure --arm`), paired by time
 * block. Both say what the percentiles leave out and when the comparison is doubtful.
 * @module
 */

import { Command, Option } from "commander";
import { run, UsageError } from "./_common.ts";
import { readRecords } from "../lib/stats/load.ts";
import { filterRecord } from "../lib/stats/filter.ts";
import {
  type ArmBlock,
  compareArms,
  compareSampleSets,
  type Comparison,
  comparisonDoubts,
  describeChange,
  describeFactor,
  type SideCounts,
} from "../lib/stats/compare.ts";
import { type Sample, timeoutOf } from "../lib/stats/censor.ts";
import { exclusionWarning } from "../lib/stats/summary.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { type FilterFlags, filterFrom, withFilters } from "./stats.ts";

type TimeBase = "onionperf" | "tgen";
type Metric = "response" | "download";
const METRICS: Metric[] = ["response", "download"];

interface CompareFlags extends FilterFlags {
  format: "text" | "json";
  base: TimeBase;
  censor?: boolean;
  by?: string;
  baseline?: string;
}

/** One side's samples and counts of one label. */
interface Side {
  counts: SideCounts;
  response: Sample;
  download: Sample;
}

function newSide(name: string): Side {
  return {
    counts: { name, count: 0, ok: 0, timeouts: 0, failed: 0 },
    response: { values: [], censoredAt: [] },
    download: { values: [], censoredAt: [] },
  };
}

/** Adds a record to a side: successes timed, timeouts counted (and censored with `censor`). */
function addTo(side: Side, r: MeasureRecord, base: TimeBase, censor: boolean): void {
  side.counts.count++;
  const off = base === "tgen" ? (r.phases_ms.request ?? 0) : 0;
  const fb = r.phases_ms.first_byte, lb = r.phases_ms.last_byte;
  if (r.outcome === "ok") {
    side.counts.ok++;
    if (fb !== undefined) side.response.values.push(fb - off);
    if (lb !== undefined) side.download.values.push(lb - off);
    return;
  }
  if (r.outcome !== "timeout") {
    side.counts.failed++;
    return;
  }
  side.counts.timeouts++;
  const t = censor ? timeoutOf(r) : undefined;
  if (t === undefined) return;
  if (fb !== undefined) side.response.values.push(fb - off);
  else side.response.censoredAt.push(t - off);
  side.download.censoredAt.push(t - off);
}

const size = (s: Sample) => s.values.length + s.censoredAt.length;

function report(
  lines: string[],
  label: string,
  metric: Metric,
  c: Comparison,
  baseName: string,
  otherName: string,
  extra = "",
): void {
  const name = `${label} ${metric} time`;
  lines.push(...c.changes.map((ch) => describeChange(name, ch)));
  lines.push(
    `  ${describeFactor(baseName, otherName, c)}; Mann-Whitney U p = ${
      c.pValue.toPrecision(2)
    }; n = ${c.n.base} vs ${c.n.other}${extra}`,
  );
}

function countsLine(c: SideCounts, censored: boolean): string {
  return `  ${c.name}: ${c.count} fetches, ${c.ok} ok, ${c.timeouts} timed out${
    censored && c.timeouts ? " (censored)" : ""
  }, ${c.failed} failed otherwise`;
}

/** Builds the `compare` command. */
export function compareCommand(): Command {
  return withFilters(
    new Command("compare")
      .description(
        "change of OTHER against BASE per metric and percentile, with 95 % intervals and a U test; --by arm: the arms of one run, paired by time block",
      )
      .argument(
        "<files...>",
        "BASE OTHER (records files), or with --by arm: records files or globs",
      )
      .addOption(
        new Option("--format <f>", "output format").choices(["text", "json"]).default("text"),
      )
      .addOption(
        new Option("--base <b>", "where times count from").choices(["onionperf", "tgen"]).default(
          "onionperf",
        ),
      )
      .option("--censor", "count timeouts as censored at their timeout instead of leaving them out")
      .addOption(
        new Option("--by <field>", "compare the arms of one run (measure --arm)").choices(["arm"]),
      )
      .option("--baseline <arm>", "with --by arm: the arm the others are compared with"),
  ).action((files: string[], o: CompareFlags) =>
    run(async () => {
      const f = filterFrom(o);
      const keep = (r: MeasureRecord) => filterRecord(r, f);
      const censor = o.censor ?? false;
      if (o.baseline && o.by !== "arm") throw new UsageError("--baseline goes with --by arm");
      const out: Record<string, unknown> = {};
      const lines: string[] = [];
      const doubts: string[] = [];
      if (o.by === "arm") {
        // label → arm → side; label → block → arm → samples
        const sides = new Map<string, Map<string, Side>>();
        const blocks = new Map<string, Map<string, Map<string, Side>>>();
        const armOrder: string[] = [];
        let noArm = 0;
        const res = await readRecords(files, (r) => {
          if (!keep(r)) return;
          if (!r.arm) {
            noArm++;
            return;
          }
          if (!armOrder.includes(r.arm)) armOrder.push(r.arm);
          let byArm = sides.get(r.label);
          if (!byArm) sides.set(r.label, byArm = new Map());
          let side = byArm.get(r.arm);
          if (!side) byArm.set(r.arm, side = newSide(r.arm));
          addTo(side, r, o.base, censor);
          const bk = `${r.run}|${r.worker ?? 0}|${r.arm_block ?? r.id}`;
          let byBlock = blocks.get(r.label);
          if (!byBlock) blocks.set(r.label, byBlock = new Map());
          let inBlock = byBlock.get(bk);
          if (!inBlock) byBlock.set(bk, inBlock = new Map());
          let bs = inBlock.get(r.arm);
          if (!bs) inBlock.set(r.arm, bs = newSide(r.arm));
          addTo(bs, r, o.base, censor);
        });
        for (const b of res.bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
        if (noArm) console.error(`pctcp: ${noArm} records without an arm left out`);
        const baseline = o.baseline ?? armOrder[0];
        if (!baseline || armOrder.length < 2) {
          console.error(
            `pctcp: --by arm needs records of two arms (measure --arm); found ${
              armOrder.length ? armOrder.join(", ") : "none"
            }`,
          );
          return 1;
        }
        if (!armOrder.includes(baseline)) {
          throw new UsageError(`--baseline ${baseline}: no such arm (${armOrder.join(", ")})`);
        }
        for (const [label, byArm] of sides) {
          const bSide = byArm.get(baseline);
          if (!bSide) continue;
          for (const arm of armOrder) {
            const oSide = byArm.get(arm);
            if (arm === baseline || !oSide) continue;
            lines.push(`${label}: ${arm} against ${baseline}, paired by time block`);
            lines.push(countsLine(bSide.counts, censor), countsLine(oSide.counts, censor));
            for (const metric of METRICS) {
              const armBlocks: ArmBlock[] = [];
              for (const inBlock of blocks.get(label)!.values()) {
                const empty = { values: [], censoredAt: [] };
                armBlocks.push({
                  base: inBlock.get(baseline)?.[metric] ?? empty,
                  other: inBlock.get(arm)?.[metric] ?? empty,
                });
              }
              if (!size(bSide[metric]) || !size(oSide[metric])) continue;
              const c = compareArms(armBlocks);
              if (c.pairedBlocks === 0) continue;
              out[`${label}_${metric}_${arm}_vs_${baseline}`] = {
                ...c,
                counts: { [baseline]: bSide.counts, [arm]: oSide.counts },
              };
              report(
                lines,
                label,
                metric,
                c,
                baseline,
                arm,
                `; ${c.pairedBlocks} paired blocks (${c.unpairedBlocks} unpaired left out), per-block ratio ${
                  c.medianBlockRatio.toFixed(3)
                }, signed-rank p = ${c.pairedPValue.toPrecision(2)}`,
              );
              if (metric === "download") {
                doubts.push(
                  ...comparisonDoubts(bSide.counts, oSide.counts, c.pairedBlocks).map((d) =>
                    `${label} ${arm} vs ${baseline}: ${d}`
                  ),
                );
              }
            }
            for (const s of [bSide, oSide]) {
              const w = exclusionWarning(s.counts, { censored: censor });
              if (w) doubts.push(`${label} [${s.counts.name}]: ${w}`);
            }
          }
        }
      } else {
        if (files.length !== 2) {
          throw new UsageError("compare takes two records files, BASE and OTHER (or --by arm)");
        }
        const [baseFile, otherFile] = files as [string, string];
        const load = async (file: string) => {
          const by = new Map<string, Side>();
          const res = await readRecords([file], (r) => {
            if (!keep(r)) return;
            let side = by.get(r.label);
            if (!side) by.set(r.label, side = newSide(file));
            addTo(side, r, o.base, censor);
          });
          for (const b of res.bad) {
            console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
          }
          return by;
        };
        const a = await load(baseFile), b = await load(otherFile);
        for (const [label, sa] of a) {
          const sb = b.get(label);
          if (!sb) continue;
          let any = false;
          for (const metric of METRICS) {
            if (!size(sa[metric]) || !size(sb[metric])) continue;
            if (!any) {
              lines.push(`${label}:`, countsLine(sa.counts, censor), countsLine(sb.counts, censor));
              any = true;
            }
            const c = compareSampleSets(sa[metric], sb[metric]);
            out[`${label}_${metric}`] = c;
            report(lines, label, metric, c, baseFile, otherFile);
          }
          if (!any) continue;
          doubts.push(...comparisonDoubts(sa.counts, sb.counts).map((d) => `${label}: ${d}`));
          for (const s of [sa, sb]) {
            const w = exclusionWarning(s.counts, { censored: censor });
            if (w) doubts.push(`${label} [${s.counts.name}]: ${w}`);
          }
        }
      }
      if (!lines.length) {
        console.error(
          o.by === "arm"
            ? "pctcp: no label has samples of both arms in the same time block"
            : "pctcp: no label has successful fetches in both files",
        );
        return 1;
      }
      if (o.format === "json") {
        console.log(JSON.stringify({ ...out, warnings: doubts }, null, 2));
        for (const d of doubts) console.error(`pctcp: warning: ${d}`);
      } else {
        console.log(
          lines.join("\n") +
            `\n(times from ${
              o.base === "tgen" ? "the request (tgen)" : "stream start (OnionPerf)"
            }; ${
              censor
                ? "timeouts censored at their timeout"
                : "percentiles of successful fetches; failures and timeouts counted above"
            })`,
        );
        for (const d of doubts) console.log(`warning: ${d}`);
      }
    })
  );
}
