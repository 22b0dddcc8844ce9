/**
 * The cross-circuit interference experiment: the same workload on the same private network
 * under several arms — our relays on the `tor` or `pctcp` transport with the `vanilla` or
 * `kist` scheduler, a half-upgraded (`mixed`) network, and Debian's C tor (`ctor`) with the
 * same BandwidthRate per relay, the same pinned path and the same workload. `--runs N`
 * repeats the whole set with a fresh network and seed per run, arms interleaved (A B A B …),
 * so drift of the machine falls on every arm alike.
 *
 * Everything lands in one folder: raw records per arm (pooled, and per run under runs/),
 * queue samples (queues.json), summary.json, summary.md, CDF plots and report.html.
 * @module
 */

import { networkDown, type NetworkState, networkUp } from "../network/launcher.ts";
import { runMeasurement, type Workload } from "../measure/run.ts";
import { circuitLookupFromLog } from "../measure/streams.ts";
import { readRecords } from "../stats/load.ts";
import { compareSamples, type Comparison, describeChange } from "../stats/compare.ts";
import { percentile } from "../stats/percentile.ts";
import { estimate } from "../stats/summary.ts";
import { VERSION } from "../version.ts";
import { loadScenario, type Scenario, sizeOf, sizesOf } from "./scenario.ts";
import { sampleSockets, type SocketSample } from "./sockets.ts";
import { writeReport } from "./report.ts";
import type { MeasureRecord } from "../measure/record.ts";
import { serve } from "../serve/server.ts";
import { startTorTestnet, type TorTestnet } from "../tor/testnet.ts";
import { PinnedCircuits } from "../tor/pinned.ts";
import { startTorOnEmulatedHosts } from "../tor/emulated.ts";
import { timedFetch } from "../measure/fetch.ts";
import { type EmulationSpec, mergeSpecs } from "../emulate/config.ts";
import type { SchedulerKind } from "../channel/scheduler.ts";

/**
 * The arms: our relays (transport, scheduler), or Debian's C tor — as deployed (`ctor`:
 * KIST and proposal 324's congestion control, on by default since 0.4.7) or with congestion
 * control off (`ctor-nocc`: consensus parameter cc_alg=0, fixed SENDME windows as ours).
 */
export const ARMS = [
  "tor",
  "tor-kist",
  "pctcp",
  "pctcp-kist",
  "mixed",
  "ctor",
  "ctor-nocc",
] as const;
/** An arm of the experiment. */
export type Arm = typeof ARMS[number];

/** What an arm runs. */
export function armSpec(
  arm: Arm,
): { kind: "ours"; transport: "tor" | "pctcp" | "mixed"; scheduler: SchedulerKind } | {
  kind: "ctor";
  congestionControl: boolean;
} {
  if (arm === "ctor" || arm === "ctor-nocc") {
    return { kind: "ctor", congestionControl: arm === "ctor" };
  }
  const [t, s] = arm.split("-") as ["tor" | "pctcp" | "mixed", string | undefined];
  return { kind: "ours", transport: t, scheduler: s === "kist" ? "kist" : "vanilla" };
}

/** Options of the experiment. */
export interface InterferenceOptions {
  /** Scenario name or file (default "quick"), or a scenario object (sweeps). */
  scenario?: string | Scenario;
  /** Output folder. */
  out: string;
  /** Arms in the order they run in each run (default tor, pctcp). */
  arms?: Arm[];
  /** The arm changes are computed against (default tor, or the first arm). */
  base?: Arm;
  /** Runs (default 1): a fresh network and seed per run, arms interleaved. */
  runs?: number;
  /** Add the mixed arm (same as listing it in `arms`). */
  mixed?: boolean;
  /** Add the ctor arm (same as listing it in `arms`). */
  withRealTor?: boolean;
  /** Hosts in network namespaces, links through the user-space emulator (root needed). */
  netns?: boolean;
  /** With `netns`: emulation flags, layered over the scenario's `emulation` field. */
  emulation?: EmulationSpec;
  /** Override the scenario's duration (s). */
  durationS?: number;
  /** Progress lines go here. */
  progress?: (line: string) => void;
  /** Aborts (Ctrl-C): the current arm stops, its network is torn down. */
  signal?: AbortSignal;
}

/** One metric's comparison in summary.json (tor vs pctcp, the fields of version 1). */
export interface MetricSummary {
  /** Per percentile. */
  [p: string]: { tor: number; pctcp: number; change_pct: number; ci95: [number, number] };
}

/** The metrics the summary reports, with the label and phase they come from. */
export const METRICS = {
  web_response: { label: "web", phase: "first_byte" },
  web_download: { label: "web", phase: "last_byte" },
  bulk_download: { label: "bulk", phase: "last_byte" },
} as const;
/** A metric name. */
export type Metric = keyof typeof METRICS;
/** The percentiles reported. */
export const SUMMARY_PERCENTILES = [50, 75, 90] as const;

/** Samples (ms) of a records file by metric. */
export async function metricSamples(
  file: string,
): Promise<Record<Metric, number[]> & { errors: number; total: number }> {
  const out = {
    web_response: [] as number[],
    web_download: [] as number[],
    bulk_download: [] as number[],
    errors: 0,
    total: 0,
  };
  await readRecords([file], (r) => {
    out.total++;
    if (r.outcome !== "ok") {
      out.errors++;
      return;
    }
    for (const [k, m] of Object.entries(METRICS)) {
      const v = r.phases_ms[m.phase];
      if (r.label === m.label && typeof v === "number") out[k as Metric].push(v);
    }
  });
  return out;
}

/** One sample of where bytes wait, summed over the arm's relays. */
export interface QueuePoint {
  /** ms since the arm's measurement started. */
  t: number;
  /** Kernel send queues of relay-to-relay sockets (ss), bytes. */
  kernel_send_q: number;
  /** Of those, not yet sent (ss notsent), bytes. */
  kernel_notsent: number;
  /** Of those, sent and not yet acknowledged, bytes. */
  kernel_unacked: number;
  /** Kernel receive queues of relay-to-relay sockets: received, not yet read by a relay
   * (a relay whose read bucket is empty stops reading), bytes. */
  kernel_recv_q: number;
  /** Our relays' circuit queues toward other relays, bytes (absent for ctor). */
  circuit_queues?: number;
  /** Our relays' output buffers (KIST: scheduled, not yet in the kernel), bytes. */
  outbufs?: number;
}

/** A network an arm runs on: where to send SOCKS, what to fetch, how to tear it down. */
interface ArmNetwork {
  socks: string;
  server: string;
  orPorts: number[];
  /** Namespaces to sample sockets in (netns mode). */
  namespaces?: string[];
  /** How links were emulated. */
  emulation?: string[];
  circuitLookup?: (port: number) => MeasureRecord["circuit"] | Promise<MeasureRecord["circuit"]>;
  relayStats(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Our relays (tor, pctcp or mixed transport; vanilla or kist) as processes. */
async function ourNetwork(
  arm: Arm,
  s: Scenario,
  dir: string,
  o: InterferenceOptions,
): Promise<ArmNetwork> {
  const spec = armSpec(arm);
  if (spec.kind !== "ours") throw new TypeError(`${arm} is not one of our arms`);
  const netns = o.netns ?? false;
  const emulation = netns ? mergeSpecs(s.emulation, o.emulation) : undefined;
  const net: NetworkState = await networkUp({
    dir,
    relays: s.relays,
    transport: spec.transport,
    scheduler: spec.scheduler,
    bandwidths: s.bandwidths.map(sizeOf),
    ...(s.path ? { path: s.path } : {}),
    logLevel: "warn",
    ownerPid: Deno.pid,
    // On real hosts PCTCP's per-circuit connections run under IPsec, as the design has it;
    // the tor arm keeps its encrypted shared links.
    ...(netns
      ? { netns: true, ipsec: spec.transport !== "tor", ...(emulation ? { emulation } : {}) }
      : {}),
  });
  return {
    socks: net.socks,
    server: net.server,
    orPorts: net.relays.map((r) => r.orPort),
    namespaces: net.netns?.hosts.filter((h) => h.name.startsWith("relay")).map((h) => h.ns) ?? [],
    emulation: net.emulation?.notes ??
      ["loopback; relays rate-limited by their token buckets (reads and writes)"],
    circuitLookup: circuitLookupFromLog(net.streams),
    async relayStats() {
      const out: Record<string, unknown> = {};
      for (const r of net.relays) {
        try {
          out[r.nickname] = JSON.parse(await Deno.readTextFile(`${dir}/${r.nickname}/stats.json`));
        } catch { /* none */ }
      }
      return out;
    },
    stop: () => networkDown(dir).then(() => {}),
  };
}

/**
 * Debian's tor as the same network: relays with the scenario's BandwidthRate, every circuit
 * pinned through the relays the scenario names (relayN → the Nth tor relay), one circuit per
 * SOCKS user as our client makes. Its scheduler is KIST (set explicitly). With `--netns` every
 * node and the server run in namespaces of their own over the same emulator, host names, host
 * rates and paths as our arms (lib/tor/emulated.ts); otherwise on loopback.
 */
async function realTorNetwork(
  s: Scenario,
  dir: string,
  cc: boolean,
  o: InterferenceOptions,
): Promise<ArmNetwork> {
  const relays = Math.max(4, s.relays);
  const bandwidths = s.bandwidths.map(sizeOf);
  const extraTorrc = ["Schedulers KIST", ...(cc ? [] : ["ConsensusParams cc_alg=0"])];
  const ccNote = cc ? "congestion control as deployed" : "congestion control off (cc_alg=0)";
  let tor: TorTestnet | undefined;
  let pinned: PinnedCircuits | undefined;
  let stopNet: () => Promise<void> = () => Promise.resolve();
  let server: string;
  let emulation: string[];
  let namespaces: string[] | undefined;
  try {
    if (o.netns) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const net = await startTorOnEmulatedHosts({
        dir,
        relays,
        bandwidths,
        emulation: mergeSpecs(s.emulation, o.emulation),
        tor: { bandwidths, extraTorrc },
        ownerPid: Deno.pid,
        // On private 10.x hosts tor's own exit choice finds no exit for the server (README,
        // Baselines): readiness is checked below through the pinned path instead.
        readyFetch: !s.path,
      });
      stopNet = net.stop;
      tor = net.tor;
      server = net.server;
      namespaces = net.hosts.hosts.filter((h) => h.name.startsWith("relay")).map((h) => h.ns);
      emulation = [
        ...net.emulation.notes,
        `Debian's tor ${tor.version} on those hosts, BandwidthRate/Burst per relay as the scenario, Schedulers KIST, ${ccNote}`,
      ];
    } else {
      // Fresh keys and data directories each time (tor-gencert refuses to overwrite).
      for (const d of [dir, `${dir}-retry2`]) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
      const srv = await serve();
      stopNet = () => srv.stop();
      server = srv.url;
      tor = await startTorTestnet({
        dir,
        relays,
        bandwidths,
        readyUrl: `${server}/bytes/1KiB`,
        extraTorrc,
      });
      emulation = [
        `loopback; Debian's tor ${tor.version}, BandwidthRate/Burst per relay as the scenario, Schedulers KIST, ${ccNote}`,
      ];
    }
    const t = tor;
    if (s.path) {
      const fps = s.path.map((nick) => {
        const i = Number(/(\d+)$/.exec(nick)?.[1]) - 1;
        const r = t.relays[i];
        if (!r) throw new RangeError(`scenario path names ${nick}, which the tor network lacks`);
        return r.fingerprint;
      });
      pinned = await PinnedCircuits.open(t.control, fps, { cookieFile: t.cookieFile });
      if (o.netns) await readyThrough(t.socks, `${server}/bytes/1KiB`, 90_000);
    }
    const p = pinned;
    const down = stopNet;
    return {
      socks: t.socks,
      server,
      orPorts: t.relays.map((r) => r.orPort),
      ...(namespaces ? { namespaces } : {}),
      emulation,
      ...(p ? { circuitLookup: (port: number) => p.info(port) } : {}),
      relayStats: () => Promise.resolve({ version: t.version }),
      async stop() {
        await p?.close().catch(() => {});
        await t.stop();
        await down();
      },
    };
  } catch (e) {
    await pinned?.close().catch(() => {});
    await tor?.stop();
    await stopNet();
    throw e;
  }
}

/** Waits until a fetch through `socks` succeeds (a pinned circuit works), or throws. */
async function readyThrough(socks: string, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await timedFetch(url, {
      socksHost: socks.split(":")[0]!,
      socksPort: Number(socks.split(":")[1]),
      timeoutMs: 15_000,
      socksUser: "ready",
    });
    if (r.outcome === "ok") return;
    if (Date.now() > deadline) {
      throw new Error(`C tor on the emulated hosts carries no traffic: ${r.outcome}: ${r.error}`);
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

/** The workloads of a scenario. */
function workloads(s: Scenario, server: string): Workload[] {
  const w: Workload[] = [{
    label: "web",
    urls: sizesOf(s.web.size).map((z) => `${server}/bytes/${z}`),
    thinkS: s.web.thinkS,
    concurrency: s.web.clients,
  }];
  if (s.bulk.clients > 0) {
    w.push({
      label: "bulk",
      urls: sizesOf(s.bulk.size).map((z) => `${server}/bytes/${z}`),
      ...(s.bulk.thinkS ? { thinkS: s.bulk.thinkS } : {}),
      concurrency: s.bulk.clients,
    });
  }
  return w;
}

interface ArmResult {
  records: string;
  sockets: SocketSample[];
  queues: QueuePoint[];
  relayStats: Record<string, unknown>;
  emulation: string[];
}

async function runArm(
  arm: Arm,
  run: number,
  s: Scenario,
  o: InterferenceOptions,
): Promise<ArmResult> {
  const say = o.progress ?? (() => {});
  const tag = (o.runs ?? 1) > 1 ? `[${arm} run ${run}]` : `[${arm}]`;
  const dir = run === 1 ? `${o.out}/net-${arm}` : `${o.out}/net-${arm}-r${run}`;
  const runDir = `${o.out}/runs/r${run}`;
  await Deno.mkdir(runDir, { recursive: true });
  const records = `${runDir}/records-${arm}.jsonl`;
  await Deno.remove(records).catch(() => {});
  await Deno.remove(`${records}.runs.jsonl`).catch(() => {});
  const spec = armSpec(arm);
  say(
    spec.kind === "ctor"
      ? `${tag} starting a private network of Debian's tor`
      : `${tag} starting ${s.relays} relays (${spec.transport}, scheduler ${spec.scheduler})`,
  );
  const net = spec.kind === "ctor"
    ? await realTorNetwork(s, dir, spec.congestionControl, o)
    : await ourNetwork(arm, s, dir, o);
  if (net.emulation) say(`${tag} emulation: ${net.emulation.join("; ")}`);
  const sockets: SocketSample[] = [];
  const queues: QueuePoint[] = [];
  let relayStats: Record<string, unknown> = {};
  try {
    const orPorts = new Set(net.orPorts);
    const socksPort = Number(net.socks.split(":")[1]);
    const t0 = performance.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const x = await sampleSockets(orPorts, new Set([socksPort]), net.namespaces);
        const t = Math.round(performance.now() - t0);
        if (x) {
          sockets.push({ t, ...x });
          const p: QueuePoint = {
            t,
            kernel_send_q: x.sendQ,
            kernel_notsent: x.notsent,
            kernel_unacked: Math.max(0, x.sendQ - x.notsent),
            kernel_recv_q: x.recvQ,
          };
          if (spec.kind === "ours") {
            let cq = 0, ob = 0;
            for (const st of Object.values(await net.relayStats())) {
              const q = (st as { scheduler?: { queues?: Record<string, number> } }).scheduler
                ?.queues;
              cq += q?.circuitQueueBytes ?? 0;
              ob += q?.outbufBytes ?? 0;
            }
            p.circuit_queues = cq;
            p.outbufs = ob;
          }
          queues.push(p);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const duration = o.durationS ?? s.durationS;
    say(
      `${tag} measuring for ${duration} s: ${s.web.clients} web clients (${s.web.size}, think ${s.web.thinkS} s), ${s.bulk.clients} bulk clients (${s.bulk.size})`,
    );
    let summary;
    try {
      summary = await runMeasurement({
        socks: net.socks,
        workloads: workloads(s, net.server),
        durationS: duration,
        timeoutMs: s.timeoutS * 1000,
        jitter: s.jitter,
        seed: s.seed + run - 1,
        transport: arm,
        out: records,
        ...(net.circuitLookup ? { circuitLookup: net.circuitLookup } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } finally {
      sampling = false;
      await sampler;
    }
    relayStats = await net.relayStats();
    say(`${tag} ${summary.ok} fetches ok, ${summary.failed} failed`);
  } finally {
    await net.stop().catch(() => {});
  }
  // The pooled file: every run's records of this arm.
  const text = await Deno.readTextFile(records).catch(() => "");
  await Deno.writeTextFile(`${o.out}/records-${arm}.jsonl`, text, { append: true });
  return { records, sockets, queues, relayStats, emulation: net.emulation ?? [] };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Facts of the machine saved beside the results. */
async function machineFacts(): Promise<Record<string, unknown>> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const cpu = (await read("/proc/cpuinfo")).split("\n").find((l) => l.startsWith("model name"))
    ?.split(":")[1]?.trim();
  return {
    hostname: Deno.hostname(),
    os: Deno.build.os,
    arch: Deno.build.arch,
    kernel: Deno.osRelease(),
    cpus: navigator.hardwareConcurrency,
    cpu,
    memory_bytes: Deno.systemMemoryInfo().total,
    deno: Deno.version.deno,
  };
}

/** The arms a set of options asks for, in order, without repeats. */
export function armsOf(o: Pick<InterferenceOptions, "arms" | "mixed" | "withRealTor">): Arm[] {
  const arms: Arm[] = [...(o.arms ?? ["tor", "pctcp"])];
  if (o.mixed) arms.push("mixed");
  if (o.withRealTor) arms.push("ctor");
  return [...new Set(arms)];
}

/** Runs the experiment and writes its folder; returns the summary. */
export async function runInterference(o: InterferenceOptions): Promise<Record<string, unknown>> {
  const s = typeof o.scenario === "object" ? o.scenario : await loadScenario(o.scenario ?? "quick");
  const arms = armsOf(o);
  const runs = o.runs ?? 1;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new RangeError("runs must be ≥ 1");
  const base = o.base ?? (arms.includes("tor") ? "tor" : arms[0]!);
  if (!arms.includes(base)) throw new RangeError(`base arm ${base} is not among the arms`);
  await Deno.mkdir(o.out, { recursive: true });
  for (const arm of arms) await Deno.remove(`${o.out}/records-${arm}.jsonl`).catch(() => {});
  const started = new Date().toISOString();
  await Deno.writeTextFile(`${o.out}/scenario.json`, JSON.stringify(s, null, 2) + "\n");
  await Deno.writeTextFile(
    `${o.out}/machine.json`,
    JSON.stringify(await machineFacts(), null, 2) + "\n",
  );
  const queues: Record<string, Record<string, unknown>> = {};
  const emulation: Record<string, string[]> = {};
  const order: string[] = [];
  for (let run = 1; run <= runs && !o.signal?.aborted; run++) {
    for (const arm of arms) {
      if (o.signal?.aborted) break;
      const r = await runArm(arm, run, s, o);
      order.push(`${arm}#${run}`);
      emulation[arm] ??= r.emulation;
      const q = queues[arm] ??= { series: [] as unknown[] };
      (q.series as unknown[]).push({ run, points: r.queues });
      if (run === 1) {
        const sq = r.sockets.map((x) => x.sendQ);
        Object.assign(q, {
          relay_sockets_send_q_bytes: {
            mean: round(sq.reduce((a, b) => a + b, 0) / Math.max(1, sq.length)),
            p90: sq.length ? percentile(sq, 90) : null,
            max: sq.length ? Math.max(...sq) : null,
          },
          relay_to_relay_connections: {
            max: r.sockets.length ? Math.max(...r.sockets.map((x) => x.connections)) : null,
          },
          emulation: r.emulation,
          samples: r.sockets,
          relays: r.relayStats,
        });
      }
      // Deno.writeTextFile after every arm, so an interrupted experiment keeps its queues.
      await Deno.writeTextFile(`${o.out}/queues.json`, JSON.stringify(queues, null, 2) + "\n");
    }
  }
  for (const q of Object.values(queues)) q.where_bytes_wait = whereBytesWait(q.series as never);
  await Deno.writeTextFile(`${o.out}/queues.json`, JSON.stringify(queues, null, 2) + "\n");
  const summary = await summarizeFolder(o.out, {
    started,
    scenario: s.name,
    arms,
    base,
    experiment: {
      arms,
      base,
      runs,
      order,
      seeds: Array.from({ length: runs }, (_, i) => s.seed + i),
      netns: !!o.netns,
      // Where C tor's nodes ran: in namespaces over the same emulator as ours (since j12).
      ...(arms.some((a) => armSpec(a).kind === "ctor")
        ? { ctor_network: o.netns ? "emulated-hosts" : "loopback" }
        : {}),
      emulation,
      emulation_spec: o.netns ? mergeSpecs(s.emulation, o.emulation) : null,
      ...(o.durationS !== undefined ? { duration_s: o.durationS } : {}),
    },
  });
  await writeReport(o.out);
  return summary;
}

/** Mean bytes waiting in each place over every sample of every run. */
function whereBytesWait(
  series: { run: number; points: QueuePoint[] }[],
): Record<string, number | null> {
  const all = series.flatMap((x) => x.points);
  const mean = (k: keyof QueuePoint) => {
    const v = all.map((p) => p[k]).filter((x): x is number => typeof x === "number");
    return v.length ? Math.round(v.reduce((a, b) => a + b, 0) / v.length) : null;
  };
  return {
    samples: all.length,
    circuit_queues_mean_bytes: mean("circuit_queues"),
    outbufs_mean_bytes: mean("outbufs"),
    kernel_notsent_mean_bytes: mean("kernel_notsent"),
    kernel_unacked_mean_bytes: mean("kernel_unacked"),
    kernel_recv_q_mean_bytes: mean("kernel_recv_q"),
  };
}

/** Two-sided 97.5 % quantiles of Student's t for 1…30 degrees of freedom. */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.160,
  2.145,
  2.131,
  2.120,
  2.110,
  2.101,
  2.093,
  2.086,
  2.080,
  2.074,
  2.069,
  2.064,
  2.060,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/**
 * Mean of per-run values with a 95 % t interval (runs are independent networks and seeds);
 * `ci` is null with fewer than two runs.
 */
export function acrossRuns(values: number[]): { mean: number; ci: [number, number] | null } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, n);
  if (n < 2) return { mean: round(mean), ci: null };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const h = (T975[Math.min(n - 2, T975.length - 1)] ?? 1.96) * sd / Math.sqrt(n);
  return { mean: round(mean), ci: [round(mean - h), round(mean + h)] };
}

function summarize(c: Comparison, tor: number[], pctcp: number[]) {
  const m: Record<string, unknown> = {};
  for (const ch of c.changes) {
    m[`p${ch.p}`] = {
      tor: round(ch.base),
      pctcp: round(ch.other),
      change_pct: round(ch.changePct),
      ci95: [round(ch.lo), round(ch.hi)],
    };
  }
  m.n = { tor: tor.length, pctcp: pctcp.length };
  m.mann_whitney_p = Number(c.pValue.toPrecision(3));
  return m;
}

type Samples = Awaited<ReturnType<typeof metricSamples>>;

/** The arms whose pooled records are in a folder, in ARMS order (legacy realtor → ctor). */
async function armsInFolder(out: string): Promise<Arm[]> {
  const have: Arm[] = [];
  for (const a of ARMS) {
    if (await Deno.stat(`${out}/records-${a}.jsonl`).then(() => true, () => false)) have.push(a);
  }
  return have;
}

async function runsInFolder(out: string): Promise<number[]> {
  const runs: number[] = [];
  try {
    for await (const e of Deno.readDir(`${out}/runs`)) {
      const m = /^r(\d+)$/.exec(e.name);
      if (e.isDirectory && m) runs.push(Number(m[1]));
    }
  } catch { /* no runs folder */ }
  return runs.sort((a, b) => a - b);
}

/** Recomputes summary.json and summary.md from a folder's records (used by `pctcp report`). */
export async function summarizeFolder(
  out: string,
  meta: {
    started?: string;
    scenario?: string;
    arms?: readonly string[];
    base?: Arm;
    experiment?: Record<string, unknown>;
  } = {},
): Promise<Record<string, unknown>> {
  const old = JSON.parse(await Deno.readTextFile(`${out}/summary.json`).catch(() => "{}"));
  const legacyReal = await Deno.stat(`${out}/records-realtor.jsonl`).then(() => true, () => false);
  const arms = (meta.arms?.filter((a): a is Arm => (ARMS as readonly string[]).includes(a))) ??
    await armsInFolder(out);
  const pooled: Partial<Record<Arm, Samples>> = {};
  for (const a of arms) pooled[a] = await metricSamples(`${out}/records-${a}.jsonl`);
  if (legacyReal && !pooled.ctor) {
    pooled.ctor = await metricSamples(`${out}/records-realtor.jsonl`);
    arms.push("ctor");
  }
  const base: Arm = meta.base ?? old.experiment?.base ??
    (arms.includes("tor") ? "tor" : arms[0] ?? "tor");
  const runNums = await runsInFolder(out);
  const perRun: Record<number, Partial<Record<Arm, Samples>>> = {};
  for (const r of runNums) {
    perRun[r] = {};
    for (const a of arms) {
      try {
        perRun[r]![a] = await metricSamples(`${out}/runs/r${r}/records-${a}.jsonl`);
      } catch { /* arm did not run in this run */ }
    }
  }
  const experiment = meta.experiment ?? old.experiment ?? { arms, base, runs: runNums.length };
  const summary: Record<string, unknown> = {
    v: 1,
    tool: "pctcp",
    version: VERSION,
    scenario: meta.scenario ??
      JSON.parse(await Deno.readTextFile(`${out}/scenario.json`).catch(() => "{}")).name,
    started: meta.started ?? old.started,
    finished: new Date().toISOString(),
    time_base:
      "onionperf: ms from stream start (SOCKS included); response = first byte, download = last byte",
    change:
      "(pctcp - tor) / tor in %, negative is faster; ci95 from a 1000-resample bootstrap of both arms",
    errors: Object.fromEntries(
      arms.map((a) => [a, { failed: pooled[a]!.errors, total: pooled[a]!.total }]),
    ),
    experiment,
    runs: Math.max(1, runNums.length),
  };
  // Version-1 name of the C tor arm's errors.
  if (pooled.ctor) {
    (summary.errors as Record<string, unknown>).real_tor = {
      failed: pooled.ctor.errors,
      total: pooled.ctor.total,
    };
  }
  const lines: string[] = [];
  const tor = pooled.tor, pctcp = pooled.pctcp;
  // Version-1 fields: tor vs pctcp per metric and percentile.
  for (const k of Object.keys(METRICS) as Metric[]) {
    if (!tor?.[k].length || !pctcp?.[k].length) {
      summary[k] = null;
      if (tor && pctcp) lines.push(`${k}: not enough successful fetches in both arms`);
      continue;
    }
    const c = compareSamples(tor[k], pctcp[k], SUMMARY_PERCENTILES);
    const m = summarize(c, tor[k], pctcp[k]) as Record<string, Record<string, unknown>>;
    for (const [arm, key] of [["mixed", "mixed"], ["ctor", "real_tor"]] as const) {
      const x = pooled[arm]?.[k];
      if (!x?.length) continue;
      for (const p of SUMMARY_PERCENTILES) m[`p${p}`]![key] = round(percentile(x, p));
    }
    summary[k] = m;
    for (const ch of c.changes) lines.push(describeChange(k.replace("_", " ") + " time", ch));
  }
  // Every arm: pooled percentiles with bootstrap intervals, per-run values, across runs.
  const armsOut: Record<string, unknown> = {};
  for (const a of arms) {
    const m: Record<string, unknown> = {};
    for (const k of Object.keys(METRICS) as Metric[]) {
      const v = pooled[a]![k];
      if (!v.length) {
        m[k] = null;
        continue;
      }
      const est = estimate(Float64Array.from(v).sort(), SUMMARY_PERCENTILES);
      const e: Record<string, unknown> = { n: v.length };
      for (const x of est) {
        const runsMs = runNums.map((r) => perRun[r]![a]?.[k]).filter((s): s is number[] =>
          !!s?.length
        ).map((s) => round(percentile(s, x.p)));
        e[`p${x.p}`] = {
          ms: round(x.value),
          ci: [round(x.lo), round(x.hi)],
          runs_ms: runsMs,
          across_runs: acrossRuns(runsMs),
        };
      }
      m[k] = e;
    }
    armsOut[a] = m;
  }
  summary.arms = armsOut;
  // Every arm against the base: pooled bootstrap change, per-run changes, across runs.
  const changes: Record<string, unknown> = {};
  for (const a of arms) {
    if (a === base) continue;
    const m: Record<string, unknown> = {};
    for (const k of Object.keys(METRICS) as Metric[]) {
      const b = pooled[base]?.[k], x = pooled[a]![k];
      if (!b?.length || !x.length) {
        m[k] = null;
        continue;
      }
      const c = compareSamples(b, x, SUMMARY_PERCENTILES);
      const e: Record<string, unknown> = { mann_whitney_p: Number(c.pValue.toPrecision(3)) };
      for (const ch of c.changes) {
        const runsPct = runNums.flatMap((r) => {
          const rb = perRun[r]![base]?.[k], rx = perRun[r]![a]?.[k];
          if (!rb?.length || !rx?.length) return [];
          const pb = percentile(rb, ch.p);
          return [round((percentile(rx, ch.p) - pb) / pb * 100)];
        });
        e[`p${ch.p}`] = {
          pct: round(ch.changePct),
          ci: [round(ch.lo), round(ch.hi)],
          runs_pct: runsPct,
          across_runs: acrossRuns(runsPct),
        };
      }
      m[k] = e;
      if (!(a === "pctcp" && base === "tor")) {
        const ch = c.changes[0]!;
        lines.push(
          `${a} against ${base}, ${k.replace("_", " ")} time: ${
            describeChange("", ch).replace(/^[\s:]+/, "")
          }`,
        );
      }
    }
    changes[`${a}_vs_${base}`] = m;
  }
  summary.changes = changes;
  // Calibration: our tor transport (KIST first) against C tor on the same workload.
  const calibrations: Record<string, unknown>[] = [];
  for (const against of ["ctor", "ctor-nocc"] as const) {
    const ref = pooled[against];
    if (!ref) continue;
    for (const a of ["tor-kist", "tor"] as const) {
      if (!pooled[a]) continue;
      const cal: Record<string, unknown> = {
        arm: a,
        against,
        ratio:
          `${a} / ${against} at each percentile; 1 = same, < 1 = ours faster; 95 % bootstrap CI`,
        // C tor ran on the emulated hosts too when the experiment says so (ctor_network);
        // folders from before that ran it on loopback, the same network only without --netns.
        same_network: !(experiment as { netns?: boolean }).netns ||
          (experiment as { ctor_network?: string }).ctor_network === "emulated-hosts",
      };
      for (const k of Object.keys(METRICS) as Metric[]) {
        const b = ref[k], x = pooled[a]![k];
        if (!b.length || !x.length) {
          cal[k] = null;
          continue;
        }
        const c = compareSamples(b, x, SUMMARY_PERCENTILES);
        const e: Record<string, unknown> = {};
        for (const ch of c.changes) {
          e[`p${ch.p}`] = {
            ratio: round(1 + ch.changePct / 100),
            ci: [round(1 + ch.lo / 100), round(1 + ch.hi / 100)],
          };
        }
        cal[k] = e;
      }
      calibrations.push(cal);
    }
  }
  if (calibrations.length) {
    summary.calibration = calibrations[0];
    summary.calibrations = calibrations;
    const goal = calibrationVerdict(calibrations[0]!);
    lines.push(goal);
  }
  summary.sentences = lines;
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  await Deno.writeTextFile(`${out}/summary.md`, summaryMarkdown(summary));
  return summary;
}

/** Whether a calibration meets the ±25 % goal on web response/download p50, p90 and bulk p50. */
export function calibrationVerdict(cal: Record<string, unknown>): string {
  const want: [Metric, string][] = [
    ["web_response", "p50"],
    ["web_response", "p90"],
    ["web_download", "p50"],
    ["web_download", "p90"],
    ["bulk_download", "p50"],
  ];
  const out: string[] = [];
  for (const [k, p] of want) {
    const r = (cal[k] as Record<string, { ratio: number }> | null)?.[p]?.ratio;
    if (r === undefined) continue;
    out.push(`${k} ${p} ×${r.toFixed(2)}${Math.abs(r - 1) <= 0.25 ? "" : " (outside ±25 %)"}`);
  }
  return `calibration ${cal.arm} against ${cal.against}: ${out.join(", ")}`;
}

function fmtCi(ci: unknown, digits = 0): string {
  if (!Array.isArray(ci)) return "–";
  return `${Number(ci[0]).toFixed(digits)} .. ${Number(ci[1]).toFixed(digits)}`;
}

/** The comparison tables in Markdown (also what the demo prints). */
export function summaryMarkdown(summary: Record<string, unknown>): string {
  type Row = {
    tor: number;
    pctcp: number;
    change_pct: number;
    ci95: [number, number];
    mixed?: number;
    real_tor?: number;
  };
  const parts: string[] = [];
  const metrics = Object.keys(METRICS).map((k) =>
    [k, summary[k] as Record<string, Row> | null | undefined] as const
  );
  if (metrics.some(([, m]) => m)) {
    const extra = (["mixed", "real_tor"] as const).filter((x) =>
      metrics.some(([, m]) => m?.p50?.[x] !== undefined)
    );
    const head = [
      "metric",
      "pct",
      "tor ms",
      "pctcp ms",
      "change",
      "95 % CI",
      ...extra.map((x) => `${x.replace("_", " ")} ms`),
    ];
    const rows = [
      `| ${head.join(" | ")} |`,
      `| --- | --- | ---: | ---: | ---: | --- |${extra.map(() => " ---: |").join("")}`,
    ];
    for (const [k, m] of metrics) {
      if (!m) {
        rows.push(`| ${k} | – | – | – | – | too few samples |${extra.map(() => " – |").join("")}`);
        continue;
      }
      for (const p of ["p50", "p75", "p90"]) {
        const e = m[p]!;
        const more = extra.map((x) => ` ${e[x] !== undefined ? e[x]!.toFixed(1) : "–"} |`).join(
          "",
        );
        rows.push(
          `| ${k} | ${p} | ${e.tor.toFixed(1)} | ${e.pctcp.toFixed(1)} | ${
            e.change_pct >= 0 ? "+" : ""
          }${e.change_pct.toFixed(1)} % | ${e.ci95[0].toFixed(1)} .. ${
            e.ci95[1].toFixed(1)
          } % |${more}`,
        );
      }
    }
    parts.push(rows.join("\n"));
  }
  // Every arm, p50 and p90 with intervals (pooled bootstrap; across runs when > 1 run).
  const arms = summary.arms as
    | Record<
      string,
      Record<
        string,
        Record<string, { ms: number; ci: [number, number]; across_runs?: { ci: unknown } }> | null
      >
    >
    | undefined;
  const runs = Number(summary.runs ?? 1);
  if (arms && Object.keys(arms).length) {
    const rows = [
      `| arm | metric | p50 ms | 95 % CI | p90 ms | 95 % CI |${
        runs > 1 ? " p50 across runs CI |" : ""
      }`,
      `| --- | --- | ---: | --- | ---: | --- |${runs > 1 ? " --- |" : ""}`,
    ];
    for (const [arm, m] of Object.entries(arms)) {
      for (const k of Object.keys(METRICS)) {
        const e = m[k];
        if (!e) continue;
        const p50 = e.p50!, p90 = e.p90!;
        rows.push(
          `| ${arm} | ${k} | ${p50.ms.toFixed(0)} | ${fmtCi(p50.ci)} | ${p90.ms.toFixed(0)} | ${
            fmtCi(p90.ci)
          } |${runs > 1 ? ` ${fmtCi(p50.across_runs?.ci)} |` : ""}`,
        );
      }
    }
    parts.push(rows.join("\n"));
  }
  const changes = summary.changes as
    | Record<string, Record<string, Record<string, { pct: number; ci: unknown }> | null>>
    | undefined;
  if (changes && Object.keys(changes).length) {
    const rows = [
      "| change | metric | p50 | 95 % CI | p90 | 95 % CI |",
      "| --- | --- | ---: | --- | ---: | --- |",
    ];
    for (const [name, m] of Object.entries(changes)) {
      for (const k of Object.keys(METRICS)) {
        const e = m[k];
        if (!e) continue;
        const f = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)} %`;
        rows.push(
          `| ${name} | ${k} | ${f(e.p50!.pct)} | ${fmtCi(e.p50!.ci, 1)} % | ${f(e.p90!.pct)} | ${
            fmtCi(e.p90!.ci, 1)
          } % |`,
        );
      }
    }
    parts.push(rows.join("\n"));
  }
  const cals =
    (summary.calibrations ?? (summary.calibration ? [summary.calibration] : [])) as Record<
      string,
      unknown
    >[];
  if (cals.length) {
    const rows = [
      "| calibration | metric | p50 ratio | 95 % CI | p90 ratio | 95 % CI |",
      "| --- | --- | ---: | --- | ---: | --- |",
    ];
    for (const cal of cals) {
      for (const k of Object.keys(METRICS)) {
        const e = cal[k] as Record<string, { ratio: number; ci: unknown }> | null;
        if (!e) continue;
        rows.push(
          `| ${cal.arm} / ${cal.against} | ${k} | ${e.p50!.ratio.toFixed(2)} | ${
            fmtCi(e.p50!.ci, 2)
          } | ${e.p90!.ratio.toFixed(2)} | ${fmtCi(e.p90!.ci, 2)} |`,
        );
      }
    }
    parts.push(rows.join("\n"));
  }
  return parts.join("\n\n") + "\n\n" +
    ((summary.sentences as string[]) ?? []).map((l) => `- ${l}`).join("\n") + "\n";
}
