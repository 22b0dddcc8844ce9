/**
 * `pctcp report DIR [--out OUT]`: an experiment folder's summary.md, report.html and plots
 * from its summary.json (recomputed in memory when older) and raw records, or the report of
 * any folder of records; written to OUT (default DIR-report), never into DIR: a report only
 * reads its inputs. `pctcp report FILES|GLOBS… --out OUT`: one report over many records files
 * (days of `measure --arm` runs from cron): one CDF per arm, a time series of every arm, the
 * stats table and the paired arm comparison.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { writeExperimentReport } from "../lib/experiment/report.ts";
import { isExperimentFolder } from "../lib/stats/experiment_folder.ts";
import { writeRecordsReport } from "../lib/report/folder.ts";

interface ReportFlags {
  out?: string;
  censor?: boolean;
  baseline?: string;
  title?: string;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isDirectory;
  } catch {
    return false;
  }
}

/** Builds the `report` command. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "HTML report with CDF plots: of an experiment folder, a folder of records, or records files and globs (--out)",
    )
    .argument(
      "<paths...>",
      "an experiment or records folder; or records files and quoted globs ('daily/*.jsonl') with --out",
    )
    .option("--out <dir>", "folder for summary.md, report.html and the plots (default DIR-report)")
    .option("--censor", "count timeouts as censored at their timeout (≥) in tables and comparisons")
    .option("--baseline <arm>", "the arm others are compared with (default: the first seen)")
    .option("--title <text>", "heading of the report")
    .addHelpText(
      "after",
      "\nExamples:\n  pctcp report ./pctcp-demo --out ./pctcp-demo-report\n  pctcp report 'daily/*.jsonl' --out weekly --censor",
    )
    .action((paths: string[], o: ReportFlags) =>
      run(async () => {
        const dir = paths.length === 1 ? paths[0]!.replace(/\/$/, "") : undefined;
        const options = {
          ...(o.censor ? { censor: true } : {}),
          ...(o.baseline ? { baseline: o.baseline } : {}),
          ...(o.title ? { title: o.title } : {}),
        };
        if (dir && await isDir(dir)) {
          const out = o.out ?? `${dir}-report`;
          if (await isExperimentFolder(dir)) {
            if (Object.keys(options).length) {
              throw new UsageError(
                "--censor, --baseline and --title are for records reports: an experiment report censors timeouts and takes its base from the manifest (pctcp experiment analyze DIR --base ARM)",
              );
            }
            const r = await writeExperimentReport(dir, out);
            console.log(r.html);
            return;
          }
          console.log(
            await writeRecordsReport([dir], out, { title: `Measurements in ${dir}`, ...options }),
          );
          return;
        }
        if (!o.out) {
          throw new UsageError(
            `${paths.join(" ")}: not a folder; give --out DIR for a report over records files`,
          );
        }
        console.log(
          await writeRecordsReport(paths, o.out, {
            title: `Measurements: ${paths.join(" ")}`,
            ...options,
          }),
        );
      })
    );
}
