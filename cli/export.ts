/**
 * `pctcp export`: records to CSV (error class always present) or OnionPerf analysis JSON.
 * @module
 */

import { Command, Option } from "commander";
import { stringify } from "csv-stringify";
import { run, UsageError } from "./_common.ts";
import { readRecords } from "../lib/stats/load.ts";
import { filterRecord } from "../lib/stats/filter.ts";
import { CSV_COLUMNS, recordRow, toOnionPerf } from "../lib/report/onionperf.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { type FilterFlags, filterFrom, withFilters } from "./stats.ts";

/** Builds the `export` command. */
export function exportCommand(): Command {
  return withFilters(
    new Command("export")
      .description(
        "export records as CSV or OnionPerf analysis JSON (v3.1) for Tor Metrics tooling",
      )
      .argument("<files...>", "JSONL records files")
      .addOption(
        new Option("--format <f>", "output format").choices(["csv", "onionperf"]).default("csv"),
      )
      .option("--nickname <name>", "OnionPerf host nickname", "pctcp")
      .option("--out <file>", "write here instead of stdout"),
  ).action((files: string[], o: { format: "csv" | "onionperf"; nickname: string; out?: string }) =>
    run(async () => {
      // OnionPerf 3.1's schema names a source `^[A-Za-z0-9-]+$`.
      if (o.format === "onionperf" && !/^[A-Za-z0-9-]+$/.test(o.nickname)) {
        throw new UsageError(
          `--nickname ${
            JSON.stringify(o.nickname)
          }: OnionPerf 3.1 allows only letters, digits and -`,
        );
      }
      const f = filterFrom(o as FilterFlags);
      const enc = new TextEncoder();
      const sink = o.out
        ? await Deno.open(o.out, { write: true, create: true, truncate: true })
        : Deno.stdout;
      const write = (t: string) => {
        const b = enc.encode(t);
        let off = 0;
        while (off < b.length) off += sink.writeSync(b.subarray(off));
      };
      const kept: MeasureRecord[] = [];
      if (o.format === "csv") write(stringify([[...CSV_COLUMNS]]));
      const res = await readRecords(files, (r) => {
        if (!filterRecord(r, f)) return;
        if (o.format === "csv") write(stringify([recordRow(r)]));
        else kept.push(r);
      });
      if (o.format === "onionperf") write(JSON.stringify(toOnionPerf(kept, o.nickname)) + "\n");
      for (const b of res.bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
      if (o.out) (sink as Deno.FsFile).close();
    })
  );
}
