/**
 * `pctcp report DIR`: regenerates an experiment folder's summary and HTML report from its
 * raw records alone, or reports any folder of records. `pctcp report FILES|GLOBS… --out DIR`:
 * one report over many records files (days of `measure --arm` runs from cron): one CDF per
 * arm, a time series of every arm, the stats table and the paired arm comparison.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { summarizeFolder } from "../lib/experiment/run.ts";
import { writeReport } from "../lib/experiment/report.ts";
import { writeFolderReport, writeRecordsReport } from "../lib/report/folder.ts";

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
    .option("--out <dir>", "folder for report.html and the plots (needed for files and globs)")
    .option("--censor", "count timeouts as censored at their timeout (≥) in tables and comparisons")
    .option("--baseline <arm>", "the arm others are compared with (default: the first seen)")
    .option("--title <text>", "heading of the report")
    .action((paths: string[], o: ReportFlags) =>
      run(async () => {
        const dir = paths.length === 1 ? paths[0]! : undefined;
        const options = {
          ...(o.censor ? { censor: true } : {}),
          ...(o.baseline ? { baseline: o.baseline } : {}),
          ...(o.title ? { title: o.title } : {}),
        };
        if (dir && !o.out && await isDir(dir)) {
          const isExperiment = await Deno.stat(`${dir}/records-tor.jsonl`).then(() =>
            true, () => false) &&
            await Deno.stat(`${dir}/records-pctcp.jsonl`).then(() => true, () => false);
          if (!isExperiment) {
            if (Object.keys(options).length) {
              console.log(await writeRecordsReport([dir], dir, options));
            } else console.log(await writeFolderReport(dir));
            return;
          }
          let meta = {};
          try {
            const old = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
            meta = { started: old.started, scenario: old.scenario };
          } catch { /* first time */ }
          await summarizeFolder(dir, meta);
          console.log(await writeReport(dir));
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
