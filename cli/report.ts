/**
 * `pctcp report DIR`: regenerates an experiment folder's summary and HTML report from its
 * raw records alone.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { summarizeFolder } from "../lib/experiment/interference.ts";
import { writeReport } from "../lib/experiment/report.ts";
import { writeFolderReport } from "../lib/report/folder.ts";

/** Builds the `report` command. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "regenerate summary.json, summary.md, CDF plots and report.html of an experiment folder",
    )
    .argument("<dir>", "an output folder of `pctcp experiment interference`")
    .action((dir: string) =>
      run(async () => {
        const isExperiment = await Deno.stat(`${dir}/records-tor.jsonl`).then(() =>
          true, () => false) &&
          await Deno.stat(`${dir}/records-pctcp.jsonl`).then(() => true, () => false);
        if (!isExperiment) {
          try {
            if (!(await Deno.stat(dir)).isDirectory) throw new Error();
          } catch {
            throw new UsageError(`${dir} is not a folder`);
          }
          console.log(await writeFolderReport(dir));
          return;
        }
        let meta = {};
        try {
          const old = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
          meta = { started: old.started, scenario: old.scenario };
        } catch { /* first time */ }
        await summarizeFolder(dir, meta);
        console.log(await writeReport(dir));
      })
    );
}
