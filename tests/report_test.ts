import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { fromOnionPerf, toOnionPerf } from "../lib/report/onionperf.ts";
import {
  asciiCdf,
  binTimeSeries,
  cdfSpec,
  ecdf,
  renderSvg,
  svgToPng,
} from "../lib/report/plots.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { pctcp } from "./_cli.ts";

function rec(i: number, over: Partial<MeasureRecord> = {}): MeasureRecord {
  const fb = 10 + (i % 7), lb = 100 + (i % 13) * 3;
  return {
    v: 1,
    run: "r-1",
    id: i,
    label: i % 2 ? "web" : "bulk",
    transport: i % 3 ? "tor" : "pctcp",
    url: "http://127.0.0.1:1/bytes/51200",
    size: 51200,
    start: new Date(Date.UTC(2026, 10, 24, 0, 0, i)).toISOString(),
    phases_ms: { tcp: 0.2, socks: 2, request: 2.1, first_byte: fb, last_byte: lb },
    progress_ms: { "10": fb, "50": (fb + lb) / 2, "100": lb },
    marks_ms: { "10240": fb, "51200": lb },
    bytes: 51200,
    status: 200,
    sha256: null,
    sha256_ok: true,
    circuit: { id: String(i % 4), path: ["relay1", "relay2", "relay3"], build_ms: 5 },
    source_port: 40000 + i,
    outcome: i % 10 === 0 ? "timeout" : "ok",
    error: i % 10 === 0 ? "no answer" : null,
    ...over,
  };
}

Deno.test("toOnionPerf and fromOnionPerf keep the times, sizes, outcomes and circuits", () => {
  const recs = Array.from({ length: 30 }, (_, i) => rec(i + 1));
  const doc = toOnionPerf(recs, "host1");
  assertEquals(doc.type, "onionperf");
  assertEquals(doc.version, "3.1");
  const streams = Object.values(doc.data.host1!.tgen.streams);
  assertEquals(streams.length, 30);
  assertEquals(
    streams[0]!.elapsed_seconds.payload_progress_recv!["1.0"],
    recs[0]!.phases_ms.last_byte! / 1000,
  );
  assert(Object.keys(doc.data.host1!.tor.circuits).length === 4);
  const back = fromOnionPerf(JSON.parse(JSON.stringify(doc)));
  assertEquals(back.length, 30);
  for (const [i, r] of back.entries()) {
    assertEquals(r.phases_ms.first_byte, recs[i]!.phases_ms.first_byte);
    assertEquals(r.phases_ms.last_byte, recs[i]!.phases_ms.last_byte);
    assertEquals(r.outcome, recs[i]!.outcome === "ok" ? "ok" : "timeout");
    assertEquals(r.size, 51200);
    assertEquals(r.circuit?.path, ["relay1", "relay2", "relay3"]);
  }
  let threw = false;
  try {
    fromOnionPerf({ type: "other" });
  } catch {
    threw = true;
  }
  assert(threw);
});

Deno.test("plots render to SVG and PNG without a browser; the ASCII CDF has a row per decile", async () => {
  const svg = await renderSvg(
    cdfSpec("t", "ms", [{ name: "a", values: [1, 2, 3, 4] }, { name: "b", values: [2, 4, 6] }]),
  );
  assertStringIncludes(svg, "<svg");
  assertStringIncludes(svg, "cumulative fraction");
  const png = (await svgToPng(svg, 300))!;
  assertEquals(Array.from(png.subarray(1, 4)), [0x50, 0x4e, 0x47]);
  assertEquals(ecdf([3, 1, 2]).at(-1), { x: 3, p: 1 });
  const a = asciiCdf("x", [{ name: "a", values: [1, 2, 3] }]);
  assertEquals(a.split("\n").filter((l) => /^\d\.\d \|/.test(l)).length, 10);
});

Deno.test("export csv always has the error class; export onionperf, import and report a folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/runs.jsonl`;
    await Deno.writeTextFile(
      file,
      Array.from({ length: 40 }, (_, i) => JSON.stringify(rec(i + 1))).join("\n") + "\n{bad\n",
    );
    const csv = await pctcp("export", file);
    assertEquals(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trim().split("\n");
    assertEquals(lines.length, 41);
    assert(lines[0]!.endsWith("outcome,error"));
    assert(lines.some((l) => l.includes(",timeout,no answer")));
    assertStringIncludes(csv.stderr, `${file}:41: skipped`);
    const op = await pctcp("export", file, "--format", "onionperf", "--out", `${dir}/op.json`);
    assertEquals(op.code, 0, op.stderr);
    const imp = await pctcp(
      "import",
      "onionperf",
      `${dir}/op.json`,
      "--out",
      `${dir}/imported.jsonl`,
    );
    assertEquals(imp.code, 0, imp.stderr);
    assertEquals(JSON.parse(imp.stdout).imported, 40);
    const rep = await pctcp("report", dir);
    assertEquals(rep.code, 0, rep.stderr);
    const html = await Deno.readTextFile(`${dir}/report.html`);
    assert((html.match(/<svg/g) ?? []).length >= 4, "CDFs, box plot and time series");
    for (
      const f of ["cdf-web-download.png", "box-download-by-size.png", "timeseries-download.svg"]
    ) {
      assert((await Deno.stat(`${dir}/${f}`)).size > 0, f);
    }
    const md = await pctcp("stats", file, "--format", "markdown");
    assertStringIncludes(md.stdout, "| label | transport |");
    const filtered = await pctcp("stats", file, "--format", "json", "--outcome", "timeout");
    const rows = JSON.parse(filtered.stdout);
    assert(rows.every((r: { ok: number }) => r.ok === 0));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report over a glob of daily files: one CDF per arm, a time series of both, the paired comparison", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/daily`);
    let id = 0;
    for (const day of [24, 25, 26]) {
      const lines: string[] = [];
      for (let block = 0; block < 20; block++) {
        for (const arm of ["tor", "pctcp"]) {
          id++;
          const lb = (arm === "pctcp" ? 200 : 300) + (id % 17) * 5;
          lines.push(JSON.stringify(rec(id, {
            label: "web",
            run: `r-202611${day}`,
            start: new Date(Date.UTC(2026, 10, day, 1, block, arm === "tor" ? 0 : 30))
              .toISOString(),
            phases_ms: { first_byte: lb / 4, last_byte: lb },
            outcome: arm === "pctcp" && block === 3 ? "timeout" : "ok",
            error: arm === "pctcp" && block === 3 ? "no answer within 2000 ms" : null,
            arm,
            arm_block: block,
            worker: 0,
          })));
        }
      }
      await Deno.writeTextFile(`${dir}/daily/measure-202611${day}.jsonl`, lines.join("\n") + "\n");
    }
    const out = `${dir}/report`;
    const r = await pctcp(
      "report",
      `${dir}/daily/measure-*.jsonl`,
      "--out",
      out,
      "--baseline",
      "tor",
    );
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim(), `${out}/report.html`);
    const html = await Deno.readTextFile(`${out}/report.html`);
    const has = (text: string, part: string) => assert(text.includes(part), `missing: ${part}`);
    has(html, "120 records from 3 file(s)");
    has(html, "web: pctcp against tor, paired by time block");
    // Three blocks lost their pctcp fetch to a timeout: left out of the pairing, said so.
    has(html, "57 paired blocks (3 unpaired left out)");
    has(html, "pctcp: 60 fetches, 57 ok, 3 timed out");
    const cdfSvg = await Deno.readTextFile(`${out}/cdf-web-download.svg`);
    has(cdfSvg, "pctcp (n=57)");
    has(cdfSvg, "tor (n=60)");
    const ts = await Deno.readTextFile(`${out}/timeseries-download.svg`);
    has(ts, "web/pctcp");
    has(ts, "web/tor");
    // A folder is not a glob: without --out, files need a folder.
    const bad = await pctcp("report", `${dir}/daily/measure-20261124.jsonl`);
    assertEquals(bad.code, 2);
    const none = await pctcp("report", `${dir}/daily/weekly-*.jsonl`, "--out", out);
    assertEquals(none.code, 1);
    assertStringIncludes(none.stderr, "no file matches");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("binTimeSeries gives per group and bin the median of successes and the failures", () => {
  const pts = Array.from({ length: 400 }, (_, i) => ({
    time: new Date(Date.UTC(2026, 10, 24) + i * 60_000).toISOString(),
    value: i % 2 ? 100 : 300,
    group: i % 2 ? "a" : "b",
    ok: i % 10 !== 0,
  }));
  const bins = binTimeSeries(pts, 10);
  assert(bins.length >= 18 && bins.length <= 22, `${bins.length} bins`);
  assert(bins.filter((b) => b.group === "a").every((b) => b.value === 100));
  assertEquals(bins.reduce((a, b) => a + b.failed, 0), 40);
  assertEquals(bins.reduce((a, b) => a + b.n, 0), 360);
});
