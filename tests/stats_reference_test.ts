// Statistics checked against references: percentiles against NumPy's default (linear, R type
// 7), Mann-Whitney U against SciPy (exact and asymptotic), Student t quantiles against SciPy,
// all from tests/fixtures/stats_reference.json (made by tests/fixtures/stats_reference.py);
// and interval coverage on synthetic data, which fails if the intervals are too narrow.
import { assert, assertEquals } from "./_assert.ts";
import { percentile, PERCENTILE_METHOD } from "../lib/stats/percentile.ts";
import { mannWhitney, mannWhitneyCounts } from "../lib/stats/compare.ts";
import { estimateSample } from "../lib/stats/censor.ts";
import { acrossRuns, t975 } from "../lib/stats/across.ts";
import { seededRandom } from "../lib/util/random.ts";

const ref = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/stats_reference.json", import.meta.url)),
) as {
  percentiles: { values: number[]; p: number[]; expected: number[] }[];
  mann_whitney_exact: { a: number[]; b: number[]; p: number }[];
  mann_whitney_asymptotic: { a: number[]; b: number[]; p: number }[];
  t975: { df: number; t: number }[];
};

function close(a: number, b: number, rel: number, what: string) {
  assert(Math.abs(a - b) <= rel * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

Deno.test("percentile equals NumPy's linear method (R type 7) on fixed vectors", () => {
  assert(PERCENTILE_METHOD.includes("type 7"));
  let checked = 0;
  for (const v of ref.percentiles) {
    v.p.forEach((p, i) => {
      close(percentile(v.values, p), v.expected[i]!, 1e-12, `p${p} of ${v.values.length}`);
      checked++;
    });
  }
  assert(checked > 100, `${checked} values`);
});

Deno.test("mannWhitney is exact for small samples without ties, as SciPy's exact method", () => {
  assert(ref.mann_whitney_exact.length >= 20);
  for (const c of ref.mann_whitney_exact) {
    close(mannWhitney(c.a, c.b), c.p, 1e-9, `exact ${c.a.length}×${c.b.length}`);
  }
});

Deno.test("mannWhitney with ties equals SciPy's asymptotic method without continuity correction", () => {
  for (const c of ref.mann_whitney_asymptotic) {
    // The normal CDF is Abramowitz-Stegun 7.1.26 (error below 1.5e-7).
    const p = mannWhitney(c.a, c.b);
    assert(Math.abs(p - c.p) < 1e-6, `asymptotic ${c.a.length}×${c.b.length}: ${p} vs ${c.p}`);
  }
});

Deno.test("mannWhitneyCounts sums to the binomial coefficient and matches enumeration", () => {
  // C(9, 4) = 126 arrangements of 4 and 5; enumerate them to count U.
  const c = mannWhitneyCounts(4, 5);
  assertEquals(c.reduce((a, b) => a + b, 0), 126);
  const byU = new Array(21).fill(0);
  for (let mask = 0; mask < 1 << 9; mask++) {
    if (mask.toString(2).split("").filter((x) => x === "1").length !== 4) continue;
    // Positions with a bit set are sample A; U counts pairs (a, b) with b below a.
    let u = 0, bs = 0;
    for (let i = 0; i < 9; i++) {
      if (mask & (1 << i)) u += bs;
      else bs++;
    }
    byU[u]++;
  }
  assertEquals(Array.from(c), byU);
});

Deno.test("t975 matches SciPy's Student t quantiles", () => {
  for (const x of ref.t975) {
    close(t975(x.df), x.t, x.df <= 30 ? 3e-4 : 2e-3, `df ${x.df}`);
  }
});

function exponential(random: () => number, scale: number): number {
  return -Math.log(1 - random()) * scale;
}

Deno.test("estimateSample's 95 % bootstrap interval of the median covers the true median about 95 % of the time", () => {
  // Exponential, scale 500: the median is 500·ln 2. 300 samples of 80 each.
  const random = seededRandom(424242);
  const truth = 500 * Math.LN2;
  const reps = 300;
  let covered = 0;
  for (let k = 0; k < reps; k++) {
    const values = Array.from({ length: 80 }, () => exponential(random, 500));
    const [e] = estimateSample({ values, censoredAt: [] }, [50], k + 1);
    if (e!.lo <= truth && truth <= e!.hi) covered++;
  }
  const share = covered / reps;
  // Binomial sd at 95 % over 300 is 1.3 points; a percentile bootstrap of a median runs a
  // little under nominal at n = 80. Too narrow an interval (e.g. a 68 % one) fails here.
  assert(share >= 0.89 && share <= 0.99, `coverage ${share}`);
});

Deno.test("estimateSample's interval of the 90th percentile with timeouts censored covers the truth", () => {
  // Times censored at a timeout above the 90th percentile: the interval must still cover it.
  const random = seededRandom(99);
  const truth = -Math.log(0.1) * 500; // the exponential's 90th percentile
  const reps = 200;
  let covered = 0;
  for (let k = 0; k < reps; k++) {
    const all = Array.from({ length: 120 }, () => exponential(random, 500));
    const timeout = 2000;
    const values = all.filter((x) => x < timeout);
    const censoredAt = all.filter((x) => x >= timeout).map(() => timeout);
    const [e] = estimateSample({ values, censoredAt }, [90], k + 1);
    if (e!.lo <= truth && truth <= e!.hi) covered++;
  }
  const share = covered / reps;
  assert(share >= 0.88 && share <= 0.995, `coverage ${share}`);
});

Deno.test("acrossRuns' t interval from 3 runs covers the mean about 95 % of the time, none from 2", () => {
  const random = seededRandom(7);
  const normal = () => {
    const u = 1 - random(), v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  let covered = 0;
  const reps = 2000;
  for (let k = 0; k < reps; k++) {
    const a = acrossRuns([0, 0, 0].map(() => 1000 + 100 * normal()));
    if (a.ci![0] <= 1000 && 1000 <= a.ci![1]) covered++;
  }
  const share = covered / reps;
  assert(share >= 0.93 && share <= 0.97, `coverage ${share}`);
  assertEquals(acrossRuns([1, 2]).ci, null);
  assert(acrossRuns([1, 2]).note!.includes("needs 3"));
});
