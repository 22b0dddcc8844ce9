/**
 * The experiment's report: CDF plots (SVG) of web response, web download and bulk download
 * per arm, and one self-contained HTML page with the tables, plots and queue figures,
 * regenerated from the folder's files alone.
 * @module
 */

import { cdfSpec, type TimePoint, timeSeriesSpec, writePlot } from "../report/plots.ts";
import { readRecords } from "../stats/load.ts";
import { METRICS, metricSamples, summaryMarkdown } from "./interference.ts";

function esc(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
}

/** Writes cdf-*.svg and report.html into `out` from its records and summary. */
export async function writeReport(out: string): Promise<string> {
  const arms: string[] = [];
  const samples: Record<string, Awaited<ReturnType<typeof metricSamples>>> = {};
  for (const arm of ["tor", "pctcp", "mixed", "realtor"]) {
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
  const scenario = await Deno.readTextFile(`${out}/scenario.json`).catch(() => "{}");
  const machine = await Deno.readTextFile(`${out}/machine.json`).catch(() => "{}");
  const queueRows = Object.entries(queues).map(([arm, q]) => {
    const x = q as {
      relay_sockets_send_q_bytes?: { mean: number; p90: number | null; max: number | null };
      relay_to_relay_connections?: { max: number | null };
    };
    return `<tr><td>${arm}</td><td>${x.relay_to_relay_connections?.max ?? "–"}</td><td>${
      x.relay_sockets_send_q_bytes?.mean ?? "–"
    }</td><td>${x.relay_sockets_send_q_bytes?.p90 ?? "–"}</td><td>${
      x.relay_sockets_send_q_bytes?.max ?? "–"
    }</td></tr>`;
  }).join("\n");
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>pctcp interference experiment</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>Cross-circuit interference: tor vs pctcp</h1>
<p>Scenario <b>${esc(String(summary.scenario ?? ""))}</b>, pctcp ${
    esc(String(summary.version ?? ""))
  }, finished ${esc(String(summary.finished ?? ""))}.
Times are ms from the start of the stream (SOCKS included, as OnionPerf counts): response time is the first byte, download time the last.
Change is (pctcp − tor) / tor: negative means pctcp is faster. Intervals are 95 % bootstrap intervals.</p>
<h2>Summary</h2>
<pre>${esc(summaryMarkdown(summary))}</pre>
<p>Failed fetches: tor ${summary.errors?.tor?.failed ?? "?"} of ${
    summary.errors?.tor?.total ?? "?"
  }, pctcp ${summary.errors?.pctcp?.failed ?? "?"} of ${summary.errors?.pctcp?.total ?? "?"}.</p>
<h2>CDFs</h2>
${svgs.join("\n")}
<h2>Where queues build</h2>
<p>Sampled once a second with <code>ss</code>: TCP connections between relays and the bytes waiting in their kernel send queues.</p>
<table><tr><th>arm</th><th>relay-relay connections (max)</th><th>send-Q mean B</th><th>send-Q p90 B</th><th>send-Q max B</th></tr>
${queueRows}
</table>
<h2>Scenario</h2><pre>${esc(scenario)}</pre>
<h2>Machine</h2><pre>${esc(machine)}</pre>
</body></html>
`;
  await Deno.writeTextFile(`${out}/report.html`, html);
  return `${out}/report.html`;
}
