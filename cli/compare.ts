/**
 * `pctcp compare BASE OTHER`: how OTHER differs from BASE per label, metric and percentile.
 * @module
 */

import { Command, Option } from "commander";
import { run } from "./_common.ts";
import { readRecords } from "../lib/stats/load.ts";
import { filterRecord } from "../lib/stats/filter.ts";
import { compareSamples, describeChange, describeFactor } from "../lib/stats/compare.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { type FilterFlags, filterFrom, withFilters } from "./stats.ts";

/** Samples per label of one side. */
async function load(file: string, keep: (r: MeasureRecord) => boolean, base: "onionperf" | "tgen") {
  const by = new Map<string, { response: number[]; download: number[] }>();
  const res = await readRecords([file], (r) => {
    if (!keep(r) || r.outcome !== "ok") return;
    const off = base === "tgen" ? (r.phases_ms.request ?? 0) : 0;
    let g = by.get(r.label);
    if (!g) by.set(r.label, g = { response: [], download: [] });
    if (r.phases_ms.first_byte !== undefined) g.response.push(r.phases_ms.first_byte - off);
    if (r.phases_ms.last_byte !== undefined) g.download.push(r.phases_ms.last_byte - off);
  });
  for (const b of res.bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
  return by;
}

/** Builds the `compare` command. */
export function compareCommand(): Command {
  return withFilters(
    new Command("compare")
      .description(
        "change of OTHER against BASE per metric and percentile, with 95 % intervals and a U test",
      )
      .argument("<base>", "records of the baseline (e.g. tor)")
      .argument("<other>", "records to compare (e.g. pctcp)")
      .addOption(
        new Option("--format <f>", "output format").choices(["text", "json"]).default("text"),
      )
      .addOption(
        new Option("--base <b>", "where times count from").choices(["onionperf", "tgen"]).default(
          "onionperf",
        ),
      ),
  ).action((
    baseFile: string,
    otherFile: string,
    o: { format: "text" | "json"; base: "onionperf" | "tgen" },
  ) =>
    run(async () => {
      const f = filterFrom(o as FilterFlags);
      const keep = (r: MeasureRecord) => filterRecord(r, f);
      const a = await load(baseFile, keep, o.base), b = await load(otherFile, keep, o.base);
      const out: Record<string, unknown> = {};
      const lines: string[] = [];
      for (const [label, sa] of a) {
        const sb = b.get(label);
        if (!sb) continue;
        for (const metric of ["response", "download"] as const) {
          if (!sa[metric].length || !sb[metric].length) continue;
          const c = compareSamples(sa[metric], sb[metric]);
          out[`${label}_${metric}`] = c;
          const name = `${label} ${metric} time`;
          lines.push(...c.changes.map((ch) => describeChange(name, ch)));
          lines.push(
            `  ${describeFactor(baseFile, otherFile, c)}; Mann-Whitney U p = ${
              c.pValue.toPrecision(2)
            }; n = ${c.n.base} vs ${c.n.other}`,
          );
        }
      }
      if (!lines.length) {
        console.error("pctcp: no label has successful fetches in both files");
        return 1;
      }
      if (o.format === "json") console.log(JSON.stringify(out, null, 2));
      else {console.log(
          lines.join("\n") +
            `\n(times from ${
              o.base === "tgen" ? "the request (tgen)" : "stream start (OnionPerf)"
            })`,
        );}
    })
  );
}
