/**
 * Empirical CDF plots as self-contained SVG (no browser, no fonts to load): one line per
 * series, linear time axis in ms with round ticks, the paper's style of figure.
 * @module
 */

/** One series of a plot. */
export interface Series {
  /** Legend name. */
  name: string;
  /** Samples (ms). */
  values: number[];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

function niceStep(range: number): number {
  const raw = range / 6;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** Renders the empirical CDFs of `series` (x: ms, clipped at the 99.5th percentile). */
export function cdfSvg(
  title: string,
  xLabel: string,
  series: Series[],
  options: { width?: number; height?: number } = {},
): string {
  const W = options.width ?? 640, H = options.height ?? 400;
  const m = { l: 60, r: 20, t: 36, b: 50 };
  const all = series.flatMap((s) => s.values).filter(Number.isFinite).sort((a, b) => a - b);
  const xmax = all.length
    ? all[Math.min(all.length - 1, Math.floor(all.length * 0.995))]! * 1.05 || 1
    : 1;
  const step = niceStep(xmax);
  const X = (v: number) => m.l + (Math.min(v, xmax) / xmax) * (W - m.l - m.r);
  const Y = (p: number) => H - m.b - p * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${
      esc(title)
    }</text>`,
  ];
  for (let v = 0; v <= xmax + 1e-9; v += step) {
    parts.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${Y(0)}" y2="${Y(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${X(v)}" y="${Y(0) + 16}" text-anchor="middle">${+v.toFixed(3)}</text>`);
  }
  for (let p = 0; p <= 1.0001; p += 0.2) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(p)}" y2="${Y(p)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${Y(p) + 4}" text-anchor="end">${p.toFixed(1)}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(0)}" y2="${Y(0)}" stroke="black"/>`);
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${Y(0)}" y2="${Y(1)}" stroke="black"/>`);
  parts.push(`<text x="${(W + m.l) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(
    `<text transform="translate(16 ${
      (H - m.b + m.t) / 2
    }) rotate(-90)" text-anchor="middle">cumulative fraction</text>`,
  );
  series.forEach((s, i) => {
    const v = s.values.filter(Number.isFinite).sort((a, b) => a - b);
    if (!v.length) return;
    const pts: string[] = [`${X(v[0]!)},${Y(0)}`];
    const stride = Math.max(1, Math.floor(v.length / 400));
    for (let k = 0; k < v.length; k += stride) {
      pts.push(`${X(v[k]!).toFixed(1)},${Y((k + 1) / v.length).toFixed(1)}`);
    }
    pts.push(`${X(v[v.length - 1]!).toFixed(1)},${Y(1)}`);
    const c = COLORS[i % COLORS.length]!;
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(" ")}"/>`);
    // Legend at the lower right, where CDF lines rarely are.
    const ly = H - m.b - 12 - (series.length - i) * 18;
    parts.push(`<rect x="${W - m.r - 160}" y="${ly}" width="12" height="12" fill="${c}"/>`);
    parts.push(`<text x="${W - m.r - 142}" y="${ly + 10}">${esc(s.name)} (n=${v.length})</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}
