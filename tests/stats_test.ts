import { assert, assertEquals, assertRejects, assertStringIncludes } from "./_assert.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { estimate, exclusionWarning, Summarizer } from "../lib/stats/summary.ts";
import { boundedPercentile, estimateSample, formatBound, sortSample } from "../lib/stats/censor.ts";
import {
  compareSamples,
  compareSampleSets,
  describeChange,
  describeFactor,
  mannWhitney,
} from "../lib/stats/compare.ts";
import { readRecords } from "../lib/stats/load.ts";
import { filterRecord } from "../lib/stats/filter.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";

function rec(over: Partial<MeasureRecord>): MeasureRecord {
  return {
    v: 1,
    run: "r",
    id: 1,
    label: "web",
    transport: "tor",
    url: "http://x/bytes/1",
    size: 1,
    start: "2026-11-24T00:00:00.000Z",
    phases_ms: { first_byte: 10, last_byte: 20, request: 2 },
    progress_ms: {},
    marks_ms: {},
    bytes: 1,
    status: 200,
    sha256: null,
    sha256_ok: null,
    circuit: { id: "1", path: ["relay1", "relay2", "relay3"], build_ms: 5 },
    source_port: 1,
    outcome: "ok",
    error: null,
    ...over,
  };
}

Deno.test("percentile uses linear interpolation (type 7)", () => {
  assertEquals(percentile([1, 2, 3, 4], 50), 2.5);
  assertEquals(Math.round(percentile([1, 2, 3, 4], 90) * 1000) / 1000, 3.7);
  assertEquals(percentile([5], 99), 5);
  assert(Number.isNaN(percentile([], 50)));
});

Deno.test("estimate gives intervals that contain the value and shrink with n", () => {
  const small = Float64Array.from({ length: 50 }, (_, i) => i).sort();
  const big = Float64Array.from({ length: 30000 }, (_, i) => i % 50).sort();
  const [e1] = estimate(small, [50]);
  const [e2] = estimate(big, [50]);
  assert(e1!.lo <= e1!.value && e1!.value <= e1!.hi);
  assert(e2!.lo <= e2!.value && e2!.value <= e2!.hi);
  assert(e2!.hi - e2!.lo < e1!.hi - e1!.lo);
});

Deno.test("Summarizer counts failures apart and measures tgen from the request", () => {
  const s = new Summarizer("tgen");
  s.add(rec({}));
  s.add(rec({ outcome: "timeout", error: "x" }));
  const [g] = s.summaries();
  assertEquals(g!.count, 2);
  assertEquals(g!.ok, 1);
  assertEquals(g!.errors, { timeout: 1 });
  assertEquals(g!.response.find((e) => e.p === 50)!.value, 8);
});

Deno.test("compareSamples finds a halving with a tight interval and a tiny U-test p", () => {
  const base = Array.from({ length: 200 }, (_, i) => 100 + (i % 20));
  const other = base.map((x) => x / 2);
  const c = compareSamples(base, other);
  const med = c.changes.find((x) => x.p === 50)!;
  assert(Math.abs(med.changePct + 50) < 0.01, String(med.changePct));
  assert(med.lo <= -45 && med.hi >= -55 && med.hi < 0);
  assert(c.pValue < 1e-6);
  assert(
    describeChange("web response time", med).startsWith(
      "web response time improved by 50 % at the median",
    ),
  );
  assert(describeFactor("tor", "pctcp", c).startsWith("pctcp ran 2.00"));
  assert(mannWhitney([1, 2, 3], [1, 2, 3]) > 0.5);
});

Deno.test("readRecords reports malformed lines by file and line and keeps going", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = `${dir}/r.jsonl`;
    await Deno.writeTextFile(
      f,
      [
        JSON.stringify(rec({})),
        "{not json",
        JSON.stringify({ foo: 1 }),
        JSON.stringify(rec({ id: 2 })),
      ].join("\n") + "\n",
    );
    const seen: number[] = [];
    const res = await readRecords([f], (r) => seen.push(r.id));
    assertEquals(seen, [1, 2]);
    assertEquals(res.badCount, 2);
    assertEquals(res.bad.map((b) => b.line), [2, 3]);
    assertEquals(res.bad[0]!.file, f);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("filterRecord filters by relay, window and outcome", () => {
  const r = rec({});
  assert(filterRecord(r, { relays: ["relay2"] }));
  assert(!filterRecord(r, { excludeRelays: ["RELAY2"] }));
  assert(!filterRecord(r, { since: new Date("2027-01-01") }));
  assert(filterRecord(r, { until: new Date("2027-01-01"), outcomes: ["ok"] }));
  assert(!filterRecord(r, { outcomes: ["timeout"] }));
  const armed = rec({ arm: "pctcp", arm_circuit: { n: 2, reason: "age", since: "", first: true } });
  assert(!filterRecord(armed, { excludeCircuitFirst: true }));
  assert(filterRecord(armed, { arms: ["pctcp"] }) && !filterRecord(armed, { arms: ["tor"] }));
  assert(!filterRecord(r, { arms: ["pctcp"] }));
});

Deno.test("readRecords expands globs and folders, skips run-settings files, refuses an empty glob", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/2026/11`, { recursive: true });
    await Deno.writeTextFile(`${dir}/daily-20261124.jsonl`, JSON.stringify(rec({ id: 1 })) + "\n");
    await Deno.writeTextFile(`${dir}/daily-20261125.jsonl`, JSON.stringify(rec({ id: 2 })) + "\n");
    await Deno.writeTextFile(
      `${dir}/daily-20261125.jsonl.runs.jsonl`,
      JSON.stringify({ type: "run", run: "r" }) + "\n",
    );
    await Deno.writeTextFile(`${dir}/2026/11/deep.jsonl`, JSON.stringify(rec({ id: 3 })) + "\n");
    const ids = async (names: string[]) => {
      const seen: number[] = [];
      const res = await readRecords(names, (r) => seen.push(r.id));
      return { seen, files: res.files.map((f) => f.slice(dir.length + 1)) };
    };
    assertEquals(await ids([`${dir}/daily-*.jsonl`]), {
      seen: [1, 2],
      files: ["daily-20261124.jsonl", "daily-20261125.jsonl"],
    });
    assertEquals((await ids([`${dir}/**/*.jsonl`])).seen.sort(), [1, 2, 3]);
    assertEquals((await ids([`${dir}/daily-2026112[5].jsonl`])).seen, [2]);
    assertEquals((await ids([dir])).seen, [1, 2]);
    await assertRejects(() => readRecords([`${dir}/weekly-*.jsonl`], () => {}), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("estimateSample marks the percentiles that reach a censored timeout as lower bounds", () => {
  const sample = { values: [1, 2, 3, 4, 5, 6, 7, 8], censoredAt: [50, 50] };
  const est = estimateSample(sample, [50, 75, 80, 90]);
  const at = (p: number) => est.find((e) => e.p === p)!;
  // 10 values, censored at ranks 8 and 9: p75 reads ranks 6 and 7 (exact), p80 reads 7 and 8.
  assertEquals(at(50).censored?.value, false);
  assertEquals(at(75).censored?.value, false);
  assertEquals(at(80).censored?.value, true);
  assertEquals(at(90).censored?.value, true);
  assertEquals(at(90).value, 50); // h = 8.1: both ranks censored
  assertEquals(formatBound(at(80).value, at(80).censored?.value), "≥ 16.4"); // 8 + 0.2 × 42
  // Without censored values, no flags at all (and the same numbers as estimate()).
  const plain = estimateSample({ values: [1, 2, 3], censoredAt: [] }, [50]);
  assertEquals(plain[0]!.censored, undefined);
  assertEquals(plain, estimate(Float64Array.from([1, 2, 3]), [50]));
  // A censored value below observed ones bounds every percentile from its rank up.
  const low = boundedPercentile(sortSample({ values: [10, 20, 30], censoredAt: [15] }), 50);
  assertEquals(low.atLeast, true);
});

Deno.test("compareSampleSets says which way a censored change is bounded", () => {
  const fast = { values: Array.from({ length: 50 }, (_, i) => 100 + i), censoredAt: [] };
  const slow = {
    values: Array.from({ length: 30 }, (_, i) => 200 + i),
    censoredAt: Array(20).fill(1000),
  };
  const c = compareSampleSets(fast, slow, { ps: [50, 90] });
  assertEquals(c.changes[0]!.bound, undefined); // p50 of slow: ranks 24, 25, observed
  assertEquals(c.changes[1]!.bound, "at-least"); // p90 of slow reaches the timeouts
  assertStringIncludes(describeChange("web download time", c.changes[1]!), "change ≥ +");
  const both = compareSampleSets(slow, slow, { ps: [90] });
  assertStringIncludes(describeChange("x", both.changes[0]!), "cannot tell");
  // The old entry point gives the same numbers as before (no censoring).
  const a = compareSamples([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]);
  const b = compareSampleSets({ values: [1, 2, 3, 4, 5], censoredAt: [] }, {
    values: [2, 3, 4, 5, 6],
    censoredAt: [],
  });
  assertEquals(a, b);
});

Deno.test("Summarizer keeps a failed fetch in its URL's group and warns above 5 % left out", () => {
  const s = new Summarizer();
  for (let i = 0; i < 18; i++) s.add(rec({ id: i }));
  s.add(
    rec({
      id: 98,
      size: null,
      outcome: "timeout",
      error: "no answer within 2400 ms",
      phases_ms: {},
    }),
  );
  s.add(
    rec({
      id: 99,
      size: null,
      outcome: "socks",
      error: "SOCKS reply: general failure",
      phases_ms: {},
    }),
  );
  const [g, ...rest] = s.summaries();
  assertEquals(rest.length, 0);
  assertEquals([g!.count, g!.ok, g!.timeouts, g!.failed, g!.excluded], [20, 18, 1, 1, 2]);
  assertStringIncludes(g!.warning!, "percentiles of successes only: 1 of 20 fetches timed out");
  assertStringIncludes(g!.warning!, "and 1 more failed otherwise");
  const c = new Summarizer("onionperf", { censor: true });
  for (let i = 0; i < 18; i++) c.add(rec({ id: i }));
  c.add(rec({ id: 98, outcome: "timeout", error: "no answer within 2400 ms", phases_ms: {} }));
  const [h] = c.summaries();
  assertEquals(h!.censored, true);
  assertEquals(h!.warning, undefined); // 0 of 19 left out
  assertEquals(h!.download.find((e) => e.p === 99)!.censored?.value, true);
  assertEquals(exclusionWarning({ count: 100, ok: 96, timeouts: 4, failed: 0 }), undefined);
});
