/**
 * The experiment's report: CDF plots (SVG) of web response, web download and bulk download
 * per arm, and one self-contained HTML page with the tables, plots and queue figures,
 * regenerated from the folder's files alone.
 * @module
 */

import { cdfSpec, type TimePoint, timeSeriesSpec, writePlot } from "../report/plots.ts";
import { readRecords } from "../stats/load.ts";
import { ARMS, METRICS, metricSamples, type QueuePoint, summaryMarkdown } from "./run.ts";

function esc(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
}

/** Writes cdf-*.svg and report.html into `out` from its records and summary. */
export async function writeReport(out: string): Promise<string> {
  const arms: string[] = [];
  const samples: Record<string, Awaited<ReturnType<typeof metricSamples>>> = {};
  for (const arm of [...ARMS, "realtor"]) {
    try {
      samples[arm] = await metricSamples(`${out}/records-${arm}.jsonl`);
      arms.push(arm);
    } catch { /* arm not run */ }
  }
  const svgs: string[] = [];
  for (const k of Object.keys(METRICS) as (keyof typeof METRICS)[]) {
    const title = k.replace("_", " ") + " time";
    const spec = cdfSpec(
      title,
      "ms from stream start",
      arms.map((a) => ({ name: a, values: samples[a]![k] })),
    );
    svgs.push(await writePlot(`${out}/cdf-${k}`, spec));
  }
  // A time series of each arm's web response times, to see warm-up and drift.
  const points: TimePoint[] = [];
  for (const arm of arms) {
    await readRecords([`${out}/records-${arm}.jsonl`], (r) => {
      const v = r.phases_ms.first_byte;
      if (r.label === "web" && typeof v === "number") {
        points.push({ time: r.start, value: v, group: arm, ok: r.outcome === "ok" });
      }
    });
  }
  svgs.push(
    await writePlot(
      `${out}/timeseries-web_response`,
      timeSeriesSpec("web response time over the run", "ms", points),
    ),
  );
  const summary = JSON.parse(await Deno.readTextFile(`${out}/summary.json`).catch(() => "{}"));
  const queues = JSON.parse(await Deno.readTextFile(`${out}/queues.json`).catch(() => "{}"));
  // Where bytes wait over time, per arm (first run): one panel per arm, one line per place.
  const qpoints: { arm: string; t: number; place: string; kib: number }[] = [];
  for (const [arm, q] of Object.entries(queues)) {
    const first = (q as { series?: { points: QueuePoint[] }[] }).series?.[0]?.points ?? [];
    for (const p of first) {
      const places: [string, number | undefined][] = [
        ["circuit queues", p.circuit_queues],
        ["output buffers", p.outbufs],
        ["kernel not sent", p.kernel_notsent],
        ["kernel unacked", p.kernel_unacked],
        ["kernel receive queues", p.kernel_recv_q],
      ];
      for (const [place, v] of places) {
        if (typeof v === "number") qpoints.push({ arm, t: p.t / 1000, place, kib: v / 1024 });
      }
    }
  }
  if (qpoints.length) {
    svgs.push(
      await writePlot(
        `${out}/queues`,
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
        } as Parameters<typeof writePlot>[1],
      ),
    );
  }
  const scenario = await Deno.readTextFile(`${out}/scenario.json`).catch(() => "{}");
  const machine = await Deno.readTextFile(`${out}/machine.json`).catch(() => "{}");
  const queueRows = Object.entries(queues).map(([arm, q]) => {
    const x = q as {
      relay_sockets_send_q_bytes?: { mean: number; p90: number | null; max: number | null };
      relay_to_relay_connections?: { max: number | null };
      where_bytes_wait?: Record<string, number | null>;
    };
    const w = x.where_bytes_wait ?? {};
    return `<tr><td>${arm}</td><td>${x.relay_to_relay_connections?.max ?? "–"}</td><td>${
      x.relay_sockets_send_q_bytes?.mean ?? "–"
    }</td><td>${x.relay_sockets_send_q_bytes?.p90 ?? "–"}</td><td>${
      x.relay_sockets_send_q_bytes?.max ?? "–"
    }</td><td>${w.circuit_queues_mean_bytes ?? "–"}</td><td>${
      w.outbufs_mean_bytes ?? "–"
    }</td><td>${w.kernel_notsent_mean_bytes ?? "–"}</td><td>${
      w.kernel_unacked_mean_bytes ?? "–"
    }</td><td>${w.kernel_recv_q_mean_bytes ?? "–"}</td></tr>`;
  }).join("\n");
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>pctcp interference experiment</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>Cross-circuit interference: ${
    esc(Object.keys(summary.arms ?? {}).join(", ") || "tor vs pctcp")
  }</h1>
<p>Scenario <b>${esc(String(summary.scenario ?? ""))}</b>, pctcp ${
    esc(String(summary.version ?? ""))
  }, finished ${esc(String(summary.finished ?? ""))}.
Times are ms from the start of the stream (SOCKS included, as OnionPerf counts): response time is the first byte, download time the last.
Change is (arm − base) / base: negative means the arm is faster. Intervals are 95 % bootstrap intervals of the pooled records; with several runs, "across runs" intervals are 95 % t intervals of the per-run values.
Calibration is our tor transport (KIST first) divided by Debian's C tor on the same workload (1 = same).</p>
<h2>Summary</h2>
<pre>${esc(summaryMarkdown(summary))}</pre>
<p>Failed fetches: ${
    Object.entries(summary.errors ?? {}).map(([a, e]) =>
      `${esc(a)} ${(e as { failed?: number }).failed ?? "?"} of ${
        (e as { total?: number }).total ?? "?"
      }`
    ).join(", ")
  }.</p>
<h2>CDFs</h2>
${svgs.join("\n")}
<h2>Where queues build</h2>
<p>Sampled once a second: with <code>ss -tin</code> the TCP connections between relays and the bytes in their kernel send queues (not yet sent apart from sent and unacknowledged); from our relays' statistics the bytes in their circuit queues and output buffers (C tor does not report these). The plot above ("where bytes wait") shows the first run over time.</p>
<table><tr><th>arm</th><th>relay-relay connections (max)</th><th>send-Q mean B</th><th>send-Q p90 B</th><th>send-Q max B</th><th>circuit queues mean B</th><th>output buffers mean B</th><th>kernel not-sent mean B</th><th>kernel unacked mean B</th><th>kernel receive queues mean B</th></tr>
${queueRows}
</table>
<h2>Scenario</h2><pre>${esc(scenario)}</pre>
<h2>Machine</h2><pre>${esc(machine)}</pre>
</body></html>
`;
  await Deno.writeTextFile(`${out}/report.html`, html);
  return `${out}/report.html`;
}
