/**
 * The report stage: summary.md and report.html from summary.json (the analyze stage's output)
 * and the folder's records, written to an output folder of their own — the inputs are only
 * read. The page has what OnionPerf's visualize and tornettools' plot show: time to first and
 * last byte as ECDFs per size, throughput (OnionPerf's definition, below), failures over time
 * and by class, circuit build times, each arm's spread across runs as a band, time series and
 * where bytes wait; and HTML tables with rounded numbers.
 *
 * Throughput, as OnionPerf's visualize computes it: 4.194304 Mbit (512 KiB) over the time
 * between 10 % and 20 % of a 5 MiB download, or between 50 % and 100 % of a 1 MiB one; other
 * sizes (ours): half the body over the time between 50 % and 100 %.
 * @module
 */

import { readRecords } from "../stats/load.ts";
import { writePlot } from "../report/plots.ts";
import { cdfSpec, ecdf, type TimePoint, timeSeriesSpec } from "../report/plots.ts";
import { formatSize } from "../serve/sizes.ts";
import { percentileSorted } from "../stats/percentile.ts";
import type { MeasureRecord } from "../measure/record.ts";
import { isUnfinished } from "../stats/summary.ts";
import { ARMS, METRIC_NAMES, METRICS, MIN_RUNS_FOR_INTERVAL } from "./arms.ts";
import { analyzeFolder, SUMMARY_VERSION } from "./analyze.ts";

type Json = Record<string, unknown>;

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** A number for people: fixed decimals, "–" when absent. */
export function fmt(x: unknown, digits = 0): string {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function fmtCi(ci: unknown, digits = 0, unit = ""): string {
  if (!Array.isArray(ci)) return "–";
  return `${fmt(ci[0], digits)} .. ${fmt(ci[1], digits)}${unit}`;
}

function fmtPct(x: unknown): string {
  return typeof x === "number" ? `${x >= 0 ? "+" : ""}${x.toFixed(1)} %` : "–";
}

/** OnionPerf's throughput of one fetch, Mbit/s, or undefined (module doc). */
export function throughputMbps(r: MeasureRecord): number | undefined {
  if (r.outcome !== "ok" || !r.size) return undefined;
  const p = r.progress_ms;
  const span = (a: string, b: string, bits: number) => {
    const ta = p[a], tb = p[b];
    return typeof ta === "number" && typeof tb === "number" && tb > ta
      ? bits / 1e6 / ((tb - ta) / 1000)
      : undefined;
  };
  if (r.size === 5 * 1024 * 1024) return span("10", "20", 4_194_304);
  if (r.size === 1024 * 1024) return span("50", "100", 4_194_304);
  return span("50", "100", r.size * 8 / 2);
}

/** The lines every output opens with: network, baseline scheduler, runs, sample sizes. */
export function headerLines(summary: Json): string[] {
  const net = summary.network as { kind?: string; words?: string } | undefined;
  const base = summary.base as { arm?: string; words?: string } | undefined;
  const runs = Number(summary.runs ?? 1);
  const arms = (summary.arms ?? {}) as Record<string, Record<string, { n?: number } | null>>;
  const sizes = Object.entries(arms).map(([a, m]) =>
    `${a} ${METRIC_NAMES.map((k) => `${k.replace("_", " ")} ${m[k]?.n ?? 0}`).join(", ")}`
  );
  const check = summary.self_check as
    | { bottleneck?: boolean | null; reasons?: string[] }
    | undefined;
  return [
    `Network: ${net?.words ?? "unknown (a folder from before the manifest)"}`,
    `Baseline: ${base?.arm ?? "?"} = ${base?.words ?? "?"}`,
    `Runs: ${runs}${
      runs < MIN_RUNS_FOR_INTERVAL
        ? ` (no across-run interval below ${MIN_RUNS_FOR_INTERVAL}; intervals are of one network's pooled records)`
        : ""
    }`,
    `Samples per arm: ${sizes.join("; ")}`,
    ...networkLines(summary),
    ...(check?.bottleneck
      ? [`WARNING: the machine may have been the bottleneck: ${(check.reasons ?? []).join("; ")}`]
      : check?.bottleneck === false
      ? ["Self-check: the machine was not the bottleneck (CPU, emulator lateness, relay CPU)"]
      : []),
  ];
}

/** With several networks: how many, runs on each, and each network in words. */
function networkLines(summary: Json): string[] {
  const n = summary.networks as
    | { count?: number; runs_per_network?: number | null; specs?: string[] }
    | undefined;
  if (!n?.count) return [];
  const each = n.runs_per_network ? `, ${n.runs_per_network} runs on each` : "";
  return [
    `Networks: ${n.count} drawn${each} (per-network tables below; the across-network interval is a Student t over the ${n.count} per-network p50 values)`,
    ...(n.specs ?? []).map((w) => `Network ${w.replace(/^network /, "")}`),
  ];
}

type NetRow = Record<string, unknown> & { network: number; n: { base: number; arm: number } };
type Across = { n: number; mean: number; ci: [number, number] | null; min: number; max: number };

/** The per-network rows of one change or calibration entry, and its across-network row. */
function perNetworkRows(
  name: string,
  metric: string,
  e: Json,
  value: (p: Json) => string,
  ci: (p: Json) => string,
  mean: (x: number) => string,
  ciOf: (c: unknown) => string,
): string[][] {
  const rows = (e.per_network ?? []) as NetRow[];
  if (!rows.length) return [];
  const out = rows.map((r) => {
    const p = r.p50 as Json | null;
    return [
      name,
      metric,
      String(r.network),
      `${r.n.base} / ${r.n.arm}${r.few_samples ? " (few samples)" : ""}`,
      p ? value(p) : "–",
      p ? ci(p) : "–",
    ];
  });
  const a = e.across_networks as Across | undefined;
  if (a) {
    out.push([
      name,
      metric,
      `mean of ${a.n}`,
      `per network ${mean(a.min)} .. ${mean(a.max)}`,
      mean(a.mean),
      a.ci ? ciOf(a.ci) : "– (needs 3 networks)",
    ]);
  }
  return out;
}

interface Table {
  head: string[];
  rows: string[][];
  /** Columns aligned right (numbers). */
  right?: number[];
}

function markdownTable(t: Table): string {
  const sep = t.head.map((_, i) => (t.right?.includes(i) ? " ---: " : " --- ")).join("|");
  return [`| ${t.head.join(" | ")} |`, `|${sep}|`, ...t.rows.map((r) => `| ${r.join(" | ")} |`)]
    .join("\n");
}

function htmlTable(t: Table): string {
  const cell = (tag: string, v: string, i: number) =>
    `<${tag}${t.right?.includes(i) ? ' class="num"' : ""}>${esc(v)}</${tag}>`;
  return `<table><thead><tr>${
    t.head.map((h, i) => cell("th", h, i)).join("")
  }</tr></thead><tbody>\n${
    t.rows.map((r) => `<tr>${r.map((v, i) => cell("td", v, i)).join("")}</tr>`).join("\n")
  }\n</tbody></table>`;
}

type Pct = { ms: number; at_least?: boolean; ci: unknown; across_runs?: { ci: unknown } };

/** The tables of a summary, each with a title (Markdown and HTML draw the same ones). */
export function summaryTables(summary: Json): { title: string; table: Table }[] {
  const out: { title: string; table: Table }[] = [];
  const counts = (summary.counts ?? {}) as Record<string, Record<string, Record<string, number>>>;
  if (Object.keys(counts).length) {
    const rows: string[][] = [];
    for (const [arm, m] of Object.entries(counts)) {
      for (const [label, c] of Object.entries(m)) {
        if (!c.fetches) continue;
        rows.push([
          arm,
          label,
          String(c.fetches),
          String(c.ok),
          String(c.timeouts),
          String(c.failed),
          String(c.unfinished),
        ]);
      }
    }
    out.push({
      title: "Fetches per arm (timeouts censored at the timeout; failures counted, not timed)",
      table: {
        head: ["arm", "workload", "fetches", "ok", "timed out", "failed", "unfinished at end"],
        rows,
        right: [2, 3, 4, 5, 6],
      },
    });
  }
  const runs = Number(summary.runs ?? 1);
  const across = runs >= MIN_RUNS_FOR_INTERVAL;
  const arms = (summary.arms ?? {}) as Record<
    string,
    Record<string, Record<string, unknown> | null>
  >;
  if (Object.keys(arms).length) {
    const rows: string[][] = [];
    for (const [arm, m] of Object.entries(arms)) {
      for (const k of METRIC_NAMES) {
        const e = m[k];
        if (!e) continue;
        const p50 = e.p50 as Pct, p90 = e.p90 as Pct;
        const v = (p: Pct) => `${p.at_least ? "≥ " : ""}${fmt(p.ms)}`;
        rows.push([
          arm,
          k,
          `${e.n}${e.few_samples ? ` (few samples, < ${e.min})` : ""}`,
          v(p50),
          fmtCi(p50.ci),
          v(p90),
          fmtCi(p90.ci),
          ...(across ? [fmtCi(p50.across_runs?.ci)] : []),
        ]);
      }
    }
    out.push({
      title: "Each arm, ms (pooled records; 95 % bootstrap intervals)",
      table: {
        head: [
          "arm",
          "metric",
          "n",
          "p50 ms",
          "95 % CI",
          "p90 ms",
          "95 % CI",
          ...(across ? ["p50 across runs 95 % CI"] : []),
        ],
        rows,
        right: [2, 3, 5],
      },
    });
  }
  const changes = (summary.changes ?? {}) as Record<string, Record<string, Json | null>>;
  if (Object.keys(changes).length) {
    const rows: string[][] = [];
    for (const [name, m] of Object.entries(changes)) {
      for (const k of METRIC_NAMES) {
        const e = m[k];
        if (!e) continue;
        const p50 = e.p50 as { pct: number; ci: unknown; bound?: string; across_runs?: Json };
        const p90 = e.p90 as { pct: number; ci: unknown; bound?: string };
        const b = (x: { bound?: string }) =>
          x.bound === "at-least" ? "≥ " : x.bound === "at-most" ? "≤ " : x.bound ? "? " : "";
        const n = e.n as { base: number; arm: number };
        rows.push([
          name.replace("_vs_", " vs "),
          k,
          `${n.base} / ${n.arm}${e.few_samples ? " (few samples)" : ""}`,
          `${b(p50)}${fmtPct(p50.pct)}`,
          fmtCi(p50.ci, 1, " %"),
          `${b(p90)}${fmtPct(p90.pct)}`,
          fmtCi(p90.ci, 1, " %"),
          ...(across ? [fmtCi(p50.across_runs?.ci, 1, " %")] : []),
        ]);
      }
    }
    out.push({
      title:
        "Change against the base ((arm − base) / base; negative is faster; ≥ / ≤: a bound, timeouts reach that percentile; ?: both sides censored there)",
      table: {
        head: [
          "change",
          "metric",
          "n base / arm",
          "p50",
          "95 % CI",
          "p90",
          "95 % CI",
          ...(across ? ["p50 across runs 95 % CI"] : []),
        ],
        rows,
        right: [2, 3, 5],
      },
    });
  }
  const bound = (x: Json) =>
    x.bound === "at-least" ? "≥ " : x.bound === "at-most" ? "≤ " : x.bound ? "? " : "";
  const netChanges: string[][] = [];
  for (const [name, m] of Object.entries(changes)) {
    for (const k of METRIC_NAMES) {
      const e = m[k];
      if (!e) continue;
      netChanges.push(
        ...perNetworkRows(
          name.replace("_vs_", " vs "),
          k,
          e,
          (p) => `${bound(p)}${fmtPct(p.pct)}`,
          (p) => fmtCi(p.ci, 1, " %"),
          fmtPct,
          (c) => fmtCi(c, 1, " %"),
        ),
      );
    }
  }
  if (netChanges.length) {
    out.push({
      title:
        "Change per network (each network's pooled runs; 95 % bootstrap intervals; mean of K: Student t over the networks' p50; ≥ / ≤ / ? as above)",
      table: {
        head: ["change", "metric", "network", "n base / arm", "p50", "95 % CI"],
        rows: netChanges,
        right: [3, 4],
      },
    });
  }
  const cals = (summary.calibrations ?? []) as Json[];
  if (cals.length) {
    const rows: string[][] = [];
    for (const cal of cals) {
      for (const k of METRIC_NAMES) {
        const e = cal[k] as Record<string, { ratio: number; ci: unknown }> | null;
        if (!e) continue;
        rows.push([
          `${cal.arm} / ${cal.against}`,
          k,
          fmt(e.p50?.ratio, 2),
          fmtCi(e.p50?.ci, 2),
          fmt(e.p90?.ratio, 2),
          fmtCi(e.p90?.ci, 2),
        ]);
      }
    }
    out.push({
      title: "Calibration (ours / C tor; 1 = same; goal ±15 % at p50, p90 informative)",
      table: {
        head: ["calibration", "metric", "p50 ratio", "95 % CI", "p90 ratio", "95 % CI"],
        rows,
        right: [2, 4],
      },
    });
    const netRows: string[][] = [];
    for (const cal of cals) {
      for (const k of METRIC_NAMES) {
        const e = cal[k] as Json | null;
        if (!e) continue;
        netRows.push(
          ...perNetworkRows(
            `${cal.arm} / ${cal.against}`,
            k,
            e,
            (p) => fmt(p.ratio, 2),
            (p) => fmtCi(p.ci, 2),
            (x) => fmt(x, 2),
            (c) => fmtCi(c, 2),
          ),
        );
      }
    }
    if (netRows.length) {
      out.push({
        title:
          "Calibration per network (ours / C tor at p50; mean of K: Student t over the networks)",
        table: {
          head: ["calibration", "metric", "network", "n C tor / ours", "p50 ratio", "95 % CI"],
          rows: netRows,
          right: [3, 4],
        },
      });
    }
  }
  return out;
}

/** summary.md: the header lines, the tables, the sentences and what to doubt. */
export function summaryMarkdown(summary: Json): string {
  const parts = [headerLines(summary).map((l) => `- ${l}`).join("\n")];
  for (const t of summaryTables(summary)) parts.push(`**${t.title}**\n\n${markdownTable(t.table)}`);
  const sentences = (summary.sentences as string[] | undefined) ?? [];
  if (sentences.length) parts.push(sentences.map((l) => `- ${l}`).join("\n"));
  const doubts = (summary.doubts as string[] | undefined) ?? [];
  if (doubts.length) parts.push(`**What to doubt**\n\n${doubts.map((l) => `- ${l}`).join("\n")}`);
  return parts.join("\n\n") + "\n";
}

/** The summary of a folder: its summary.json when this version wrote it, else analyzed now. */
export async function loadSummary(dir: string): Promise<Json> {
  try {
    const s = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`)) as Json;
    if (s.v === SUMMARY_VERSION) return s;
  } catch { /* none yet */ }
  return await analyzeFolder(dir);
}

/** Per arm, run and record: what the plots need, read once. */
async function readArmRecords(
  dir: string,
  arms: string[],
): Promise<{ arm: string; run: number; r: MeasureRecord }[]> {
  const out: { arm: string; run: number; r: MeasureRecord }[] = [];
  const runs: number[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/runs`)) {
      const m = /^r(\d+)$/.exec(e.name);
      if (e.isDirectory && m) runs.push(Number(m[1]));
    }
  } catch { /* no runs */ }
  runs.sort((a, b) => a - b);
  for (const arm of arms) {
    const perRun = runs.map((n) => ({ n, f: `${dir}/runs/r${n}/records-${arm}.jsonl` }));
    const have = [];
    for (const x of perRun) {
      if (await Deno.stat(x.f).then(() => true, () => false)) have.push(x);
    }
    if (have.length) {
      for (const x of have) await readRecords([x.f], (r) => out.push({ arm, run: x.n, r }));
    } else {
      const f = `${dir}/records-${arm}.jsonl`;
      if (await Deno.stat(f).then(() => true, () => false)) {
        await readRecords([f], (r) => out.push({ arm, run: 1, r }));
      }
    }
  }
  return out;
}

type Spec = Parameters<typeof writePlot>[1];

/**
 * The band across runs of one metric: per arm and fraction, the lowest and highest of the
 * runs' quantiles (tornettools draws the same spread), with the pooled ECDF as a line.
 */
function bandSpec(
  title: string,
  perArmRuns: Map<string, number[][]>,
): Spec | undefined {
  const band: Json[] = [], line: Json[] = [];
  const qs = Array.from({ length: 19 }, (_, i) => (i + 1) * 5);
  for (const [arm, runs] of perArmRuns) {
    const sorted = runs.filter((v) => v.length).map((v) => Float64Array.from(v).sort());
    if (sorted.length < 2) continue;
    for (const q of qs) {
      const xs = sorted.map((s) => percentileSorted(s, q));
      band.push({ arm, p: q / 100, lo: Math.min(...xs), hi: Math.max(...xs) });
    }
    for (const pt of ecdf(runs.flat())) line.push({ arm, ...pt });
  }
  if (!band.length) return undefined;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 560,
    height: 300,
    layer: [
      {
        data: { values: band },
        mark: { type: "area", orient: "horizontal", opacity: 0.25 },
        encoding: {
          y: { field: "p", type: "quantitative", title: "cumulative fraction" },
          x: { field: "lo", type: "quantitative", title: "ms from stream start" },
          x2: { field: "hi" },
          color: { field: "arm", type: "nominal", title: null },
        },
      },
      {
        data: { values: line },
        mark: { type: "line", interpolate: "step-after" },
        encoding: {
          x: { field: "x", type: "quantitative" },
          y: { field: "p", type: "quantitative" },
          color: { field: "arm", type: "nominal", title: null },
        },
      },
    ],
  } as Spec;
}

/** The queue table (queues.json): connections between relays and where bytes waited. */
function queueSection(queues: Record<string, unknown>): string {
  const rows = Object.entries(queues).map(([arm, q]) => {
    const x = q as {
      relay_sockets_send_q_bytes?: { mean: number; p90: number | null; max: number | null };
      relay_to_relay_connections?: { max: number | null };
      where_bytes_wait?: Record<string, number | null>;
    };
    const w = x.where_bytes_wait ?? {};
    const sq = x.relay_sockets_send_q_bytes;
    return [
      arm,
      fmt(x.relay_to_relay_connections?.max),
      fmt(sq?.mean),
      fmt(sq?.p90),
      fmt(sq?.max),
      fmt(w.circuit_queues_mean_bytes),
      fmt(w.outbufs_mean_bytes),
      fmt(w.kernel_notsent_mean_bytes),
      fmt(w.kernel_unacked_mean_bytes),
      fmt(w.kernel_recv_q_mean_bytes),
    ];
  });
  if (!rows.length) return "";
  return `<h2>Where queues build</h2>
<p>Sampled once a second: with <code>ss -tin</code> the TCP connections between relays and the bytes in their kernel send queues (not yet sent apart from sent and unacknowledged); from our relays' statistics the bytes in their circuit queues and output buffers (C tor does not report these). The plot "where bytes wait" shows the first run over time.</p>
${
    htmlTable({
      head: [
        "arm",
        "relay-relay connections (max)",
        "send-Q mean B",
        "send-Q p90 B",
        "send-Q max B",
        "circuit queues mean B",
        "output buffers mean B",
        "kernel not-sent mean B",
        "kernel unacked mean B",
        "kernel receive queues mean B",
      ],
      rows,
      right: [1, 2, 3, 4, 5, 6, 7, 8, 9],
    })
  }`;
}

/**
 * Writes summary.md, report.html and the plots into `out` from the experiment folder `dir`
 * (its summary.json when current, else analyzed in memory, and its records). `dir` is only
 * read. Returns the paths written.
 */
export async function writeExperimentReport(
  dir: string,
  out: string,
): Promise<{ html: string; markdown: string; plots: string[] }> {
  await Deno.mkdir(out, { recursive: true });
  const summary = await loadSummary(dir);
  const arms = Object.keys((summary.arms ?? {}) as Json).filter((a) =>
    (ARMS as readonly string[]).includes(a)
  );
  const recs = await readArmRecords(dir, arms);
  const plots: { name: string; svg: string; caption: string }[] = [];
  const plot = async (name: string, spec: Spec, caption: string) => {
    plots.push({ name, svg: await writePlot(`${out}/${name}`, spec), caption });
  };

  // Time to first and last byte, ECDF per label and size, one line per arm.
  const sizes = new Map<string, { label: string; size: number }>();
  for (const { r } of recs) {
    if (r.size) sizes.set(`${r.label}|${r.size}`, { label: r.label, size: r.size });
  }
  for (const { label, size } of [...sizes.values()].sort((a, b) => a.size - b.size)) {
    for (
      const [phase, words] of [["first_byte", "time to first byte"], [
        "last_byte",
        "time to last byte",
      ]] as const
    ) {
      const series = arms.map((arm) => ({
        name: arm,
        values: recs.filter((x) =>
          x.arm === arm && x.r.label === label && x.r.size === size && x.r.outcome === "ok"
        ).map((x) => x.r.phases_ms[phase]).filter((v): v is number => typeof v === "number"),
      })).filter((s) => s.values.length);
      if (!series.length) continue;
      await plot(
        `ecdf-${label}-${size}-${phase}`,
        cdfSpec(`${label} ${formatSize(size)}: ${words}`, "ms from stream start", series),
        `ECDF of the ${words} of successful ${label} fetches of ${formatSize(size)}, per arm.`,
      );
    }
  }
  // Throughput (OnionPerf's definition).
  const tput = arms.map((arm) => ({
    name: arm,
    values: recs.filter((x) => x.arm === arm).map((x) => throughputMbps(x.r)).filter((
      v,
    ): v is number => v !== undefined),
  })).filter((s) => s.values.length);
  if (tput.length) {
    await plot(
      "ecdf-throughput",
      cdfSpec("throughput (OnionPerf's definition)", "Mbit/s", tput),
      "Throughput: 4.194304 Mbit over the time between 10 % and 20 % of a 5 MiB download (between 50 % and 100 % of 1 MiB; other sizes: half the body over 50–100 %).",
    );
  }
  // Circuit build times.
  const build = arms.map((arm) => {
    const seen = new Set<string>();
    const values: number[] = [];
    for (const x of recs) {
      const c = x.r.circuit;
      if (x.arm !== arm || !c || typeof c.build_ms !== "number") continue;
      const key = `${x.run}|${x.r.run}|${c.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      values.push(c.build_ms);
    }
    return { name: arm, values };
  }).filter((s) => s.values.length);
  if (build.length) {
    await plot(
      "ecdf-circuit-build",
      cdfSpec("circuit build time", "ms", build),
      "ECDF of circuit build times, each circuit once (from the proxy's stream log).",
    );
  }
  // Failures over time and by class.
  const t0 = Math.min(...recs.map((x) => Date.parse(x.r.start)).filter(Number.isFinite));
  const fails = recs.filter((x) => x.r.outcome !== "ok").map((x) => ({
    arm: x.arm,
    run: x.run,
    outcome: x.r.outcome,
    label: x.r.label,
    t: (Date.parse(x.r.start) - t0) / 1000,
  }));
  const byClass = new Map<string, number>();
  for (const f of fails) {
    byClass.set(`${f.arm}|${f.outcome}`, (byClass.get(`${f.arm}|${f.outcome}`) ?? 0) + 1);
  }
  const classRows = arms.flatMap((arm) => {
    const rows = [...byClass].filter(([k]) => k.startsWith(`${arm}|`)).map(([k, n]) => ({
      arm,
      outcome: k.split("|")[1],
      n,
    }));
    return rows.length ? rows : [{ arm, outcome: "none", n: 0 }];
  });
  await plot(
    "errors-by-class",
    {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: "failed and unfinished fetches by class",
      width: 560,
      height: 200,
      data: { values: classRows },
      mark: "bar",
      encoding: {
        y: { field: "arm", type: "nominal", title: null },
        x: { field: "n", type: "quantitative", title: "fetches" },
        color: { field: "outcome", type: "nominal", title: "outcome" },
      },
    } as Spec,
    "Fetches that did not succeed, by outcome (timeout, reset, …; unfinished = cut short by the run's end).",
  );
  if (fails.length) {
    await plot("errors-over-time", {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: "failed fetches over time",
      width: 560,
      height: 200,
      data: { values: fails },
      mark: { type: "point", filled: true, size: 40 },
      encoding: {
        x: {
          field: "t",
          type: "quantitative",
          title: "s since the first fetch (arms run in turn)",
        },
        y: { field: "arm", type: "nominal", title: null },
        color: { field: "outcome", type: "nominal", title: "outcome" },
        shape: { field: "label", type: "nominal", title: "workload" },
      },
    } as Spec, "When each failed fetch started, by arm and class.");
  }
  // Bands across runs.
  for (const k of METRIC_NAMES) {
    const m = METRICS[k];
    const per = new Map<string, number[][]>();
    for (const arm of arms) {
      const runs = new Map<number, number[]>();
      for (const x of recs) {
        const v = x.r.phases_ms[m.phase];
        if (x.arm !== arm || x.r.label !== m.label || x.r.outcome !== "ok") continue;
        if (typeof v !== "number") continue;
        let l = runs.get(x.run);
        if (!l) runs.set(x.run, l = []);
        l.push(v);
      }
      per.set(arm, [...runs.values()]);
    }
    const spec = bandSpec(`${m.words}: spread across runs`, per);
    if (spec) {
      await plot(
        `band-${k}`,
        spec,
        `Band: per arm, the lowest and highest of the runs' quantiles at each fraction (5 % steps); line: the pooled ECDF.`,
      );
    }
  }
  // Time series of web response times, failures marked.
  const points: TimePoint[] = recs.filter((x) =>
    x.r.label === "web" && typeof x.r.phases_ms.first_byte === "number"
  ).map((x) => ({
    time: x.r.start,
    value: x.r.phases_ms.first_byte!,
    group: x.arm,
    ok: x.r.outcome === "ok",
  }));
  if (points.length) {
    await plot(
      "timeseries-web_response",
      timeSeriesSpec("web response time over the run", "ms", points),
      "Each web fetch's time to first byte at its start: warm-up and drift show here.",
    );
  }
  // Where bytes wait (first run).
  const queues = JSON.parse(await Deno.readTextFile(`${dir}/queues.json`).catch(() => "{}"));
  const qpoints: { arm: string; t: number; place: string; kib: number }[] = [];
  for (const [arm, q] of Object.entries(queues)) {
    const first = (q as { series?: { points: Record<string, number>[] }[] }).series?.[0]?.points ??
      [];
    for (const p of first) {
      const places: [string, number | undefined][] = [
        ["circuit queues", p.circuit_queues],
        ["output buffers", p.outbufs],
        ["kernel not sent", p.kernel_notsent],
        ["kernel unacked", p.kernel_unacked],
        ["kernel receive queues", p.kernel_recv_q],
      ];
      for (const [place, v] of places) {
        if (typeof v === "number") qpoints.push({ arm, t: p.t! / 1000, place, kib: v / 1024 });
      }
    }
  }
  if (qpoints.length) {
    await plot(
      "queues",
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: "where bytes wait (sum over relays, first run)",
        data: { values: qpoints },
        facet: { row: { field: "arm", type: "nominal", title: null } },
        spec: {
          width: 560,
          height: 120,
          mark: { type: "line" },
          encoding: {
            x: { field: "t", type: "quantitative", title: "s" },
            y: { field: "kib", type: "quantitative", title: "KiB" },
            color: { field: "place", type: "nominal", title: null },
          },
        },
      } as Spec,
      "Sampled once a second: kernel queues of relay-to-relay sockets (ss) and our relays' circuit queues and output buffers.",
    );
  }
  const markdown = summaryMarkdown(summary);
  await Deno.writeTextFile(`${out}/summary.md`, markdown);
  const unfinished = recs.filter((x) => isUnfinished(x.r.outcome)).length;
  const scenario = await Deno.readTextFile(`${dir}/scenario.json`).catch(() => "{}");
  const manifest = await Deno.readTextFile(`${dir}/manifest.json`).catch(() => "{}");
  const machine = await Deno.readTextFile(`${dir}/machine.json`).catch(() => "{}");
  const check = summary.self_check as Json | undefined;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pctcp experiment: ${
    esc(String(summary.scenario ?? ""))
  }</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.num,th.num{text-align:right}.warn{background:#fff3cd;padding:0.5em 1em;border-left:4px solid #e0a800}figure{margin:1em 0}figcaption{font-size:13px;color:#444}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}</style>
</head><body>
<h1>Cross-circuit interference: ${esc(arms.join(", "))}</h1>
<ul>${
    headerLines(summary).map((l) =>
      `<li${l.startsWith("WARNING") ? ' class="warn"' : ""}>${esc(l)}</li>`
    ).join("")
  }</ul>
<p>Scenario <b>${esc(String(summary.scenario ?? ""))}</b>, pctcp ${
    esc(String(summary.version ?? ""))
  }, started ${esc(String(summary.started ?? ""))}, finished ${
    esc(String(summary.finished ?? "–"))
  }${summary.interrupted ? " (stopped before every arm ran)" : ""}.
Times are ms from the start of the stream (SOCKS included, as OnionPerf counts): response time is the first byte, download time the last.
Percentiles: ${esc(String((summary.method as Json | undefined)?.percentiles ?? ""))}.
Timeouts stay in the samples at their timeout (a percentile that reaches one reads ≥); other failures are counted, not timed; ${unfinished} fetches were cut short by the end of their arm's measurement (unfinished).
Change is (arm − base) / base: negative means the arm is faster.</p>
${summaryTables(summary).map((t) => `<h2>${esc(t.title)}</h2>\n${htmlTable(t.table)}`).join("\n")}
${
    ((summary.sentences as string[] | undefined) ?? []).length
      ? `<h2>In words</h2><ul>${
        (summary.sentences as string[]).map((s) => `<li>${esc(s)}</li>`).join("")
      }</ul>`
      : ""
  }
${
    ((summary.doubts as string[] | undefined) ?? []).length
      ? `<h2>What to doubt</h2><ul>${
        (summary.doubts as string[]).map((s) => `<li>${esc(s)}</li>`).join("")
      }</ul>`
      : ""
  }
<h2>Self-check</h2>
<p>${
    check?.measured
      ? `${
        check.bottleneck
          ? "The machine may have been the bottleneck"
          : "The machine was not the bottleneck"
      }: CPU busy mean ${fmt(((check.cpu_busy as Json)?.mean as number) * 100)} %, max ${
        fmt(((check.cpu_busy as Json)?.max as number) * 100)
      } %; emulator lateness p99 max ${
        fmt(check.emulator_late_p99_ms_max, 1)
      } ms; relay CPU (cores) ${
        esc(
          Object.entries((check.relay_cpu_cores_max ?? {}) as Record<string, number>).map((
            [k, v],
          ) => `${k} ${v.toFixed(2)}`).join(", ") || "–",
        )
      }.`
      : "Not measured in this folder (no load.json)."
  }</p>
<h2>Plots</h2>
${
    plots.map((p) =>
      `<figure id="${esc(p.name)}" class="plot">${p.svg}<figcaption>${
        esc(p.caption)
      }</figcaption></figure>`
    ).join("\n")
  }
${queueSection(queues)}
<h2>Manifest</h2><pre>${esc(manifest)}</pre>
<h2>Scenario</h2><pre>${esc(scenario)}</pre>
<h2>Machine</h2><pre>${esc(machine)}</pre>
</body></html>
`;
  await Deno.writeTextFile(`${out}/report.html`, html);
  return {
    html: `${out}/report.html`,
    markdown: `${out}/summary.md`,
    plots: plots.map((p) => `${out}/${p.name}.svg`),
  };
}
