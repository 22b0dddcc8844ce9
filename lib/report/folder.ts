/**
 * The report of any records: a folder, or files and globs (days of `measure --arm` runs from
 * cron): the stats table with ok / timed-out / failed counts, CDFs of response and download
 * time per label (one line per arm, else per transport or file), box plots of download time by
 * size, a time series of every series (binned medians over long spans), and with arms the
 * paired comparison against the baseline arm — all in one self-contained HTML page (SVG
 * inline, PNG beside it).
 * @module
 */

import { expandRecordFiles, readRecords } from "../stats/load.ts";
import { Summarizer } from "../stats/summary.ts";
import { ArmCollector } from "../stats/arms.ts";
import { methodNote, renderRows, summaryRows } from "./tables.ts";
import {
  binnedTimeSeriesSpec,
  binTimeSeries,
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
  return await writeRecordsReport(files, dir, { title: `Measurements in ${dir}` });
}

/** Options of {@link writeRecordsReport}. */
export interface RecordsReportOptions {
  /** Heading of the page. */
  title?: string;
  /** Count timeouts as censored at their timeout in the table and the arm comparison. */
  censor?: boolean;
  /** The arm others are compared with (default: the first seen). */
  baseline?: string;
  /** Above this many fetches, the time series shows binned medians (default 3000). */
  maxPoints?: number;
}

/**
 * Writes plots and report.html into `outDir` for the records in `names` (files, folders or
 * globs); returns the HTML path.
 */
export async function writeRecordsReport(
  names: string[],
  outDir: string,
  options: RecordsReportOptions = {},
): Promise<string> {
  const files = await expandRecordFiles(names);
  if (!files.length) throw new Error(`no records files in ${names.join(" ")}`);
  await Deno.mkdir(outDir, { recursive: true });
  const dir = outDir.replace(/\/$/, "");
  const sum = new Summarizer("onionperf", { censor: options.censor ?? false });
  const arms = new ArmCollector({ censor: options.censor ?? false });
  const cdf = new Map<string, Map<string, { response: number[]; download: number[] }>>();
  const box: { category: string; group: string; value: number }[] = [];
  const points: TimePoint[] = [];
  let firstStart = "", lastStart = "";
  const res = await readRecords(files, (r, file) => {
    sum.add(r);
    arms.add(r);
    if (!firstStart || r.start < firstStart) firstStart = r.start;
    if (r.start > lastStart) lastStart = r.start;
    const series = r.arm ?? r.transport ?? file.split("/").pop()!.replace(/\.jsonl$/, "");
    const ok = r.outcome === "ok";
    const lb = r.phases_ms.last_byte, fb = r.phases_ms.first_byte;
    if (typeof lb === "number" || !ok) {
      points.push({ time: r.start, value: lb ?? NaN, group: `${r.label}/${series}`, ok });
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
  const okPoints = points.filter((p) => p.ok);
  if (okPoints.length) {
    const max = options.maxPoints ?? 3000;
    svgs.push(
      await writePlot(
        `${dir}/timeseries-download`,
        points.length > max
          ? binnedTimeSeriesSpec(
            "download time over time (median per bin)",
            "ms",
            binTimeSeries(points),
          )
          : timeSeriesSpec(
            "download time over time",
            "ms",
            points.filter((p) => Number.isFinite(p.value)),
          ),
      ),
    );
  }
  const groups = sum.summaries();
  const table = renderRows(summaryRows(groups), "markdown");
  const warnings = groups.filter((g) => g.warning).map((g) =>
    `${g.label}${g.transport ? "/" + g.transport : ""}${
      g.arm ? " [" + g.arm + "]" : ""
    }: ${g.warning}`
  );
  const armReport = arms.arms.length >= 2 ? arms.compare(options.baseline) : undefined;
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>pctcp report: ${esc(dir)}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>
</head><body>
<h1>${esc(options.title ?? `Measurements in ${dir}`)}</h1>
<p>${esc(methodNote("onionperf", options.censor ?? false))}.</p>
<p>${res.records} records from ${files.length} file(s), ${esc(firstStart)} to ${esc(lastStart)}${
    res.badCount ? `; ${res.badCount} malformed lines skipped` : ""
  }.</p>
<h2>Percentiles</h2><pre>${esc(table)}</pre>
${
    warnings.length
      ? `<h3>What the percentiles leave out</h3><ul>${
        warnings.map((w) => `<li>${esc(w)}</li>`).join("")
      }</ul>`
      : ""
  }
${
    armReport
      ? `<h2>Arms, paired by time block (baseline ${esc(armReport.baseline ?? "")})</h2><pre>${
        esc(armReport.lines.join("\n"))
      }</pre>${
        armReport.doubts.length
          ? `<ul>${armReport.doubts.map((d) => `<li>${esc(d)}</li>`).join("")}</ul>`
          : ""
      }`
      : ""
  }
<h2>Plots</h2>
${svgs.join("\n")}
</body></html>
`;
  await Deno.writeTextFile(`${dir}/report.html`, html);
  return `${dir}/report.html`;
}
