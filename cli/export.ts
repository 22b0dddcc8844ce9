/**
 * `pctcp export`: records to CSV (error class always present) or OnionPerf analysis JSON.
 * @module
 */

import { Command, Option } from "commander";
import { stringify } from "csv-stringify";
import { EXIT_PARTIAL, run, UsageError } from "./_common.ts";
import { expandRecordFiles } from "../lib/stats/load.ts";
import { readRecords } from "../lib/measure/schema.ts";
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
      .option("--out <file>", "write here instead of stdout")
      .addHelpText(
        "after",
        `
Examples:
  pctcp export m.jsonl > m.csv
  pctcp export --format onionperf --nickname lab1 'data/*.jsonl' --out lab1.onionperf.json

Every line is checked against the records schema (docs/records.md); a bad line is named on
stderr (file:line: field: problem) and the export exits 3. OnionPerf streams are keyed by run
and fetch id: records whose keys collide (two runs with one id) get a distinct key, said on
stderr, never dropped.`,
      ),
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
      let bad = 0;
      for (const file of await expandRecordFiles(files)) {
        await readRecords(file, {
          onBad: (e) => {
            bad++;
            console.error(
              `pctcp: ${e.file}:${e.line}: skipped: ${
                e.message.slice(`${e.file}:${e.line}: `.length)
              }`,
            );
          },
          onRecord: (r) => {
            if (!filterRecord(r, f)) return;
            if (o.format === "csv") write(stringify([recordRow(r)]));
            else kept.push(r);
          },
        });
      }
      if (o.format === "onionperf") {
        const renamed = distinctStreamKeys(kept);
        if (renamed) {
          console.error(
            `pctcp: ${renamed} record(s) shared a run and fetch id with another; their run got a suffix (~2, ~3, …) so every stream is kept`,
          );
        }
        write(JSON.stringify(toOnionPerf(kept, o.nickname)) + "\n");
      }
      if (o.out) (sink as Deno.FsFile).close();
      if (bad) {
        console.error(`pctcp: ${bad} line(s) were not valid records and were skipped`);
        return EXIT_PARTIAL;
      }
    })
  );
}

/**
 * Makes every record's OnionPerf stream key (`run:id`) distinct: a record whose key was seen
 * before gets its run renamed `RUN~2`, `RUN~3`, … (in place). Returns how many were renamed.
 */
export function distinctStreamKeys(records: MeasureRecord[]): number {
  const seen = new Set<string>();
  let renamed = 0;
  for (const r of records) {
    let key = `${r.run}:${r.id}`;
    if (seen.has(key)) {
      const base = r.run;
      for (let k = 2; seen.has(key); k++) {
        r.run = `${base}~${k}`;
        key = `${r.run}:${r.id}`;
      }
      renamed++;
    }
    seen.add(key);
  }
  return renamed;
}
