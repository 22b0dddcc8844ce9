/**
 * `pctcp import onionperf FILE --out records.jsonl`: OnionPerf analyses (e.g. Tor Metrics'
 * published ones, decompressed) as our records, to compare with `pctcp compare`.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { fromOnionPerf } from "../lib/report/onionperf.ts";
import { RecordWriter } from "../lib/measure/record.ts";
import { validateRecord } from "../lib/measure/schema.ts";

/** Builds the `import` command. */
export function importCommand(): Command {
  return new Command("import")
    .description("import OnionPerf analysis JSON (uncompressed) as records")
    .argument("<format>", "onionperf")
    .argument("<file>", "analysis JSON")
    .requiredOption("--out <file>", "JSONL records file to append to")
    .addHelpText(
      "after",
      `
Example:
  xz -d op-hk-2026-12-01.onionperf.analysis.json.xz
  pctcp import onionperf op-hk-2026-12-01.onionperf.analysis.json --out hk.jsonl
  pctcp stats hk.jsonl

Every imported stream is checked against the records schema (docs/records.md) before
anything is appended.`,
    )
    .action((format: string, file: string, o: { out: string }) =>
      run(async () => {
        if (format !== "onionperf") {
          throw new UsageError(`unknown import format: ${format} (onionperf)`);
        }
        let doc: unknown;
        try {
          doc = JSON.parse(await Deno.readTextFile(file));
        } catch (e) {
          throw new SyntaxError(
            `${file} is not JSON (decompress .xz files first): ${(e as Error).message}`,
          );
        }
        const recs = fromOnionPerf(doc);
        // What we append must read back: every record is checked against the schema first.
        recs.forEach((rec, i) => {
          const p = validateRecord(rec);
          if (p) {
            throw new SyntaxError(
              `${file}: stream ${
                i + 1
              } (${rec.url}) would make an invalid record: ${p.field}: ${p.message}`,
            );
          }
        });
        const w = await RecordWriter.open(o.out);
        try {
          for (const r of recs) await w.append(r);
        } finally {
          await w.close();
        }
        console.log(JSON.stringify({ imported: recs.length, out: o.out }));
      })
    );
}
