// The analyze and report stages on a committed results folder (tests/fixtures/experiment-small,
// its HOW.md says how it was made): analyze gives the committed summary.json; report gives
// the committed summary.md and writes only to its own folder; HOW.md's commands reproduce
// summary.md's numbers.
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { pctcp } from "./_cli.ts";
import { analyzeFolder, selfCheck } from "../lib/experiment/analyze.ts";
import { summaryMarkdown, throughputMbps } from "../lib/experiment/report.ts";
import { loadScenario } from "../lib/experiment/scenario.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";

const FIXTURE = new URL("./fixtures/experiment-small", import.meta.url).pathname;
const GOLDEN = new URL("./fixtures/experiment-small.summary.json", import.meta.url).pathname;

async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else {
        const h = await crypto.subtle.digest("SHA-256", await Deno.readFile(p));
        out[p.slice(dir.length)] = Array.from(new Uint8Array(h), (b) => b.toString(16)).join("");
      }
    }
  };
  await walk(dir);
  return out;
}

Deno.test("analyzeFolder on the committed folder equals the committed summary.json", async () => {
  const got = await analyzeFolder(FIXTURE);
  const want = JSON.parse(await Deno.readTextFile(GOLDEN));
  assertEquals(JSON.parse(JSON.stringify(got)), want);
});

Deno.test("analyzeFolder counts timeouts, failures and unfinished fetches per arm and keeps timeouts censored", async () => {
  const s = JSON.parse(JSON.stringify(await analyzeFolder(FIXTURE)));
  assertEquals(s.counts.tor.web, { fetches: 42, ok: 41, timeouts: 1, failed: 0, unfinished: 0 });
  assertEquals(s.counts.tor.bulk.failed, 1);
  assertEquals(s.counts.pctcp.bulk.unfinished, 1);
  assertEquals(s.counts.pctcp.web.timeouts, 1);
  // The tor timeout had no first byte: censored in both web metrics (n counts it).
  assertEquals(s.arms.tor.web_response.n, 42);
  assertEquals(s.arms.tor.web_download.n, 42);
  // The pctcp timeout had its first byte: a response time, censored download.
  assertEquals(s.arms.pctcp.web_response.n, 74);
  // The reset bulk fetch is not timed; the unfinished one neither.
  assertEquals(s.arms.tor.bulk_download.n, 14);
  assertEquals(s.arms.pctcp.bulk_download.n, 11);
  assert(s.arms.tor.bulk_download.few_samples && s.arms.tor.bulk_download.min === 20);
  assertEquals(s.network.kind, "loopback");
  assertStringIncludes(s.base.words, "before 0.3.2");
  assertEquals(s.runs, 3);
  assert(Array.isArray(s.arms.tor.web_response.p50.across_runs.ci), "3 runs give an interval");
  assert(s.doubts.some((d: string) => d.startsWith("few samples: tor bulk_download")));
});

Deno.test("analyzeFolder gives no across-run interval from 2 runs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/runs`);
    for (const f of ["manifest.json", "scenario.json", "load.json"]) {
      await Deno.copyFile(`${FIXTURE}/${f}`, `${dir}/${f}`);
    }
    for (const arm of ["tor", "pctcp"]) {
      let pooled = "";
      for (const r of [1, 2]) {
        await Deno.mkdir(`${dir}/runs/r${r}`, { recursive: true });
        const t = await Deno.readTextFile(`${FIXTURE}/runs/r${r}/records-${arm}.jsonl`);
        await Deno.writeTextFile(`${dir}/runs/r${r}/records-${arm}.jsonl`, t);
        pooled += t;
      }
      await Deno.writeTextFile(`${dir}/records-${arm}.jsonl`, pooled);
    }
    const s = JSON.parse(JSON.stringify(await analyzeFolder(dir)));
    assertEquals(s.runs, 2);
    assertEquals(s.arms.tor.web_response.p50.across_runs.ci, null);
    assertEquals(s.changes.pctcp_vs_tor.web_response.p50.across_runs.ci, null);
    const md = summaryMarkdown(s);
    assert(!md.includes("across runs 95 % CI"), md);
    assertStringIncludes(md, "no across-run interval");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("summaryMarkdown of the golden summary equals the committed summary.md", async () => {
  const want = await Deno.readTextFile(`${FIXTURE}/summary.md`);
  assertEquals(summaryMarkdown(JSON.parse(await Deno.readTextFile(GOLDEN))), want);
  for (const w of ["Network: loopback", "Baseline: tor", "few samples", "Runs: 3"]) {
    assertStringIncludes(want, w);
  }
});

Deno.test("pctcp report writes its own folder and leaves the experiment folder unchanged", async () => {
  const out = await Deno.makeTempDir();
  try {
    const before = await treeDigest(FIXTURE);
    const r = await pctcp("report", FIXTURE, "--out", out);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await treeDigest(FIXTURE), before);
    assertEquals(
      await Deno.readTextFile(`${out}/summary.md`),
      await Deno.readTextFile(`${FIXTURE}/summary.md`),
    );
    const html = await Deno.readTextFile(`${out}/report.html`);
    const tables = html.match(/<table>[\s\S]*?<\/table>/g) ?? [];
    assert(tables.length >= 3, "HTML tables");
    for (const t of tables) assert(!/\d\.\d{3,}/.test(t), `rounded numbers: ${t}`);
    assert(!html.includes("<pre>| "), "no Markdown tables in <pre>");
    for (
      const id of [
        "ecdf-web-51200-first_byte",
        "ecdf-web-51200-last_byte",
        "ecdf-bulk-1048576-last_byte",
        "ecdf-throughput",
        "ecdf-circuit-build",
        "errors-by-class",
        "errors-over-time",
        "band-web_response",
        "timeseries-web_response",
      ]
    ) assert(html.includes(`id="${id}"`), id);
    assertStringIncludes(html, "Network: loopback");
    assertStringIncludes(html, "few samples");
    const ex = await pctcp("experiment", "analyze", FIXTURE, "--out", `${out}/s.json`);
    assertEquals(ex.code, 0, ex.stderr);
    assertEquals(
      JSON.parse(await Deno.readTextFile(`${out}/s.json`)),
      JSON.parse(await Deno.readTextFile(GOLDEN)),
    );
    assertEquals(await treeDigest(FIXTURE), before);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/** Runs HOW.md's stats and compare commands on DIR and checks them against its summary.md. */
async function checkHow(dir: string): Promise<number> {
  const how = await Deno.readTextFile(`${dir}/HOW.md`);
  const md = await Deno.readTextFile(`${dir}/summary.md`);
  const cmds = how.split("\n").filter((l) => /^ {4}pctcp (stats|compare)/.test(l)).map((l) =>
    l.trim().split(/\s+/).slice(1).map((a) => a === "DIR" ? dir : a)
  );
  assertEquals(cmds.length, 2, `${dir}/HOW.md names a stats and a compare command`);
  // summary.md's arm table: the header says where p50, its interval and p90 are.
  type Col = { p50: number; ci: number; p90: number };
  const rows = new Map<string, { c: string[]; col: Col }>();
  let col: Col | undefined;
  for (const l of md.split("\n")) {
    const c = l.split("|").map((x) => x.trim());
    if (c[1] === "arm" && c.includes("p50 ms")) {
      const p50 = c.indexOf("p50 ms");
      col = { p50, ci: p50 + 1, p90: c.indexOf("p90 ms") };
    } else if (col && c.length > col.p90 && /^(web|bulk)_/.test(c[2] ?? "")) {
      rows.set(`${c[1]}|${c[2]}`, { c, col });
    } else if (!l.startsWith("|")) col = undefined;
  }
  assert(rows.size >= 6, `${dir}: arm rows in summary.md`);
  const stats = await pctcp(...cmds[0]!);
  assertEquals(stats.code, 0, stats.stderr);
  const json = JSON.parse(stats.stdout) as Record<string, string | number>[];
  const metricOf = (label: unknown, metric: unknown) =>
    label === "web"
      ? (metric === "response" ? "web_response" : "web_download")
      : metric === "download"
      ? "bulk_download"
      : undefined;
  let matched = 0;
  for (const r of json) {
    const k = metricOf(r.label, r.metric);
    const found = k && rows.get(`${r.arm}|${k}`);
    if (!found) continue;
    const { c: row, col } = found;
    const what = `${dir}: ${r.arm} ${k}`;
    assertEquals(Number(row[col.p50]), Math.round(Number(r.p50_ms)), `${what} p50`);
    assertEquals(
      row[col.ci],
      `${Math.round(Number(r.p50_lo))} .. ${Math.round(Number(r.p50_hi))}`,
      `${what} CI`,
    );
    // A censored p90 (timeouts at their timeout) is a lower bound: "≥ 90000" here, and stats
    // names it in lower_bounds.
    const p90 = row[col.p90]!;
    assertEquals(Number(p90.replace(/^[≥≤] /, "")), Math.round(Number(r.p90_ms)), `${what} p90`);
    assertEquals(
      p90.startsWith("≥"),
      String(r.lower_bounds ?? "").split(" ").includes("p90"),
      `${what} p90 bound`,
    );
    matched++;
  }
  assertEquals(matched, rows.size, `${dir}: every arm and metric of summary.md`);
  const cmp = await pctcp(...cmds[1]!);
  assertEquals(cmp.code, 0, cmp.stderr);
  // summary.md's change rows pctcp against tor (old and new spelling) and compare's section.
  const section = cmp.stdout.split(/\n(?=\S+: \S+ against )/);
  for (const l of md.split("\n").filter((x) => /^\| pctcp(_vs_| vs )tor \|/.test(x))) {
    const c = l.split("|").map((x) => x.trim());
    const pctCell = c.find((x, i) => i > 2 && x.endsWith("%") && !x.includes(".."))!;
    const pct = Math.abs(Number(pctCell.replace(/[+ %≥≤?]/g, "")));
    const [label, metric] = c[2]!.split("_");
    const part = section.find((x) => x.startsWith(`${label}: pctcp against tor`));
    assert(part, `${label}: pctcp against tor in compare's output:\n${cmp.stdout}`);
    const line = part.split("\n").find((x) =>
      x.startsWith(`${label} ${metric} time`) && x.includes("at the median")
    );
    assert(line, `${label} ${metric} in\n${part}`);
    assert(
      line.includes(`${pct.toFixed(0)} %`) || line.includes(`${pct.toFixed(1)} %`),
      `${dir}: ${line} vs ${pct}`,
    );
  }
  return matched;
}

Deno.test("HOW.md's stats and compare commands reproduce summary.md's numbers (fixture and shipped results)", async () => {
  assertEquals(await checkHow(FIXTURE), 6);
  const results = new URL("../measurements/results", import.meta.url).pathname;
  let shipped = 0;
  for await (const e of Deno.readDir(results)) {
    if (e.isDirectory) {
      await checkHow(`${results}/${e.name}`);
      shipped++;
    }
  }
  assert(shipped >= 2, `${shipped} shipped folders`);
});

Deno.test("pctcp stats on an experiment folder groups by arm, one row per arm and workload", async () => {
  const r = await pctcp("stats", FIXTURE, "--format", "json");
  assertEquals(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { label: string; arm: string; metric: string }[];
  const keys = rows.filter((x) => x.metric === "download").map((x) => `${x.label}/${x.arm}`);
  assertEquals(keys.sort(), ["bulk/pctcp", "bulk/tor", "web/pctcp", "web/tor"]);
  assertStringIncludes(r.stderr, "grouped by workload and arm");
});

Deno.test("selfCheck says the machine was the bottleneck above its thresholds, and why", () => {
  const calm = selfCheck([{
    arm: "tor",
    run: 1,
    seconds: 10,
    cpu_busy: 0.3,
    cpus: 2,
    emulator_late_p99_ms: 1.2,
    relay_cpu: { relay2: 0.4 },
  }]);
  assertEquals(calm.bottleneck, false);
  const hot = selfCheck([{
    arm: "pctcp",
    run: 1,
    seconds: 10,
    cpu_busy: 0.97,
    cpus: 2,
    emulator_late_p99_ms: 25,
    relay_cpu: { relay2: 0.95 },
  }]);
  assertEquals(hot.bottleneck, true);
  assertEquals((hot.reasons as string[]).length, 3);
  assertEquals(selfCheck([]).bottleneck, null);
});

Deno.test("throughputMbps follows OnionPerf: 512 KiB between 10 % and 20 % of 5 MiB", () => {
  const r = {
    outcome: "ok",
    size: 5 * 1024 * 1024,
    progress_ms: { "10": 1000, "20": 2000, "50": 3000, "100": 9000 },
  } as unknown as MeasureRecord;
  assertEquals(throughputMbps(r), 4.194304);
  const m = { ...r, size: 1024 * 1024 } as MeasureRecord;
  assertEquals(throughputMbps(m), 4.194304 / 6);
  assertEquals(throughputMbps({ ...r, outcome: "timeout" } as MeasureRecord), undefined);
});

Deno.test("loadScenario reads minSamples and maxDurationS (and the issue's spelling), and refuses bad ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = JSON.parse(
      await Deno.readTextFile(new URL("./fixtures/tiny.json", import.meta.url)),
    );
    const f = `${dir}/s.json`;
    await Deno.writeTextFile(
      f,
      JSON.stringify({
        ...base,
        maxDurationS: undefined,
        min_samples: { bulk_download: 5 },
        max_duration: 9,
      }),
    );
    const s = await loadScenario(f);
    assertEquals(s.minSamples, { bulk_download: 5 });
    assertEquals(s.maxDurationS, 9);
    await Deno.writeTextFile(f, JSON.stringify({ ...base, minSamples: { bulk: 5 } }));
    let err = "";
    await loadScenario(f).catch((e) => err = (e as Error).message);
    assertStringIncludes(err, "no metric bulk");
    await Deno.writeTextFile(f, JSON.stringify({ ...base, maxDurationS: -1 }));
    err = "";
    await loadScenario(f).catch((e) => err = (e as Error).message);
    assertStringIncludes(err, "maxDurationS must be > 0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
