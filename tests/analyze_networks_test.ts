// The analyze and report stages on a folder of several networks (`--networks K`):
// tests/fixtures/experiment-networks, written by tests/fixtures/make_experiment_networks.ts
// with known effects per network (ours-pctcp against ctor −30 %, −10 %, +5 %; ours-tor / ctor
// web response ×1.00 / ×1.05 / ×1.10, web download ×1.10 / ×1.20 / ×1.30).
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { analyzeFolder } from "../lib/experiment/analyze.ts";
import { summaryMarkdown, writeExperimentReport } from "../lib/experiment/report.ts";
import { t975 } from "../lib/stats/across.ts";

const FIXTURE = new URL("./fixtures/experiment-networks", import.meta.url).pathname;
const ARMS = ["ctor", "ours-tor", "ours-pctcp"];
const METRICS = ["web_response", "web_download", "bulk_download"];

// deno-lint-ignore no-explicit-any
type Json = any;

async function analyze(dir = FIXTURE): Promise<Json> {
  return JSON.parse(JSON.stringify(await analyzeFolder(dir)));
}

/** A folder of some of the fixture's runs (renumbered from 1), the manifest changed by `patch`. */
async function subset(runs: number[], patch: Record<string, unknown>): Promise<string> {
  const dir = await Deno.makeTempDir();
  const manifest = JSON.parse(await Deno.readTextFile(`${FIXTURE}/manifest.json`));
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify({ ...manifest, ...patch }));
  for (const arm of ARMS) {
    let pooled = "";
    for (const [i, r] of runs.entries()) {
      await Deno.mkdir(`${dir}/runs/r${i + 1}`, { recursive: true });
      const t = await Deno.readTextFile(`${FIXTURE}/runs/r${r}/records-${arm}.jsonl`);
      await Deno.writeTextFile(`${dir}/runs/r${i + 1}/records-${arm}.jsonl`, t);
      pooled += t;
    }
    await Deno.writeTextFile(`${dir}/records-${arm}.jsonl`, pooled);
  }
  return dir;
}

const ONE_NETWORK = {
  networks: 1,
  runs: 2,
  run_network: [1, 1],
  network_specs: undefined,
};

Deno.test("analyzeFolder gives each network's change from that network's runs alone", async () => {
  const s = await analyze();
  for (const k of METRICS) {
    const e = s.changes["ours-pctcp_vs_ctor"][k];
    assertEquals(e.per_network.map((r: Json) => r.network), [1, 2, 3]);
    assertEquals(e.per_network.map((r: Json) => r.runs), [[1, 2], [3, 4], [5, 6]]);
    assertEquals(e.per_network.map((r: Json) => r.p50.pct), [-30, -10, 5], k);
    for (const r of e.per_network) {
      assert(r.p50.ci[0] < r.p50.pct && r.p50.pct < r.p50.ci[1], `${k} ${r.network}: CI`);
      assert(r.p90 && Array.isArray(r.p90.ci), `${k} ${r.network}: p90 beside p50`);
    }
  }
  const web = s.changes["ours-pctcp_vs_ctor"].web_response.per_network;
  assertEquals(web.map((r: Json) => r.n), [
    { base: 30, arm: 30 },
    { base: 30, arm: 30 },
    { base: 30, arm: 16 },
  ]);
  // Network 3's ours-pctcp has 16 web samples, below its share (60 × 2 / 6 runs = 20).
  assertEquals(web.map((r: Json) => r.few_samples), [false, false, true]);
  assertEquals(web[2].min, 20);
  // Network 2's timed-out bulk fetch stays in its sample, censored: p90 is a lower bound.
  const bulk2 = s.changes["ours-pctcp_vs_ctor"].bulk_download.per_network[1];
  assertEquals(bulk2.n, { base: 10, arm: 10 });
  assertEquals(bulk2.p90.bound, "at-least");
  assertEquals(s.changes["ours-tor_vs_ctor"].web_response.per_network.map((r: Json) => r.p50.pct), [
    0,
    5,
    10,
  ]);
  assertEquals(s.networks.count, 3);
  assertEquals(s.networks.runs_per_network, 2);
  assertEquals(s.networks.specs.length, 3);
  assertStringIncludes(s.networks.specs[1], "network 2 (seed 1002)");
});

Deno.test("a network's row equals the pooled analysis of a folder of that network's runs only", async () => {
  // Same bootstrap (seeded), same censoring: network 2 analyzed alone gives the same numbers.
  const dir = await subset([3, 4], ONE_NETWORK);
  try {
    const alone = await analyze(dir);
    const all = await analyze();
    for (const name of ["ours-pctcp_vs_ctor", "ours-tor_vs_ctor"]) {
      for (const k of METRICS) {
        const row = all.changes[name][k].per_network[1];
        const pooled = alone.changes[name][k];
        for (const p of ["p50", "p75", "p90"]) {
          assertEquals(row[p].pct, pooled[p].pct, `${name} ${k} ${p}`);
          assertEquals(row[p].ci, pooled[p].ci, `${name} ${k} ${p} CI`);
          assertEquals(row[p].bound, pooled[p].bound, `${name} ${k} ${p} bound`);
        }
        assertEquals(row.n, pooled.n);
      }
    }
    for (const k of METRICS) {
      assertEquals(all.calibration[k].per_network[1].p50, alone.calibration[k].p50, k);
    }
    // One network: nothing of the per-network analysis appears.
    assertEquals(alone.networks, undefined);
    assertEquals(alone.changes["ours-pctcp_vs_ctor"].web_response.per_network, undefined);
    assertEquals(alone.changes["ours-pctcp_vs_ctor"].web_response.across_networks, undefined);
    assertEquals(alone.calibration.web_response.per_network, undefined);
    assert(
      !alone.doubts.some((d: string) => /across-network|networks disagree|on network \d/.test(d)),
      alone.doubts.join("\n"),
    );
    assert(!summaryMarkdown(alone).includes("per network"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("across_networks is the mean of the networks' p50 with a Student t interval, and the range", async () => {
  const s = await analyze();
  const v = [-30, -10, 5];
  const mean = (v[0]! + v[1]! + v[2]!) / 3;
  const sd = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
  const h = 4.303 * sd / Math.sqrt(3); // t(0.975, 2 df)
  assertEquals(t975(2), 4.303);
  for (const k of METRICS) {
    const a = s.changes["ours-pctcp_vs_ctor"][k].across_networks;
    assertEquals(a.n, 3);
    assertEquals(a.mean, Math.round(mean * 100) / 100);
    assertEquals(a.ci, [Math.round((mean - h) * 100) / 100, Math.round((mean + h) * 100) / 100]);
    assertEquals([a.min, a.max], [-30, 5]);
  }
  assertEquals(s.changes["ours-pctcp_vs_ctor"].web_response.across_networks.ci, [-55.29, 31.96]);
  const cal = s.calibration.web_download.across_networks;
  assertEquals([cal.mean, cal.min, cal.max], [1.2, 1.1, 1.3]);
  assert(cal.ci[0] < 1.2 && cal.ci[1] > 1.2);
  // The sentence.
  assert(
    s.sentences.includes(
      "ours-pctcp against ctor, web_response p50 across 3 networks: mean -11.7 % (95 % CI -55.3 .. +32.0 %), per network -30.0 .. +5.0 %",
    ),
    s.sentences.join("\n"),
  );
});

Deno.test("analyzeFolder's doubts say the across-network interval rests on few networks and when networks disagree in sign", async () => {
  const s = await analyze();
  const d = s.doubts as string[];
  assert(
    d.some((x) =>
      x.startsWith("the across-network intervals rest on 3 networks (Student t with 2 df")
    ),
    d.join("\n"),
  );
  for (const k of METRICS) {
    assert(
      d.includes(
        `ours-pctcp against ctor, ${k} p50: the networks disagree in sign (network 1 -30.0 %, network 2 -10.0 %, network 3 +5.0 %)`,
      ),
      k,
    );
  }
  // 0, +5, +10: no disagreement (a zero has no sign).
  assert(!d.some((x) => x.startsWith("ours-tor against ctor, web_response p50: the networks")));
  assert(
    d.some((x) =>
      x.startsWith(
        "few samples on network 3: ours-pctcp against ctor web_response rests on 30 / 16",
      )
    ),
  );
  // Network 3's ours-pctcp web has 16 samples against 30: the pooled web rows mix the
  // networks in other shares than ctor's; ours-tor's (30 / 30 / 30) do not.
  assert(
    d.includes(
      "ours-pctcp against ctor, web_response: the pooled numbers mix the networks in different shares (ctor 33 % / 33 % / 33 %, ours-pctcp 39 % / 39 % / 21 % of samples on networks 1 / 2 / 3), so they partly compare networks; the per-network rows and their mean do not",
    ),
    d.join("\n"),
  );
  assert(!d.some((x) => x.startsWith("ours-tor against ctor, web_response: the pooled")));
  // Two networks: no interval at all, and the doubt says so.
  const dir = await subset([1, 2, 3, 4], { networks: 2, runs: 4, run_network: [1, 1, 2, 2] });
  try {
    const two = await analyze(dir);
    const a = two.changes["ours-pctcp_vs_ctor"].web_response.across_networks;
    assertEquals([a.n, a.mean, a.ci, a.min, a.max], [2, -20, null, -30, -10]);
    assertStringIncludes(a.note, "no interval from 2 networks");
    assert(two.doubts.some((x: string) => x.startsWith("2 networks: no across-network interval")));
    assertStringIncludes(summaryMarkdown(two), "– (needs 3 networks)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the calibration verdict holds p50 to ±15 % pooled and per network, p90 unflagged", async () => {
  const s = await analyze();
  assertEquals(s.calibration, s.calibrations[0]);
  const r = (k: string) => s.calibration[k].per_network.map((x: Json) => x.p50.ratio);
  assertEquals(r("web_response"), [1, 1.05, 1.1]);
  assertEquals(r("web_download"), [1.1, 1.2, 1.3]);
  assertEquals(r("bulk_download"), [1, 1, 1]);
  const v = (s.sentences as string[]).find((x) => x.startsWith("calibration "))!;
  assertStringIncludes(v, "(goal ±15 % at p50; p90 informative)");
  // Pooled web download ×1.18 is outside, web response ×1.04 within; p90 ×1.30 not flagged.
  assertStringIncludes(v, "web_download p50 ×1.18 (outside ±15 %)");
  assertStringIncludes(v, "web_response p50 ×1.04,");
  assertStringIncludes(v, "web_download p90 ×1.30,");
  assertStringIncludes(
    v,
    "per network outside ±15 % at p50: web_download network 2 ×1.20, web_download network 3 ×1.30",
  );
  assert(!v.includes("web_response network"), v);
});

Deno.test("summaryMarkdown and report.html carry the per-network tables", async () => {
  const s = await analyze();
  const md = summaryMarkdown(s);
  assertStringIncludes(md, "| change | metric | network | n base / arm | p50 | 95 % CI |");
  assertStringIncludes(
    md,
    "| ours-pctcp vs ctor | web_response | 3 | 30 / 16 (few samples) | +5.0 % |",
  );
  assertStringIncludes(md, "| ours-pctcp vs ctor | web_response | mean of 3 |");
  assertStringIncludes(md, "| ours-tor / ctor | web_download | 2 | 30 / 30 | 1.20 |");
  assertStringIncludes(md, "Networks: 3 drawn, 2 runs on each");
  const out = await Deno.makeTempDir();
  try {
    await writeExperimentReport(FIXTURE, out);
    const html = await Deno.readTextFile(`${out}/report.html`);
    assertStringIncludes(html, "<h2>Change per network");
    assertStringIncludes(html, "<h2>Calibration per network");
    assertStringIncludes(html, "<td>mean of 3</td>");
    assertEquals(await Deno.readTextFile(`${out}/summary.md`), md);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
