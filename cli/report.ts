/**
 * `pctcp report DIR`: regenerates an experiment folder's summary and HTML report from its
 * raw records alone.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { summarizeFolder } from "../lib/experiment/interference.ts";
import { writeReport } from "../lib/experiment/report.ts";

/** Builds the `report` command. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "regenerate summary.json, summary.md, CDF plots and report.html of an experiment folder",
    )
    .argument("<dir>", "an output folder of `pctcp experiment interference`")
    .action((dir: string) =>
      run(async () => {
        for (const f of ["records-tor.jsonl", "records-pctcp.jsonl"]) {
          try {
            await Deno.stat(`${dir}/${f}`);
          } catch {
            throw new UsageError(`${dir} is not an experiment folder: ${f} is missing`);
          }
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
