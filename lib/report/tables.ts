/**
 * Exporters: summaries to rows, then rows to a text table, CSV, Markdown or JSON. They return
 * strings; the caller decides file or stdout.
 * @module
 */

import { stringify } from "csv-stringify";
import type { GroupSummary } from "../stats/summary.ts";
import { PERCENTILE_METHOD } from "../stats/percentile.ts";
import { formatSize } from "../serve/sizes.ts";
import { formatBound } from "../stats/censor.ts";

/** Output formats of `stats`. */
export type TableFormat = "table" | "csv" | "json" | "markdown";

/** Rows of a summary table: one per group and metric. */
export function summaryRows(groups: GroupSummary[]): (string | number)[][] {
  const header = [
    "label",
    "transport",
    "size",
    "metric",
    "count",
    "ok",
    "error_rate",
    ...["p10", "p25", "p50", "p75", "p90", "p99"].flatMap((p) => [`${p}_ms`, `${p}_lo`, `${p}_hi`]),
    "errors",
    "arm",
    "timeouts",
    "failed",
    "excluded",
    "lower_bounds",
  ];
  const rows: (string | number)[][] = [header];
  for (const g of groups) {
    const metrics: [string, typeof g.response][] = [["response", g.response], [
      "download",
      g.download,
    ]];
    if (g.page) metrics.push(["page", g.page]);
    for (const [name, est] of metrics) {
      rows.push([
        g.label,
        g.transport ?? "",
        g.size === null ? "" : formatSize(g.size),
        name,
        g.count,
        g.ok,
        Number(g.errorRate.toFixed(4)),
        ...est.flatMap((e) => [round(e.value), round(e.lo), round(e.hi)]),
        Object.entries(g.errors).map(([k, v]) => `${k}:${v}`).join(" "),
        g.arm ?? "",
        g.timeouts,
        g.failed,
        g.excluded,
        est.filter((e) => e.censored?.value).map((e) => `p${e.p}`).join(" "),
      ]);
    }
  }
  return rows;
}

function round(x: number): number | string {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : "";
}

/** A note saying what the numbers are. */
export function methodNote(base: "onionperf" | "tgen", censored = false): string {
  return `times in ms ${
    base === "tgen" ? "from the request (tgen)" : "from stream start, SOCKS included (OnionPerf)"
  }; ` +
    `percentiles: ${PERCENTILE_METHOD}; intervals: 95 % (bootstrap, 1000 resamples; order statistics above 20 000 samples); ` +
    (censored
      ? "timeouts censored at their timeout (≥: a lower bound), other failures counted, not timed"
      : "failed and timed-out fetches are counted, not timed");
}

/** Renders rows in a format. */
export function renderRows(rows: (string | number)[][], format: TableFormat): string {
  switch (format) {
    case "csv":
      return stringify(rows);
    case "json": {
      const [h, ...body] = rows;
      return JSON.stringify(
        body.map((r) => Object.fromEntries(h!.map((k, i) => [k, r[i]]))),
        null,
        2,
      ) + "\n";
    }
    case "markdown": {
      const [h, ...body] = rows;
      const line = (r: (string | number)[]) => `| ${r.map(String).join(" | ")} |`;
      return [line(h!), `|${h!.map(() => " --- ").join("|")}|`, ...body.map(line)].join("\n") +
        "\n";
    }
    default: {
      const widths = rows[0]!.map((_, i) =>
        Math.max(...rows.map((r) => String(r[i] ?? "").length))
      );
      return rows.map((r) => r.map((c, i) => String(c).padStart(widths[i]!)).join("  ")).join(
        "\n",
      ) + "\n";
    }
  }
}

/** A compact terminal table of p50/p90 with intervals, for people. */
export function compactRows(groups: GroupSummary[]): (string | number)[][] {
  const rows: (string | number)[][] = [[
    "group",
    "metric",
    "n ok/all",
    "timeout",
    "failed",
    "p50 ms [95% CI]",
    "p75 ms",
    "p90 ms [95% CI]",
    "errors",
  ]];
  const b = formatBound;
  for (const g of groups) {
    const name = `${g.label}${g.transport ? "/" + g.transport : ""}${
      g.size !== null ? " " + formatSize(g.size) : ""
    }${g.arm ? " [" + g.arm + "]" : ""}`;
    for (const [metric, est] of [["response", g.response], ["download", g.download]] as const) {
      const e50 = est.find((e) => e.p === 50)!,
        e75 = est.find((e) => e.p === 75)!,
        e90 = est.find((e) => e.p === 90)!;
      rows.push([
        name,
        metric,
        `${g.ok}/${g.count}`,
        g.timeouts,
        g.failed,
        `${b(e50.value, e50.censored?.value)} [${b(e50.lo, e50.censored?.lo)}, ${
          b(e50.hi, e50.censored?.hi)
        }]`,
        b(e75.value, e75.censored?.value),
        `${b(e90.value, e90.censored?.value)} [${b(e90.lo, e90.censored?.lo)}, ${
          b(e90.hi, e90.censored?.hi)
        }]`,
        Object.entries(g.errors).map(([k, v]) => `${k}:${v}`).join(" ") || "-",
      ]);
    }
  }
  return rows;
}
