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
  compareSampleSets,
  type Comparison,
  comparisonDoubts,
  describeChange,
  describeFactor,
  type SideCounts,
} from "../lib/stats/compare.ts";
import {
  addToSide,
  ArmCollector,
  newSide,
  sampleSize as size,
  type SideSamples as Side,
} from "../lib/stats/arms.ts";
import { exclusionWarning } from "../lib/stats/summary.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { type FilterFlags, filterFrom, withFilters } from "./stats.ts";
import { anyExperiment, withFileArm } from "../lib/stats/experiment_folder.ts";

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
  }, ${c.failed} failed otherwise${c.unfinished ? `, ${c.unfinished} unfinished at the end` : ""}`;
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
      .option(
        "--baseline <arm>",
        "with --by arm or an experiment folder: the arm the others are compared with",
      )
      .addHelpText(
        "after",
        "\nExamples:\n  pctcp compare --censor ./pctcp-demo        # an experiment folder: every arm against tor\n  pctcp compare before.jsonl after.jsonl\n  pctcp compare --by arm 'daily/*.jsonl' --baseline vanilla",
      ),
  ).action((files: string[], o: CompareFlags) =>
    run(async () => {
      const f = filterFrom(o);
      const keep = (r: MeasureRecord) => filterRecord(r, f);
      const censor = o.censor ?? false;
      // An experiment folder (or several of its arm files): every arm against the baseline,
      // unpaired — each arm ran on a network of its own, in turn, so time blocks do not pair.
      const experiment = o.by === undefined && !(files.length === 2 && !files.some((x) =>
        !x.endsWith(".jsonl")
      )) && await anyExperiment(files);
      if (o.baseline && o.by !== "arm" && !experiment) {
        throw new UsageError("--baseline goes with --by arm or an experiment folder");
      }
      const out: Record<string, unknown> = {};
      const lines: string[] = [];
      const doubts: string[] = [];
      if (experiment) {
        const sides = new Map<string, Map<string, Side>>();
        const armsSeen: string[] = [];
        const res = await readRecords(files, (rec, file) => {
          const r = withFileArm(rec, file);
          if (!keep(r) || !r.arm) return;
          if (!armsSeen.includes(r.arm)) armsSeen.push(r.arm);
          let byArm = sides.get(r.label);
          if (!byArm) sides.set(r.label, byArm = new Map());
          let side = byArm.get(r.arm);
          if (!side) byArm.set(r.arm, side = newSide(r.arm));
          addToSide(side, r, { base: o.base, censor });
        });
        for (const b of res.bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
        const baseline = o.baseline ?? (armsSeen.includes("tor") ? "tor" : armsSeen[0]);
        if (!baseline || !armsSeen.includes(baseline)) {
          throw new UsageError(`--baseline ${o.baseline}: no such arm (${armsSeen.join(", ")})`);
        }
        for (const [label, byArm] of sides) {
          const sb = byArm.get(baseline);
          if (!sb) continue;
          for (const [arm, sa] of byArm) {
            if (arm === baseline) continue;
            let any = false;
            for (const metric of METRICS) {
              if (!size(sb[metric]) || !size(sa[metric])) continue;
              if (!any) {
                lines.push(
                  `${label}: ${arm} against ${baseline}`,
                  countsLine(sb.counts, censor),
                  countsLine(sa.counts, censor),
                );
                any = true;
              }
              const c = compareSampleSets(sb[metric], sa[metric]);
              out[`${label}_${metric}_${arm}_vs_${baseline}`] = c;
              report(lines, label, metric, c, baseline, arm);
            }
            if (!any) continue;
            doubts.push(
              ...comparisonDoubts(sb.counts, sa.counts).map((d) => `${label} ${arm}: ${d}`),
            );
          }
          for (const s of byArm.values()) {
            const w = exclusionWarning(s.counts, { censored: censor });
            if (w) doubts.push(`${label} [${s.counts.name}]: ${w}`);
          }
        }
      } else if (o.by === "arm") {
        const col = new ArmCollector({ base: o.base, censor });
        const res = await readRecords(files, (r) => {
          if (keep(r)) col.add(r);
        });
        for (const b of res.bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
        const arms = col.arms;
        if (arms.length < 2) {
          console.error(
            `pctcp: --by arm needs records of two arms (measure --arm); found ${
              arms.length ? arms.join(", ") : "none"
            }`,
          );
          return 1;
        }
        if (o.baseline && !arms.includes(o.baseline)) {
          throw new UsageError(`--baseline ${o.baseline}: no such arm (${arms.join(", ")})`);
        }
        const rep = col.compare(o.baseline);
        if (rep.withoutArm) {
          console.error(`pctcp: ${rep.withoutArm} records without an arm left out`);
        }
        lines.push(...rep.lines);
        doubts.push(...rep.doubts);
        for (const x of rep.results) {
          out[`${x.label}_${x.metric}_${x.arm}_vs_${x.baseline}`] = {
            ...x.comparison,
            counts: { [x.baseline]: x.counts.baseline, [x.arm]: x.counts.arm },
          };
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
            addToSide(side, r, { base: o.base, censor });
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
