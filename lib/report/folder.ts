/**
 * The report of any folder of records files: the stats table, CDFs of response and download
 * time per label (one line per transport or file), box plots of download time by size, a
 * time series, all in one self-contained HTML page (SVG inline, PNG beside it).
 * @module
 */

import { readRecords } from "../stats/load.ts";
import { Summarizer } from "../stats/summary.ts";
import { methodNote, renderRows, summaryRows } from "./tables.ts";
import {
  boxSpec,
  cdfSpec,
  type Series,
  type TimePoint,
  timeSeriesSpec,
  writePlot,
} from "./plots.ts";
import { formatSize } from "../serve/sizes.ts";

function esc(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
}

/** The records files of a folder (not run-settings files). */
export async function recordFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".jsonl") && !e.name.endsWith(".runs.jsonl")) {
      out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

/** Writes plots and report.html for the records in `dir`; returns the HTML path. */
export async function writeFolderReport(dir: string): Promise<string> {
  const files = await recordFiles(dir);
  if (!files.length) throw new Error(`no records (*.jsonl) in ${dir}`);
  const sum = new Summarizer();
  const cdf = new Map<string, Map<string, { response: number[]; download: number[] }>>();
  const box: { category: string; group: string; value: number }[] = [];
  const points: TimePoint[] = [];
  const res = await readRecords(files, (r, file) => {
    sum.add(r);
    const series = r.transport ?? file.split("/").pop()!.replace(/\.jsonl$/, "");
    const ok = r.outcome === "ok";
    const lb = r.phases_ms.last_byte, fb = r.phases_ms.first_byte;
    if (typeof lb === "number") {
      points.push({ time: r.start, value: lb, group: `${r.label}/${series}`, ok });
    }
    if (!ok) return;
    let byLabel = cdf.get(r.label);
    if (!byLabel) cdf.set(r.label, byLabel = new Map());
    let s = byLabel.get(series);
    if (!s) byLabel.set(series, s = { response: [], download: [] });
    if (typeof fb === "number") s.response.push(fb);
    if (typeof lb === "number") {
      s.download.push(lb);
      box.push({ category: r.size === null ? "?" : formatSize(r.size), group: series, value: lb });
    }
  });
  const svgs: string[] = [];
  for (const [label, m] of cdf) {
    for (const metric of ["response", "download"] as const) {
      const series: Series[] = [...m].map(([name, v]) => ({ name, values: v[metric] }));
      svgs.push(
        await writePlot(
          `${dir}/cdf-${label}-${metric}`,
          cdfSpec(`${label}: ${metric} time`, "ms from stream start", series),
        ),
      );
    }
  }
  if (box.length) {
    svgs.push(
      await writePlot(
        `${dir}/box-download-by-size`,
        boxSpec("download time by size", "ms (log scale)", box),
      ),
    );
  }
  if (points.length) {
    svgs.push(
      await writePlot(
        `${dir}/timeseries-download`,
        timeSeriesSpec("download time over the run", "ms", points),
      ),
    );
  }
  const table = renderRows(summaryRows(sum.summaries()), "markdown");
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>pctcp report: ${esc(dir)}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>
</head><body>
<h1>Measurements in ${esc(dir)}</h1>
<p>${esc(methodNote("onionperf"))}.</p>
<p>${res.records} records from ${files.length} file(s)${
    res.badCount ? `; ${res.badCount} malformed lines skipped` : ""
  }.</p>
<h2>Percentiles</h2><pre>${esc(table)}</pre>
<h2>Plots</h2>
${svgs.join("\n")}
</body></html>
`;
  await Deno.writeTextFile(`${dir}/report.html`, html);
  return `${dir}/report.html`;
}
