/**
 * `pctcp import onionperf FILE --out records.jsonl`: OnionPerf analyses (e.g. Tor Metrics'
 * published ones, decompressed) as our records, to compare with `pctcp compare`.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { fromOnionPerf } from "../lib/report/onionperf.ts";
import { RecordWriter } from "../lib/measure/record.ts";

/** Builds the `import` command. */
export function importCommand(): Command {
  return new Command("import")
    .description("import OnionPerf analysis JSON (uncompressed) as records")
    .argument("<format>", "onionperf")
    .argument("<file>", "analysis JSON")
    .requiredOption("--out <file>", "JSONL records file to append to")
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
