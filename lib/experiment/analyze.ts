/**
 * The analyze stage: summary.json from an experiment folder's files alone — the raw records
 * (`records-ARM.jsonl` pooled, `runs/rN/records-ARM.jsonl` per run), the manifest the run
 * wrote (manifest.json: scenario, arms, network, seeds, versions) and the load samples
 * (load.json). Nothing here measures; run it again on an archived folder and it gives the
 * same file (tests/fixtures/experiment-small is the golden case).
 *
 * Samples are treated as `pctcp stats --censor` and `pctcp compare --censor` treat them: a
 * timed-out fetch stays in the sample at its timeout as "at least" (a percentile that reaches
 * it reads ≥), other failures are counted, not timed, and fetches the run's end cut short
 * (`interrupted`, `unfinished`) are counted apart. Every row says how many fetches it rests
 * on and "few samples" below the scenario's minimum.
 * @module
 */

import { readRecords } from "../stats/load.ts";
import { addToSide, newSide, sampleSize, type SideSamples } from "../stats/arms.ts";
import { compareSampleSets, type Comparison, describeChange } from "../stats/compare.ts";
import { boundedPercentile, estimateSample, type Sample, sortSample } from "../stats/censor.ts";
import { PERCENTILE_METHOD } from "../stats/percentile.ts";
import { acrossRuns, MIN_RUNS, t975 } from "../stats/across.ts";
import {
  type Arm,
  ARMS,
  armSpec,
  DEFAULT_MIN_SAMPLES,
  defaultBase,
  describeArm,
  describeNetwork,
  isArm,
  type Metric,
  METRIC_NAMES,
  METRICS,
  SUMMARY_PERCENTILES,
} from "./arms.ts";
import type { LoadSample } from "./load.ts";

/** The version of summary.json this module writes. */
export const SUMMARY_VERSION = 2;

/** What the run stage writes to manifest.json: how the folder was made. */
export interface Manifest {
  /** Manifest format version (1). */
  v: number;
  /** The tool and its version that ran the experiment. */
  tool: string;
  version: string;
  /** Scenario name (the whole scenario is in scenario.json). */
  scenario: string;
  /** Arms in the order they ran in each run. */
  arms: Arm[];
  /** The arm changes are computed against. */
  base: Arm;
  /** Runs asked for. */
  runs: number;
  /** Runs and arms in the order they ran ("tor#1", …). */
  order: string[];
  /** Seed of each run. */
  seeds: number[];
  /** True on emulated hosts in namespaces, false on loopback. */
  netns: boolean;
  /** Emulation engine ("userspace" or "netem") with netns, else "none". */
  emulation_engine: string;
  /** How each arm's links were emulated, in words. */
  emulation: Record<string, string[]>;
  /** Where C tor's nodes ran, when a ctor arm ran. */
  ctor_network?: string;
  /** The merged emulation spec, with netns. */
  emulation_spec?: unknown;
  /** Seconds of measurement per arm (scenario or --duration), the bound, and the minimums. */
  duration_s: number;
  max_duration_s: number;
  min_samples: Record<Metric, number>;
  /** Software versions (Deno, Debian's tor when used). */
  versions: Record<string, string>;
  /** Start and end, ISO 8601. */
  started: string;
  finished?: string;
  /** True if the experiment was stopped (Ctrl-C) before every run and arm finished. */
  interrupted?: boolean;
  /** With `--networks K`: how many networks were drawn, and runs on each. */
  networks?: number;
  runs_per_network?: number;
  /** The network of each run: run i (from 1) was on network `run_network[i - 1]`. */
  run_network?: number[];
  /** What each network was (lib/experiment/ctor_run.ts writes `network`, `seed`, `words`, …). */
  network_specs?: NetworkSpec[];
}

/** One drawn network in manifest.json's `network_specs` (the fields analyze reads). */
export interface NetworkSpec {
  /** The network's number, from 1. */
  network: number;
  /** Its seed. */
  seed?: number;
  /** What it was, in words. */
  words?: string;
}

/** Above these the machine, not the network, may have set the numbers. */
export const BOTTLENECK = { cpuBusy: 0.9, lateP99Ms: 10, relayCpu: 0.9 } as const;

/** One arm's samples of one metric, and its counts. */
interface ArmMetricSamples {
  side: SideSamples;
  sample: Sample;
}

type ArmSamples = Record<Metric, ArmMetricSamples>;

/** Reads one arm's records file into samples per metric (timeouts censored). */
export async function armSamples(file: string): Promise<ArmSamples> {
  const sides = { web: newSide("web"), bulk: newSide("bulk") } as Record<string, SideSamples>;
  await readRecords([file], (r) => {
    const side = sides[r.label];
    if (side) addToSide(side, r, { censor: true });
  });
  const out = {} as ArmSamples;
  for (const k of METRIC_NAMES) {
    const m = METRICS[k];
    const side = sides[m.label]!;
    out[k] = { side, sample: m.phase === "first_byte" ? side.response : side.download };
  }
  return out;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

async function readJson<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(p)) as T;
  } catch {
    return undefined;
  }
}

async function runsInFolder(dir: string): Promise<number[]> {
  const runs: number[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/runs`)) {
      const m = /^r(\d+)$/.exec(e.name);
      if (e.isDirectory && m) runs.push(Number(m[1]));
    }
  } catch { /* no runs folder */ }
  return runs.sort((a, b) => a - b);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The manifest of a folder, or one pieced together from an older folder's files. */
export async function readManifest(dir: string): Promise<Manifest & { legacy?: boolean }> {
  const m = await readJson<Manifest>(`${dir}/manifest.json`);
  if (m) return m;
  // Folders from before manifest.json: summary.json's `experiment` field and scenario.json.
  const old = await readJson<Record<string, unknown>>(`${dir}/summary.json`) ?? {};
  const e = (old.experiment ?? {}) as Record<string, unknown>;
  const scenario = await readJson<Record<string, unknown>>(`${dir}/scenario.json`) ?? {};
  const arms: Arm[] = [];
  for (const a of ARMS) if (await exists(`${dir}/records-${a}.jsonl`)) arms.push(a);
  const list = ((e.arms as string[] | undefined) ?? arms).filter(isArm);
  return {
    v: 0,
    legacy: true,
    tool: "pctcp",
    version: String(old.version ?? "unknown"),
    scenario: String(old.scenario ?? scenario.name ?? "unknown"),
    arms: list,
    base: (e.base as Arm | undefined) ?? defaultBase(list),
    runs: Number(e.runs ?? old.runs ?? 1),
    order: (e.order as string[] | undefined) ?? [],
    seeds: (e.seeds as number[] | undefined) ?? [],
    netns: !!e.netns,
    emulation_engine: e.netns ? "userspace" : "none",
    emulation: (e.emulation as Record<string, string[]> | undefined) ?? {},
    ...(e.ctor_network ? { ctor_network: String(e.ctor_network) } : {}),
    duration_s: Number(e.duration_s ?? scenario.durationS ?? 0),
    max_duration_s: Number(e.duration_s ?? scenario.durationS ?? 0),
    min_samples: { ...DEFAULT_MIN_SAMPLES },
    versions: {},
    started: String(old.started ?? ""),
    ...(old.finished ? { finished: String(old.finished) } : {}),
  };
}

/** A percentile of one arm and metric in summary.json. */
export interface ArmPercentile {
  /** Pooled value, ms; `at_least` when a censored timeout reaches it. */
  ms: number;
  at_least?: boolean;
  /** 95 % bootstrap interval of the pooled records, ms. */
  ci: [number, number];
  /** Each run's value, ms. */
  runs_ms: number[];
  /** Mean of the runs and its t interval (null below 3 runs). */
  across_runs: ReturnType<typeof acrossRuns>;
}

/** One arm's metric in summary.json: counts, sample size, percentiles. */
export interface ArmMetric {
  /** Fetches of the metric's workload, and how they ended. */
  fetches: number;
  ok: number;
  timeouts: number;
  failed: number;
  unfinished: number;
  /** Samples in the percentiles (successes, and timeouts censored at their timeout). */
  n: number;
  /** The scenario's minimum for this metric, and whether the row rests on fewer. */
  min: number;
  few_samples: boolean;
  /** Per percentile ("p50", …). */
  [p: `p${number}`]: ArmPercentile;
}

function armMetric(
  s: ArmMetricSamples,
  perRun: Sample[],
  min: number,
): ArmMetric | null {
  const c = s.side.counts;
  const n = sampleSize(s.sample);
  const base = {
    fetches: c.count,
    ok: c.ok,
    timeouts: c.timeouts,
    failed: c.failed,
    unfinished: c.unfinished ?? 0,
    n,
    min,
    few_samples: n < min,
  };
  if (!n) return null;
  const out: Record<string, unknown> = { ...base };
  for (const e of estimateSample(s.sample, SUMMARY_PERCENTILES)) {
    const runsMs = perRun.filter((x) => sampleSize(x) > 0).map((x) =>
      round(boundedPercentile(sortSample(x), e.p).value)
    );
    out[`p${e.p}`] = {
      ms: round(e.value),
      ...(e.censored?.value ? { at_least: true } : {}),
      ci: [round(e.lo), round(e.hi)],
      runs_ms: runsMs,
      across_runs: acrossRuns(runsMs),
    };
  }
  return out as unknown as ArmMetric;
}

function change(
  c: Comparison,
  perRun: [Sample, Sample][],
  nBase: number,
  nArm: number,
  min: number,
): Record<string, unknown> {
  const e: Record<string, unknown> = {
    n: { base: nBase, arm: nArm },
    few_samples: Math.min(nBase, nArm) < min,
    mann_whitney_p: Number(c.pValue.toPrecision(3)),
  };
  for (const ch of c.changes) {
    const runsPct = perRun.flatMap(([b, x]) => {
      if (!sampleSize(b) || !sampleSize(x)) return [];
      const pb = boundedPercentile(sortSample(b), ch.p).value;
      return [round((boundedPercentile(sortSample(x), ch.p).value - pb) / pb * 100)];
    });
    e[`p${ch.p}`] = {
      pct: round(ch.changePct),
      ci: [round(ch.lo), round(ch.hi)],
      ...(ch.bound ? { bound: ch.bound } : {}),
      runs_pct: runsPct,
      across_runs: acrossRuns(runsPct),
    };
  }
  return e;
}

/** One network of a `--networks K` folder: the runs that were on it, and what it was. */
interface NetworkRuns {
  network: number;
  runs: number[];
  words: string;
}

/** The networks of a folder and their runs (manifest's `run_network`), or [] with one. */
function networksOf(manifest: Manifest, runNums: number[]): NetworkRuns[] {
  const map = manifest.run_network;
  if (!map?.length || (manifest.networks ?? 0) < 2) return [];
  const ids = [...new Set(map)].sort((a, b) => a - b);
  if (ids.length < 2) return [];
  return ids.map((network) => ({
    network,
    runs: runNums.filter((r) => map[r - 1] === network),
    words: manifest.network_specs?.find((s) => s.network === network)?.words ??
      `network ${network}`,
  }));
}

/** The records of several runs as one sample (the per-network pool). */
function poolSamples(samples: (Sample | undefined)[]): Sample {
  const out: Sample = { values: [], censoredAt: [] };
  for (const s of samples) {
    if (!s) continue;
    for (const v of s.values) out.values.push(v);
    for (const v of s.censoredAt) out.censoredAt.push(v);
  }
  return out;
}

/** The spread of one per-network value (a p50 change or ratio) across the networks. */
export interface AcrossNetworks {
  /** Networks with a value. */
  n: number;
  /** Mean of the networks' values. */
  mean: number;
  /** 95 % Student t interval of the mean (K − 1 df), or null below 3 networks. */
  ci: [number, number] | null;
  /** Lowest and highest network. */
  min: number;
  max: number;
  /** Why there is no interval, when there is none. */
  note?: string;
}

/**
 * Each network's change (`pct`) or ratio (`ratio`) of `arm` against `base`, from the pooled
 * records of that network's runs, with the same seeded bootstrap and censoring as the pooled
 * numbers; and the spread of the p50 values across the networks. A network's `few_samples`
 * compares with its share of the scenario's minimum (minimum × its runs / all runs).
 */
function perNetwork(
  nets: NetworkRuns[],
  sampleOf: (run: number, side: "base" | "arm") => Sample | undefined,
  options: { min: number; totalRuns: number; kind: "pct" | "ratio" },
): { per_network: Record<string, unknown>[]; across_networks: AcrossNetworks } {
  const rows: Record<string, unknown>[] = [];
  const p50s: number[] = [];
  for (const net of nets) {
    const b = poolSamples(net.runs.map((r) => sampleOf(r, "base")));
    const x = poolSamples(net.runs.map((r) => sampleOf(r, "arm")));
    const nb = sampleSize(b), nx = sampleSize(x);
    const share = Math.ceil(options.min * net.runs.length / Math.max(1, options.totalRuns));
    const row: Record<string, unknown> = {
      network: net.network,
      runs: net.runs,
      n: { base: nb, arm: nx },
    };
    if (!nb || !nx) {
      for (const p of SUMMARY_PERCENTILES) row[`p${p}`] = null;
    } else {
      const c = compareSampleSets(b, x, { ps: SUMMARY_PERCENTILES });
      for (const ch of c.changes) {
        row[`p${ch.p}`] = options.kind === "pct"
          ? {
            pct: round(ch.changePct),
            ci: [round(ch.lo), round(ch.hi)],
            ...(ch.bound ? { bound: ch.bound } : {}),
          }
          : {
            ratio: round(1 + ch.changePct / 100),
            ci: [round(1 + ch.lo / 100), round(1 + ch.hi / 100)],
          };
        if (ch.p === 50) {
          p50s.push(options.kind === "pct" ? round(ch.changePct) : round(1 + ch.changePct / 100));
        }
      }
    }
    row.min = share;
    row.few_samples = Math.min(nb, nx) < share;
    rows.push(row);
  }
  const a = acrossRuns(p50s);
  const across: AcrossNetworks = {
    n: a.n,
    mean: a.mean,
    ci: a.ci,
    min: p50s.length ? Math.min(...p50s) : NaN,
    max: p50s.length ? Math.max(...p50s) : NaN,
    ...(a.ci ? {} : {
      note: `no interval from ${a.n} network${a.n === 1 ? "" : "s"} (needs ${MIN_RUNS})`,
    }),
  };
  return { per_network: rows, across_networks: across };
}

function signed(x: number, digits = 1): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
}

/** "across 3 networks: mean -27.1 % (95 % CI -40.2 .. -14.0 %), per network -33.0 .. -20.5 %" */
export function describeAcrossNetworks(a: AcrossNetworks, unit: "pct" | "ratio" = "pct"): string {
  const v = (x: number) => unit === "pct" ? `${signed(x)} %` : `×${x.toFixed(2)}`;
  const r = (x: number) => unit === "pct" ? signed(x) : x.toFixed(2);
  const u = unit === "pct" ? " %" : "";
  const ci = a.ci ? `95 % CI ${r(a.ci[0])} .. ${r(a.ci[1])}${u}` : a.note ?? "no interval";
  return `across ${a.n} networks: mean ${v(a.mean)} (${ci}), per network ${r(a.min)} .. ${
    r(a.max)
  }${u}`;
}

/** The self-check: was the machine the bottleneck? From load.json's samples. */
export function selfCheck(samples: LoadSample[]): Record<string, unknown> {
  if (!samples.length) {
    return { measured: false, bottleneck: null, note: "no load samples (load.json) in the folder" };
  }
  const cpu = samples.map((s) => s.cpu_busy).filter((x): x is number => typeof x === "number");
  const late = samples.map((s) => s.emulator_late_p99_ms).filter((x): x is number =>
    typeof x === "number"
  );
  const relays: Record<string, number> = {};
  for (const s of samples) {
    for (const [k, v] of Object.entries(s.relay_cpu)) relays[k] = Math.max(relays[k] ?? 0, v);
  }
  const reasons: string[] = [];
  const cpuMax = cpu.length ? Math.max(...cpu) : null;
  if (cpuMax !== null && cpuMax > BOTTLENECK.cpuBusy) {
    reasons.push(`CPU ${(cpuMax * 100).toFixed(0)} % busy during a measurement`);
  }
  const lateMax = late.length ? Math.max(...late) : null;
  if (lateMax !== null && lateMax > BOTTLENECK.lateP99Ms) {
    reasons.push(`the emulator delivered packets up to ${lateMax.toFixed(1)} ms late (p99)`);
  }
  for (const [k, v] of Object.entries(relays)) {
    if (v > BOTTLENECK.relayCpu) {
      reasons.push(`relay ${k} used ${(v * 100).toFixed(0)} % of a core`);
    }
  }
  return {
    measured: true,
    bottleneck: reasons.length > 0,
    reasons,
    thresholds: {
      cpu_busy: BOTTLENECK.cpuBusy,
      emulator_late_p99_ms: BOTTLENECK.lateP99Ms,
      relay_cpu_cores: BOTTLENECK.relayCpu,
    },
    cpu_busy: {
      mean: cpu.length ? round(cpu.reduce((a, b) => a + b, 0) / cpu.length) : null,
      max: cpuMax === null ? null : round(cpuMax),
    },
    emulator_late_p99_ms_max: lateMax === null ? null : round(lateMax),
    relay_cpu_cores_max: Object.fromEntries(Object.entries(relays).map(([k, v]) => [k, round(v)])),
    per_arm: samples.map((s) => ({
      arm: s.arm,
      run: s.run,
      cpu_busy: s.cpu_busy === null ? null : round(s.cpu_busy),
      emulator_late_p99_ms: s.emulator_late_p99_ms,
    })),
  };
}

/** The calibration goal: ours / C tor within this fraction of 1 at p50 (p90 is informative). */
export const CALIBRATION_TOLERANCE = 0.15;

/**
 * Whether a calibration meets the ±15 % goal at p50 (web response, web download, bulk),
 * with web p90 beside it as information (no goal); with several networks, which networks'
 * p50 fall outside the goal.
 */
export function calibrationVerdict(cal: Record<string, unknown>): string {
  const want: [Metric, string][] = [
    ["web_response", "p50"],
    ["web_response", "p90"],
    ["web_download", "p50"],
    ["web_download", "p90"],
    ["bulk_download", "p50"],
  ];
  const pct = `±${CALIBRATION_TOLERANCE * 100} %`;
  const outside = (r: number) => Math.abs(r - 1) > CALIBRATION_TOLERANCE + 1e-9;
  const out: string[] = [];
  const nets: string[] = [];
  let perNetwork = false;
  for (const [k, p] of want) {
    const m = cal[k] as Record<string, unknown> | null | undefined;
    const r = (m?.[p] as { ratio: number } | undefined)?.ratio;
    if (r === undefined) continue;
    out.push(`${k} ${p} ×${r.toFixed(2)}${p === "p50" && outside(r) ? ` (outside ${pct})` : ""}`);
    const rows = m?.per_network as Record<string, unknown>[] | undefined;
    if (p !== "p50" || !rows) continue;
    perNetwork = true;
    for (const row of rows) {
      const x = (row.p50 as { ratio: number } | null)?.ratio;
      if (x !== undefined && outside(x)) nets.push(`${k} network ${row.network} ×${x.toFixed(2)}`);
    }
  }
  const tail = !perNetwork
    ? ""
    : nets.length
    ? `; per network outside ${pct} at p50: ${nets.join(", ")}`
    : `; every network within ${pct} at p50`;
  return `calibration ${cal.arm} against ${cal.against} (goal ${pct} at p50; p90 informative): ${
    out.join(", ")
  }${tail}`;
}

/** Options of {@link analyzeFolder}. */
export interface AnalyzeOptions {
  /** The arm changes are computed against (default: the manifest's base). */
  base?: Arm;
}

/**
 * Computes summary.json's content from an experiment folder (records, manifest.json,
 * load.json); writes nothing. Deterministic: the same folder gives the same object.
 */
export async function analyzeFolder(
  dir: string,
  options: AnalyzeOptions = {},
): Promise<Record<string, unknown>> {
  const manifest = await readManifest(dir);
  const arms: Arm[] = [];
  for (const a of manifest.arms) if (await exists(`${dir}/records-${a}.jsonl`)) arms.push(a);
  const pooled: Partial<Record<Arm, ArmSamples>> = {};
  for (const a of arms) pooled[a] = await armSamples(`${dir}/records-${a}.jsonl`);
  // Folders from before the ctor arm's rename.
  if (!pooled.ctor && await exists(`${dir}/records-realtor.jsonl`)) {
    pooled.ctor = await armSamples(`${dir}/records-realtor.jsonl`);
    arms.push("ctor");
  }
  if (!arms.length) throw new Error(`no experiment records (records-ARM.jsonl) in ${dir}`);
  const base = options.base ?? (arms.includes(manifest.base) ? manifest.base : defaultBase(arms));
  if (!arms.includes(base)) throw new RangeError(`base arm ${base} has no records in ${dir}`);
  const runNums = await runsInFolder(dir);
  const perRun: Record<number, Partial<Record<Arm, ArmSamples>>> = {};
  for (const r of runNums) {
    perRun[r] = {};
    for (const a of arms) {
      const f = `${dir}/runs/r${r}/records-${a}.jsonl`;
      if (await exists(f)) perRun[r]![a] = await armSamples(f);
    }
  }
  const runSamples = (a: Arm, k: Metric) =>
    runNums.map((r) => perRun[r]![a]?.[k].sample).filter((s): s is Sample => !!s);
  const min = { ...DEFAULT_MIN_SAMPLES, ...manifest.min_samples };
  const lines: string[] = [];
  const doubts: string[] = [];
  // With --networks K: each network's numbers from its runs, and the spread across networks.
  const nets = networksOf(manifest, runNums);
  const byNetwork = (base: Arm, a: Arm, k: Metric, kind: "pct" | "ratio") =>
    perNetwork(nets, (r, side) => perRun[r]![side === "base" ? base : a]?.[k].sample, {
      min: min[k],
      totalRuns: runNums.length,
      kind,
    });
  const networkLines: string[] = [];
  const networkDoubts: string[] = [];

  // Every arm: counts, sample sizes, pooled percentiles, per run and across runs.
  const armsOut: Record<string, Record<string, ArmMetric | null>> = {};
  const counts: Record<string, Record<string, unknown>> = {};
  for (const a of arms) {
    const m: Record<string, ArmMetric | null> = {};
    for (const k of METRIC_NAMES) {
      m[k] = armMetric(pooled[a]![k], runSamples(a, k), min[k]);
      const n = sampleSize(pooled[a]![k].sample);
      if (n < min[k] && pooled[a]![k].side.counts.count + n > 0) {
        doubts.push(`few samples: ${a} ${k} rests on ${n} (the scenario asks for ${min[k]})`);
      }
    }
    armsOut[a] = m;
    const web = pooled[a]!.web_response.side.counts, bulk = pooled[a]!.bulk_download.side.counts;
    counts[a] = Object.fromEntries(
      [["web", web], ["bulk", bulk]].map(([label, c]) => {
        const x = c as typeof web;
        return [label, {
          fetches: x.count,
          ok: x.ok,
          timeouts: x.timeouts,
          failed: x.failed,
          unfinished: x.unfinished ?? 0,
        }];
      }),
    );
  }

  // Every arm against the base.
  const changes: Record<string, Record<string, unknown>> = {};
  for (const a of arms) {
    if (a === base) continue;
    const m: Record<string, unknown> = {};
    for (const k of METRIC_NAMES) {
      const b = pooled[base]![k].sample, x = pooled[a]![k].sample;
      if (!sampleSize(b) || !sampleSize(x)) {
        m[k] = null;
        continue;
      }
      const c = compareSampleSets(b, x, { ps: SUMMARY_PERCENTILES });
      const pr = runNums.flatMap((r) => {
        const rb = perRun[r]![base]?.[k].sample, rx = perRun[r]![a]?.[k].sample;
        return rb && rx ? [[rb, rx] as [Sample, Sample]] : [];
      });
      const e = m[k] = change(c, pr, sampleSize(b), sampleSize(x), min[k]);
      const few = Math.min(sampleSize(b), sampleSize(x)) < min[k] ? " — few samples" : "";
      lines.push(
        `${a} against ${base}, ${describeChange(METRICS[k].words, c.changes[0]!)}${few}`,
      );
      if (nets.length) {
        const pn = byNetwork(base, a, k, "pct");
        Object.assign(e, pn);
        networkLines.push(
          `${a} against ${base}, ${k} p50 ${describeAcrossNetworks(pn.across_networks)}`,
        );
        const vals = pn.per_network.flatMap((row) => {
          const v = (row.p50 as { pct: number } | null)?.pct;
          return v === undefined ? [] : [`network ${row.network} ${signed(v)} %`];
        });
        const signs = new Set(pn.per_network.flatMap((row) => {
          const v = (row.p50 as { pct: number } | null)?.pct;
          return v === undefined || v === 0 ? [] : [Math.sign(v)];
        }));
        for (const row of pn.per_network) {
          const n = row.n as { base: number; arm: number };
          if (!row.few_samples) continue;
          networkDoubts.push(
            `few samples on network ${row.network}: ${a} against ${base} ${k} rests on ${n.base} / ${n.arm} (the network's share of the minimum is ${row.min})`,
          );
        }
        // Pooled records mix the networks in each arm's proportions; when those differ, the
        // pooled change partly compares networks, not arms (read the per-network rows).
        const nb = pn.per_network.map((row) => (row.n as { base: number }).base);
        const nx = pn.per_network.map((row) => (row.n as { arm: number }).arm);
        const sb = nb.reduce((p, v) => p + v, 0), sx = nx.reduce((p, v) => p + v, 0);
        if (sb && sx && nb.some((v, i) => Math.abs(v / sb - nx[i]! / sx) > 0.05)) {
          const share = (v: number[], t: number) =>
            v.map((x) => `${Math.round(100 * x / t)} %`).join(" / ");
          networkDoubts.push(
            `${a} against ${base}, ${k}: the pooled numbers mix the networks in different shares (${base} ${
              share(nb, sb)
            }, ${a} ${share(nx, sx)} of samples on networks ${
              pn.per_network.map((row) => row.network).join(" / ")
            }), so they partly compare networks; the per-network rows and their mean do not`,
          );
        }
        if (signs.size > 1) {
          networkDoubts.push(
            `${a} against ${base}, ${k} p50: the networks disagree in sign (${vals.join(", ")})`,
          );
        }
      }
    }
    changes[`${a}_vs_${base}`] = m;
  }

  // Version-1 fields: tor vs pctcp per metric and percentile (mixed and ctor beside).
  const v1: Record<string, unknown> = {};
  for (const k of METRIC_NAMES) {
    const tor = pooled.tor?.[k].sample, pc = pooled.pctcp?.[k].sample;
    if (!tor || !pc || !sampleSize(tor) || !sampleSize(pc)) {
      v1[k] = null;
      continue;
    }
    const c = compareSampleSets(tor, pc, { ps: SUMMARY_PERCENTILES });
    const m: Record<string, unknown> = {};
    for (const ch of c.changes) {
      const row: Record<string, unknown> = {
        tor: round(ch.base),
        pctcp: round(ch.other),
        change_pct: round(ch.changePct),
        ci95: [round(ch.lo), round(ch.hi)],
      };
      for (const [arm, key] of [["mixed", "mixed"], ["ctor", "real_tor"]] as const) {
        const x = pooled[arm]?.[k].sample;
        if (x && sampleSize(x)) row[key] = round(boundedPercentile(sortSample(x), ch.p).value);
      }
      m[`p${ch.p}`] = row;
    }
    m.n = { tor: sampleSize(tor), pctcp: sampleSize(pc) };
    m.mann_whitney_p = Number(c.pValue.toPrecision(3));
    v1[k] = m;
  }

  // Calibration: our tor transport (KIST first) against C tor on the same workload.
  const calibrations: Record<string, unknown>[] = [];
  // Inside a C tor network the calibration is exact: ours-tor and ctor sit in the same slot
  // of the same network, same run (lib/experiment/ctor_run.ts).
  const inCtor = (manifest as { network?: string }).network === "ctor";
  for (const against of ["ctor", "ctor-nocc"] as const) {
    const ref = pooled[against];
    if (!ref) continue;
    for (const a of inCtor ? ["ours-tor"] as const : ["tor-kist", "tor"] as const) {
      if (!pooled[a]) continue;
      const cal: Record<string, unknown> = {
        arm: a,
        against,
        ratio:
          `${a} / ${against} at each percentile; 1 = same, < 1 = ours faster; 95 % bootstrap CI`,
        same_network: inCtor || !manifest.netns || manifest.ctor_network === "emulated-hosts",
        ...(inCtor
          ? { positions: (manifest as { positions?: string }).positions ?? "middle-exit" }
          : {}),
      };
      for (const k of METRIC_NAMES) {
        const b = ref[k].sample, x = pooled[a]![k].sample;
        if (!sampleSize(b) || !sampleSize(x)) {
          cal[k] = null;
          continue;
        }
        const c = compareSampleSets(b, x, { ps: SUMMARY_PERCENTILES });
        const e: Record<string, unknown> = Object.fromEntries(c.changes.map((ch) => [`p${ch.p}`, {
          ratio: round(1 + ch.changePct / 100),
          ci: [round(1 + ch.lo / 100), round(1 + ch.hi / 100)],
        }]));
        if (nets.length) Object.assign(e, byNetwork(against, a, k, "ratio"));
        cal[k] = e;
      }
      calibrations.push(cal);
    }
  }
  if (calibrations.length) lines.push(calibrationVerdict(calibrations[0]!));
  lines.push(...networkLines);
  if (nets.length) {
    const k = nets.length;
    if (k < MIN_RUNS) {
      doubts.push(
        `${k} networks: no across-network interval (needs ${MIN_RUNS}); the pooled intervals leave the spread between networks out`,
      );
    } else if (k < 5) {
      doubts.push(
        `the across-network intervals rest on ${k} networks (Student t with ${k - 1} df, t = ${
          t975(k - 1).toFixed(2)
        }: wide); the pooled intervals leave the spread between networks out`,
      );
    }
    doubts.push(...networkDoubts);
  }

  const runs = Math.max(1, runNums.length);
  if (runs < MIN_RUNS) {
    doubts.push(
      `${runs} run${
        runs === 1 ? "" : "s"
      }: no across-run interval (needs ${MIN_RUNS}); the intervals are of the pooled records of one network and slot`,
    );
  }
  const load = await readJson<LoadSample[]>(`${dir}/load.json`) ?? [];
  const check = selfCheck(load);
  if (check.bottleneck) {
    doubts.push(
      `the machine may have been the bottleneck: ${(check.reasons as string[]).join("; ")}`,
    );
  }
  for (const a of arms) {
    for (const [label, c] of Object.entries(counts[a]!)) {
      const x = c as { fetches: number; timeouts: number; failed: number; unfinished: number };
      const parts = [
        ...(x.timeouts ? [`${x.timeouts} timed out (in the percentiles at their timeout, ≥)`] : []),
        ...(x.failed ? [`${x.failed} failed otherwise (counted, not timed)`] : []),
        ...(x.unfinished ? [`${x.unfinished} cut short by the end of the measurement`] : []),
      ];
      if (parts.length) doubts.push(`${a} ${label}: of ${x.fetches} fetches, ${parts.join(", ")}`);
    }
  }

  const summary: Record<string, unknown> = {
    v: SUMMARY_VERSION,
    tool: manifest.tool,
    version: manifest.version,
    scenario: manifest.scenario,
    started: manifest.started,
    finished: manifest.finished ?? null,
    ...(manifest.interrupted ? { interrupted: true } : {}),
    ...(manifest.legacy ? { manifest: "legacy: pieced together from summary.json" } : {}),
    network: {
      kind: manifest.netns ? "emulated" : "loopback",
      words: describeNetwork(manifest.netns),
      emulation_engine: manifest.emulation_engine,
    },
    base: { arm: base, words: describeArm(base) },
    arm_words: Object.fromEntries(arms.map((a) => [a, describeArm(a)])),
    method: {
      time_base:
        "onionperf: ms from stream start (SOCKS included); response = first byte, download = last byte",
      percentiles: PERCENTILE_METHOD,
      intervals:
        "95 % percentile bootstrap of the pooled records (1000 resamples, seeded); across runs: 95 % Student t interval of the per-run values, from 3 runs",
      failures:
        "timeouts censored at their timeout (a percentile reaching one is a lower bound, at_least); other failures counted, not timed; fetches the run's end cut short counted as unfinished",
      change: "(arm - base) / base in %, negative is faster",
      ...(nets.length
        ? {
          networks:
            "per network: the pooled records of that network's runs, the same seeded bootstrap and censoring; across networks: mean of the per-network p50 values and its 95 % Student t interval (K - 1 df), from 3 networks",
        }
        : {}),
    },
    min_samples: min,
    counts,
    errors: Object.fromEntries(arms.map((a) => {
      const c = counts[a] as Record<string, { fetches: number; ok: number; unfinished: number }>;
      const total = c.web!.fetches + c.bulk!.fetches;
      const unfinished = c.web!.unfinished + c.bulk!.unfinished;
      return [a, { failed: total - unfinished - c.web!.ok - c.bulk!.ok, unfinished, total }];
    })),
    experiment: {
      arms: manifest.arms,
      base,
      runs: manifest.runs,
      order: manifest.order,
      seeds: manifest.seeds,
      netns: manifest.netns,
      ...(manifest.ctor_network ? { ctor_network: manifest.ctor_network } : {}),
      emulation: manifest.emulation,
      duration_s: manifest.duration_s,
      max_duration_s: manifest.max_duration_s,
    },
    runs,
    ...(nets.length
      ? {
        networks: {
          count: nets.length,
          runs_per_network: manifest.runs_per_network ?? null,
          specs: nets.map((n) => n.words),
          runs: Object.fromEntries(nets.map((n) => [n.network, n.runs])),
        },
      }
      : {}),
    ...v1,
    arms: armsOut,
    changes,
    ...(calibrations.length ? { calibration: calibrations[0], calibrations } : {}),
    self_check: check,
    sentences: lines,
    doubts,
  };
  if (pooled.ctor) {
    const e = summary.errors as Record<string, unknown>;
    e.real_tor = e.ctor; // the version-1 name of the C tor arm's errors
  }
  return summary;
}

/** Runs {@link analyzeFolder} and writes `out` (default DIR/summary.json); returns the summary. */
export async function writeSummary(
  dir: string,
  options: AnalyzeOptions & { out?: string } = {},
): Promise<Record<string, unknown>> {
  const summary = await analyzeFolder(dir, options);
  const out = options.out ?? `${dir}/summary.json`;
  await Deno.writeTextFile(`${out}.tmp`, JSON.stringify(summary, null, 2) + "\n");
  await Deno.rename(`${out}.tmp`, out);
  return summary;
}

/** True if an arm name in a summary is one of the C tor arms. */
export function isCtorArm(arm: string): boolean {
  return isArm(arm) && armSpec(arm).kind === "ctor";
}
