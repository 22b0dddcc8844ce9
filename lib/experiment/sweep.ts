/**
 * Sweeps: the interference experiment once per value of one parameter — the bulk clients,
 * the bottleneck bandwidth, or (through the network emulator) loss and latency — and the
 * change of each arm against the base plotted against the value, with its interval.
 * @module
 */

import { type InterferenceOptions, runInterference } from "./run.ts";
import { METRICS } from "./arms.ts";
import { loadScenario, type Scenario, sizeOf } from "./scenario.ts";
import { writePlot } from "../report/plots.ts";
import { parseSize } from "../serve/sizes.ts";
import { type EmulationSpec, mergeSpecs, parseDuration, parseLoss } from "../emulate/mod.ts";

/** Parameters a sweep can vary. */
export const SWEEP_PARAMS = ["loss", "latency", "bulk-clients", "bandwidth"] as const;
/** A sweep parameter. */
export type SweepParam = typeof SWEEP_PARAMS[number];

/** Options of a sweep. */
export interface SweepOptions extends Omit<InterferenceOptions, "scenario" | "out"> {
  /** The parameter. */
  param: SweepParam;
  /** Its values as given (loss in %, latency in ms, a count, a rate such as 1MiB). */
  values: string[];
  /** Scenario name or file. */
  scenario?: string;
  /** Output folder: one sub-folder per value, sweep.json, sweep.md, plots. */
  out: string;
}

/** One value's experiment applied to a scenario and network options. */
export function applySweepValue(
  s: Scenario,
  param: SweepParam,
  value: string,
): { scenario: Scenario; emulation?: EmulationSpec; note: string } {
  const scenario: Scenario = structuredClone(s);
  switch (param) {
    case "bulk-clients": {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`bulk clients must be ≥ 0: ${value}`);
      scenario.bulk.clients = n;
      return { scenario, note: `${n} bulk clients` };
    }
    case "bandwidth": {
      // The slowest relay gets `value`; the others keep their ratio to it.
      const rate = parseSize(value);
      const bws = s.bandwidths.map(sizeOf);
      const min = Math.min(...bws);
      scenario.bandwidths = bws.map((b) => Math.round(b * rate / min));
      return { scenario, note: `bottleneck ${value}/s, others scaled alike` };
    }
    case "loss":
    case "latency":
      // The emulator's uniform one-way latency or loss (as network up --latency/--loss), over
      // the scenario's own emulation; parsed here so a bad value fails before any run.
      if (param === "latency") parseDuration(value);
      else parseLoss(value);
      return { scenario, emulation: { [param]: value }, note: `${param} ${value}` };
  }
}

/** Runs a sweep; returns its table in Markdown. */
export async function runSweep(o: SweepOptions): Promise<{ markdown: string; file: string }> {
  const s = await loadScenario(o.scenario ?? "quick");
  await Deno.mkdir(o.out, { recursive: true });
  const rows: {
    value: string;
    note: string;
    change: string;
    metric: string;
    p: string;
    pct: number;
    lo: number;
    hi: number;
  }[] = [];
  const results: Record<string, unknown>[] = [];
  for (const value of o.values) {
    if (o.signal?.aborted) break;
    const a = applySweepValue(s, o.param, value);
    o.progress?.(`[sweep ${o.param}=${value}] ${a.note}`);
    const dir = `${o.out}/${o.param}-${value.replace(/[^\w.%-]/g, "_")}`;
    const summary = await runInterference({
      ...o,
      scenario: a.scenario,
      out: dir,
      ...(a.emulation ? { netns: true, emulation: mergeSpecs(o.emulation, a.emulation) } : {}),
    });
    results.push({ value, note: a.note, folder: dir, changes: summary.changes });
    const changes = (summary.changes ?? {}) as Record<
      string,
      Record<string, Record<string, { pct: number; ci: [number, number] }> | null>
    >;
    for (const [change, m] of Object.entries(changes)) {
      for (const metric of Object.keys(METRICS)) {
        for (const p of ["p50", "p90"]) {
          const e = m[metric]?.[p];
          if (e) {
            rows.push({
              value,
              note: a.note,
              change,
              metric,
              p,
              pct: e.pct,
              lo: e.ci[0],
              hi: e.ci[1],
            });
          }
        }
      }
    }
  }
  const doc = {
    v: 1,
    param: o.param,
    values: o.values,
    arms: o.arms,
    base: o.base,
    runs: o.runs ?? 1,
    results,
    rows,
  };
  const file = `${o.out}/sweep.json`;
  await Deno.writeTextFile(file, JSON.stringify(doc, null, 2) + "\n");
  for (const metric of Object.keys(METRICS)) {
    const values = rows.filter((r) => r.metric === metric).map((r) => ({
      ...r,
      series: `${r.change} ${r.p}`,
    }));
    if (!values.length) continue;
    await writePlot(
      `${o.out}/sweep-${metric}`,
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: `${metric.replace("_", " ")}: change against ${o.param}`,
        width: 480,
        height: 260,
        data: { values },
        encoding: {
          x: { field: "value", type: "ordinal", sort: o.values, title: o.param },
          color: { field: "series", type: "nominal", title: null },
        },
        layer: [
          {
            mark: { type: "line", point: true },
            encoding: { y: { field: "pct", type: "quantitative", title: "change %" } },
          },
          {
            mark: "errorbar",
            encoding: {
              y: { field: "lo", type: "quantitative", title: "change %" },
              y2: { field: "hi" },
            },
          },
        ],
      } as Parameters<typeof writePlot>[1],
    );
  }
  const md = [
    `| ${o.param} | change | metric | pct | change % | 95 % CI |`,
    "| --- | --- | --- | --- | ---: | --- |",
    ...rows.map((r) =>
      `| ${r.value} | ${r.change} | ${r.metric} | ${r.p} | ${r.pct >= 0 ? "+" : ""}${
        r.pct.toFixed(1)
      } | ${r.lo.toFixed(1)} .. ${r.hi.toFixed(1)} |`
    ),
  ].join("\n") + "\n";
  await Deno.writeTextFile(`${o.out}/sweep.md`, md);
  return { markdown: md, file };
}
