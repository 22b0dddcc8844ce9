/**
 * `pctcp stats`: percentiles with confidence intervals from records files.
 * @module
 */

import { Command, Option } from "commander";
import { run, UsageError } from "./_common.ts";
import { readRecords } from "../lib/stats/load.ts";
import {
  DEFAULT_GROUPING,
  type GroupField,
  type GroupSummary,
  Summarizer,
  type TimeBase,
} from "../lib/stats/summary.ts";
import { asciiCdf, type Series } from "../lib/report/plots.ts";
import {
  compactRows,
  methodNote,
  renderRows,
  summaryRows,
  type TableFormat,
} from "../lib/report/tables.ts";
import { filterRecord, type RecordFilter } from "../lib/stats/filter.ts";
import { anyExperiment, withFileArm } from "../lib/stats/experiment_folder.ts";

interface StatsFlags extends FilterFlags {
  format?: TableFormat;
  base: TimeBase;
  censor?: boolean;
  by?: string;
}

const GROUP_FIELDS: readonly GroupField[] = ["transport", "size", "url", "arm"];

/** Parses `--by arm` / `--by transport,size` (the label always groups); a usage error. */
export function parseGrouping(by: string | undefined): readonly GroupField[] {
  if (by === undefined) return DEFAULT_GROUPING;
  const fields = by.split(",").map((x) => x.trim()).filter((x) => x && x !== "label");
  for (const f of fields) {
    if (!GROUP_FIELDS.includes(f as GroupField)) {
      throw new UsageError(
        `--by: unknown field ${JSON.stringify(f)} (label, ${GROUP_FIELDS.join(", ")})`,
      );
    }
  }
  return fields as GroupField[];
}

/** The lines that tell what the percentiles of each group leave out. */
export function warningLines(groups: GroupSummary[]): string[] {
  const name = (g: GroupSummary) =>
    [g.label, g.transport, g.arm ? `[${g.arm}]` : null].filter(Boolean).join("/");
  return groups.filter((g) => g.warning).map((g) => `warning: ${name(g)}: ${g.warning}`);
}

/** The filter flags of a command. */
export interface FilterFlags {
  relay?: string[];
  excludeRelay?: string[];
  since?: string;
  until?: string;
  outcome?: string[];
  arm?: string[];
  excludeCircuitFirst?: boolean;
}

/** Options shared by stats, compare and export: filters. */
export function filterFrom(o: FilterFlags): RecordFilter {
  const f: RecordFilter = {};
  if (o.relay) f.relays = o.relay;
  if (o.excludeRelay) f.excludeRelays = o.excludeRelay;
  if (o.since) {
    if (Number.isNaN(Date.parse(o.since))) {
      throw new UsageError(`--since is not a date: ${o.since}`);
    }
    f.since = new Date(o.since);
  }
  if (o.until) {
    if (Number.isNaN(Date.parse(o.until))) {
      throw new UsageError(`--until is not a date: ${o.until}`);
    }
    f.until = new Date(o.until);
  }
  if (o.outcome) f.outcomes = o.outcome;
  if (o.arm) f.arms = o.arm;
  if (o.excludeCircuitFirst) f.excludeCircuitFirst = true;
  return f;
}

/** Adds the filter options to a command. */
export function withFilters(c: Command): Command {
  return c
    .option(
      "--relay <name...>",
      "only fetches whose circuit used these relays (nickname or fingerprint)",
    )
    .option("--exclude-relay <name...>", "drop fetches whose circuit used these relays")
    .option("--since <iso>", "only fetches started at or after this time")
    .option("--until <iso>", "only fetches started before this time")
    .option("--outcome <class...>", "only these outcomes (ok, timeout, socks, …)")
    .option("--arm <name...>", "only these arms (measure --arm)")
    .option(
      "--exclude-circuit-first",
      "leave out each arm circuit's first fetch (its time includes building the circuit)",
    );
}

/** Builds the `stats` command. */
export function statsCommand(): Command {
  return withFilters(
    new Command("stats")
      .description(
        "per group (label, transport, size, URL): count, error rate, percentiles with 95 % intervals",
      )
      .argument("<files...>", "JSONL records files")
      .addOption(
        new Option("--format <f>", "output format (default: a table on a TTY, else csv)").choices([
          "table",
          "csv",
          "json",
          "markdown",
        ]),
      )
      .addOption(
        new Option("--base <b>", "where times count from").choices(["onionperf", "tgen"]).default(
          "onionperf",
        ),
      )
      .option(
        "--censor",
        "count timeouts as censored at their timeout (percentiles that reach them read ≥) instead of leaving them out",
      )
      .option(
        "--by <fields>",
        "group by the label and these fields: transport,size,url,arm (default all; an experiment folder: arm)",
      )
      .addHelpText(
        "after",
        "\nExamples:\n  pctcp stats --censor ./pctcp-demo          # an experiment folder: one row per arm and workload\n  pctcp stats records.jsonl --by transport,size --format csv",
      ),
  ).action((files: string[], o: StatsFlags) =>
    run(async () => {
      const filter = filterFrom(o);
      // An experiment folder's records name their arm only by file: group by it, not by URL.
      const experiment = await anyExperiment(files);
      const by = o.by === undefined && experiment
        ? (["transport", "arm"] as const)
        : parseGrouping(o.by);
      const s = new Summarizer(o.base, { censor: o.censor ?? false, by });
      let kept = 0;
      const { records, bad, badCount } = await readRecords(files, (rec, file) => {
        const r = experiment ? withFileArm(rec, file) : rec;
        if (filterRecord(r, filter)) {
          s.add(r);
          kept++;
        }
      });
      if (experiment && o.by === undefined) {
        console.error("pctcp: an experiment folder: grouped by workload and arm (--by to change)");
      }
      for (const b of bad) console.error(`pctcp: ${b.file}:${b.line}: skipped: ${b.reason}`);
      if (badCount > bad.length) {
        console.error(`pctcp: … and ${badCount - bad.length} more malformed lines`);
      }
      if (badCount) console.error(`pctcp: ${badCount} malformed lines skipped`);
      const groups = s.summaries();
      const format = o.format ?? (Deno.stdout.isTerminal() ? "table" : "csv");
      if (format === "table") {
        console.log(renderRows(compactRows(groups), "table"));
        console.log(`${kept} of ${records} records; ${methodNote(o.base, o.censor)}`);
        for (const w of warningLines(groups)) console.log(w);
        const byLabel = new Map<string, Series[]>();
        for (const g of groups) {
          const samples = s.samples(g.key);
          if (!samples?.download.length) continue;
          const list = byLabel.get(g.label) ?? [];
          list.push({ name: `${g.arm ?? g.transport ?? g.url}`, values: samples.download });
          byLabel.set(g.label, list);
        }
        for (const [label, series] of byLabel) {
          console.log("\n" + asciiCdf(`${label}: download time CDF`, series));
        }
        for (const g of groups) {
          if (g.ok < 30) {
            console.log(
              `note: ${g.label}/${g.transport ?? "-"}${
                g.arm ? ` [${g.arm}]` : ""
              } has only ${g.ok} successful fetches: wide intervals, doubt the tails`,
            );
          }
        }
      } else {
        Deno.stdout.writeSync(new TextEncoder().encode(renderRows(summaryRows(groups), format)));
        // Machine formats keep stdout clean; what the percentiles leave out goes to stderr.
        for (const w of warningLines(groups)) console.error(`pctcp: ${w}`);
      }
      return records === 0 ? 1 : 0;
    })
  );
}
