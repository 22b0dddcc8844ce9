/**
 * Plots with vega-lite (compiled to vega and rendered headless to SVG, no browser) and
 * resvg (SVG to PNG): empirical CDFs per group (the paper's figures), box plots by size, and
 * a time series of a run. Data are prepared here in milliseconds; the specs only draw.
 * @module
 */

import * as vega from "vega";
import * as vl from "vega-lite";

/** A named sample set. */
export interface Series {
  /** Legend name. */
  name: string;
  /** Values, ms. */
  values: number[];
}

/** One point of a time series. */
export interface TimePoint {
  /** Wall-clock time, ISO 8601. */
  time: string;
  /** Value, ms. */
  value: number;
  /** Group name. */
  group: string;
  /** Whether the fetch succeeded. */
  ok: boolean;
}

type Spec = vl.TopLevelSpec;

/** ECDF points of one series, at most `max` of them (evenly by rank). */
export function ecdf(values: number[], max = 400): { x: number; p: number }[] {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return [];
  const step = Math.max(1, Math.floor(v.length / max));
  const out = [{ x: v[0]!, p: 0 }];
  for (let i = 0; i < v.length; i += step) out.push({ x: v[i]!, p: (i + 1) / v.length });
  out.push({ x: v[v.length - 1]!, p: 1 });
  return out;
}

/** What every plot here shares: the schema, its title, the width, a height and the rows. */
function frame(title: string, height: number, values: unknown[]) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 560,
    height,
    data: { values },
  };
}

/** A CDF plot spec: one line per series, x clipped at the 99.5th percentile of all values. */
export function cdfSpec(title: string, xTitle: string, series: Series[]): Spec {
  const values = series.flatMap((s) =>
    ecdf(s.values).map((pt) => ({ ...pt, group: `${s.name} (n=${s.values.length})` }))
  );
  const all = series.flatMap((s) => s.values).sort((a, b) => a - b);
  const xmax = all.length
    ? all[Math.min(all.length - 1, Math.floor(all.length * 0.995))]! * 1.05
    : 1;
  return {
    ...frame(title, 320, values),
    mark: { type: "line", interpolate: "step-after", clip: true },
    encoding: {
      x: { field: "x", type: "quantitative", title: xTitle, scale: { domain: [0, xmax || 1] } },
      y: {
        field: "p",
        type: "quantitative",
        title: "cumulative fraction",
        scale: { domain: [0, 1] },
      },
      color: { field: "group", type: "nominal", title: null, legend: { orient: "bottom-right" } },
    },
  } as Spec;
}

/** Box plots of values by category (e.g. size), coloured by group (e.g. transport). */
export function boxSpec(
  title: string,
  yTitle: string,
  rows: { category: string; group: string; value: number }[],
): Spec {
  return {
    ...frame(title, 320, rows),
    mark: { type: "boxplot", extent: 1.5 },
    encoding: {
      x: { field: "category", type: "nominal", title: null },
      xOffset: { field: "group" },
      y: { field: "value", type: "quantitative", title: yTitle, scale: { type: "log" } },
      color: { field: "group", type: "nominal", title: null },
    },
  } as Spec;
}

/** A time series of a run: each fetch's value at its start; failures marked. */
export function timeSeriesSpec(title: string, yTitle: string, points: TimePoint[]): Spec {
  return {
    ...frame(title, 280, points),
    mark: { type: "point", filled: true, size: 18 },
    encoding: {
      x: { field: "time", type: "temporal", title: "fetch start" },
      y: { field: "value", type: "quantitative", title: yTitle },
      color: { field: "group", type: "nominal", title: null },
      shape: { field: "ok", type: "nominal", title: "ok" },
    },
  } as Spec;
}

/** One bin of a binned time series: the median of a group's successful values in it. */
export interface BinnedPoint {
  /** Bin middle, ISO 8601. */
  time: string;
  /** Median, ms. */
  value: number;
  /** Group name. */
  group: string;
  /** Successful fetches in the bin. */
  n: number;
  /** Failed fetches in the bin. */
  failed: number;
}

/**
 * Bins a long time series (days of fetches) into about `bins` equal spans: per group and bin,
 * the median of successful values and the count of failures.
 */
export function binTimeSeries(points: TimePoint[], bins = 200): BinnedPoint[] {
  const times = points.map((p) => Date.parse(p.time)).filter(Number.isFinite);
  if (!times.length) return [];
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const width = Math.max(1000, (t1 - t0) / bins);
  const cells = new Map<string, { group: string; bin: number; ok: number[]; failed: number }>();
  for (const p of points) {
    const bin = Math.floor((Date.parse(p.time) - t0) / width);
    const key = `${p.group}\0${bin}`;
    let c = cells.get(key);
    if (!c) cells.set(key, c = { group: p.group, bin, ok: [], failed: 0 });
    if (p.ok) c.ok.push(p.value);
    else c.failed++;
  }
  const out: BinnedPoint[] = [];
  for (const c of cells.values()) {
    const v = c.ok.sort((a, b) => a - b);
    const mid = v.length % 2
      ? v[(v.length - 1) / 2]!
      : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    out.push({
      time: new Date(t0 + (c.bin + 0.5) * width).toISOString(),
      value: v.length ? mid : NaN,
      group: c.group,
      n: v.length,
      failed: c.failed,
    });
  }
  return out.filter((p) => Number.isFinite(p.value)).sort((a, b) =>
    a.time.localeCompare(b.time) || a.group.localeCompare(b.group)
  );
}

/** A binned time series: per group a line through the bins' medians. */
export function binnedTimeSeriesSpec(title: string, yTitle: string, points: BinnedPoint[]): Spec {
  return {
    ...frame(title, 280, points),
    mark: { type: "line", point: { filled: true, size: 14 } },
    encoding: {
      x: { field: "time", type: "temporal", title: "fetch start (bin middle)" },
      y: { field: "value", type: "quantitative", title: yTitle },
      color: { field: "group", type: "nominal", title: null },
    },
  } as Spec;
}

/** Renders a vega-lite spec to SVG. */
export async function renderSvg(spec: Spec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

type ResvgModule = typeof import("@resvg/resvg-js");
let resvg: Promise<ResvgModule | undefined> | undefined;

/**
 * resvg is a native addon: loaded on first use, by a specifier the bundler does not follow,
 * so `deno task bundle` still makes one file (that file writes SVG only).
 */
function loadResvg(): Promise<ResvgModule | undefined> {
  const name = "@resvg/resvg-js";
  resvg ??= (import(name) as Promise<ResvgModule>).catch(() => undefined);
  return resvg;
}

/** Rasterizes SVG to PNG at `width` pixels (system fonts for text); undefined without resvg. */
export async function svgToPng(svg: string, width = 1200): Promise<Uint8Array | undefined> {
  const mod = await loadResvg();
  if (!mod) return undefined;
  return new mod.Resvg(svg, {
    fitTo: { mode: "width", value: width },
    font: { loadSystemFonts: true },
  }).render()
    .asPng();
}

/** Writes `base.svg` and (where resvg loads) `base.png`; returns the SVG. */
export async function writePlot(base: string, spec: Spec): Promise<string> {
  const svg = await renderSvg(spec);
  await Deno.writeTextFile(`${base}.svg`, svg);
  const png = await svgToPng(svg);
  if (png) await Deno.writeFile(`${base}.png`, png);
  return svg;
}

/** An ASCII CDF for the terminal: one row per decile, a bar per series. */
export function asciiCdf(title: string, series: Series[], width = 50): string {
  const all = series.flatMap((s) => s.values).filter(Number.isFinite).sort((a, b) => a - b);
  if (!all.length) return `${title}: no data\n`;
  const max = all[all.length - 1]!;
  const marks = "*o+x#@";
  const lines = [`${title} (ms; each row a fraction, each mark where that series reaches it)`];
  for (let p = 0.1; p <= 1.0001; p += 0.1) {
    const row = Array.from({ length: width + 1 }, () => " ");
    series.forEach((s, i) => {
      const v = s.values.filter(Number.isFinite).sort((a, b) => a - b);
      if (!v.length) return;
      const x = v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)]!;
      row[Math.round((x / max) * width)] = marks[i % marks.length]!;
    });
    lines.push(`${p.toFixed(1)} |${row.join("")}`);
  }
  lines.push(`    +${"-".repeat(width + 1)}`);
  lines.push(
    `     0${" ".repeat(Math.max(1, width - String(Math.round(max)).length))}${Math.round(max)}`,
  );
  lines.push("     " + series.map((s, i) => `${marks[i % marks.length]} ${s.name}`).join("   "));
  return lines.join("\n") + "\n";
}
