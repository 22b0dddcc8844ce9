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
import { runMeasurement, splitHostPort, type Workload } from "../measure/run.ts";
import { circuitLookupFromLog } from "../measure/streams.ts";
import type { MeasureRecord } from "../measure/record.ts";
import { timedFetch } from "../measure/fetch.ts";
import { percentile } from "../stats/percentile.ts";
import { VERSION } from "../version.ts";
import {
  loadScenario,
  maxDurationOf,
  minSamplesOf,
  type Scenario,
  sizeOf,
  sizesOf,
} from "./scenario.ts";
import { sampleSockets, type SocketSample } from "./sockets.ts";
import {
  type Arm,
  armsOf,
  armSpec,
  defaultBase,
  type Metric,
  METRIC_NAMES,
  METRICS,
} from "./arms.ts";
import { type Manifest, writeSummary } from "./analyze.ts";
import type { LoadSample } from "./load.ts";
import { writeExperimentReport } from "./report.ts";
import { LoadWatch } from "./load.ts";
import { serve } from "../serve/server.ts";
import { startTorTestnet, type TorTestnet } from "../tor/testnet.ts";
import { PinnedCircuits } from "../tor/pinned.ts";
import { startTorOnEmulatedHosts } from "../tor/emulated.ts";
import { type EmulationSpec, mergeSpecs } from "../emulate/config.ts";

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
  /** Relay processes by nickname (their CPU time is read from /proc). */
  relayPids: Record<string, number>;
  /** The emulator's stats.json, when one runs. */
  emulatorStats?: string;
  /** The emulation engine ("userspace", "netem", or "none" on loopback). */
  engine: string;
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
    relayPids: Object.fromEntries(net.relays.map((r) => [r.nickname, r.pid])),
    ...(net.emulation?.dir ? { emulatorStats: `${net.emulation.dir}/stats.json` } : {}),
    engine: net.emulation?.engine ?? "none",
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
  let emulatorStats: string | undefined;
  let engine = "none";
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
      engine = net.emulation.engine;
      if (net.emulation.dir) emulatorStats = `${net.emulation.dir}/stats.json`;
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
      relayPids: Object.fromEntries(t.relays.map((r) => [r.nickname, r.pid])),
      ...(emulatorStats ? { emulatorStats } : {}),
      engine,
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
      socksHost: splitHostPort(socks)[0],
      socksPort: splitHostPort(socks)[1],
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
  engine: string;
  load?: LoadSample;
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
  let load: LoadSample | undefined;
  try {
    const orPorts = new Set(net.orPorts);
    const socksPort = splitHostPort(net.socks)[1];
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
    const maxDuration = maxDurationOf(s, duration);
    // Each run aims for its share of the scenario's minimum samples per arm and metric.
    const runs = o.runs ?? 1;
    const need = Object.fromEntries(
      METRIC_NAMES.map((k) => [k, Math.ceil(minSamplesOf(s)[k] / runs)]),
    ) as Record<Metric, number>;
    const have = { web_response: 0, web_download: 0, bulk_download: 0 } as Record<Metric, number>;
    const active = (k: Metric) =>
      METRICS[k].label === "web" ? s.web.clients > 0 : s.bulk.clients > 0;
    const enough = () => METRIC_NAMES.every((k) => !active(k) || have[k] >= need[k]);
    say(
      `${tag} measuring ${duration} s (${
        maxDuration > duration ? `longer, up to ${maxDuration} s, until` : "aiming for"
      } ${
        METRIC_NAMES.filter(active).map((k) => `${need[k]} ${k.replace("_", " ")}`).join(", ")
      }): ${s.web.clients} web clients (${s.web.size}, think ${s.web.thinkS} s), ${s.bulk.clients} bulk clients (${s.bulk.size})`,
    );
    // Ends the measurement once the duration has passed and the samples are there (or at
    // maxDuration, runMeasurement's own bound): no fetch starts then and those under way run
    // to their end or timeout, so the slowest are not cut short. Ctrl-C ends it at once.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    o.signal?.addEventListener("abort", onAbort);
    if (o.signal?.aborted) stop.abort();
    const tStart = performance.now();
    const check = () => {
      if (!stop.signal.aborted && performance.now() - tStart >= duration * 1000 && enough()) {
        stop.abort();
      }
    };
    const timer = setInterval(check, 250);
    const watch = await LoadWatch.start(net.relayPids, net.emulatorStats);
    const watcher = setInterval(() => watch.sample(), 1000);
    let summary;
    try {
      summary = await runMeasurement({
        socks: net.socks,
        workloads: workloads(s, net.server),
        durationS: maxDuration,
        timeoutMs: s.timeoutS * 1000,
        jitter: s.jitter,
        seed: s.seed + run - 1,
        transport: arm,
        run: `${arm}-r${run}-${Date.now().toString(36)}`,
        out: records,
        ...(net.circuitLookup ? { circuitLookup: net.circuitLookup } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        finish: stop.signal,
        onRecord: (r) => {
          // Samples as analyze counts them: successes, and timeouts (censored at the timeout).
          if (r.outcome !== "ok" && r.outcome !== "timeout") return;
          for (const k of METRIC_NAMES) {
            if (r.label === METRICS[k].label) have[k]++;
          }
          check();
        },
      });
    } finally {
      clearInterval(timer);
      clearInterval(watcher);
      o.signal?.removeEventListener("abort", onAbort);
      sampling = false;
      await sampler;
    }
    load = await watch.stop(arm, run);
    relayStats = await net.relayStats();
    const secs = ((performance.now() - tStart) / 1000).toFixed(0);
    const short = METRIC_NAMES.filter((k) => active(k) && have[k] < need[k]);
    say(
      `${tag} ${summary.ok} fetches ok, ${summary.failed} failed, in ${secs} s${
        short.length
          ? `; few samples: ${short.map((k) => `${k} ${have[k]} of ${need[k]}`).join(", ")}`
          : ""
      }`,
    );
  } finally {
    await net.stop().catch(() => {});
  }
  // The pooled file: every run's records of this arm.
  const text = await Deno.readTextFile(records).catch(() => "");
  await Deno.writeTextFile(`${o.out}/records-${arm}.jsonl`, text, { append: true });
  return {
    records,
    sockets,
    queues,
    relayStats,
    emulation: net.emulation ?? [],
    engine: net.engine,
    ...(load ? { load } : {}),
  };
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

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(`${path}.tmp`, path);
}

/**
 * Runs the experiment (the run stage) and then analyze and report on its folder: raw records
 * per arm and run, manifest.json (how the folder was made), load.json (the self-check's
 * samples), queues.json; then summary.json, summary.md, report.html and plots. Returns the
 * summary. Interrupted (Ctrl-C), the arms and runs that finished are still summarized.
 */
export async function runInterference(o: InterferenceOptions): Promise<Record<string, unknown>> {
  const s = typeof o.scenario === "object" ? o.scenario : await loadScenario(o.scenario ?? "quick");
  const arms = armsOf(o);
  const runs = o.runs ?? 1;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new RangeError("runs must be ≥ 1");
  const base = o.base ?? defaultBase(arms);
  if (!arms.includes(base)) throw new RangeError(`base arm ${base} is not among the arms`);
  await Deno.mkdir(o.out, { recursive: true });
  for (const arm of arms) await Deno.remove(`${o.out}/records-${arm}.jsonl`).catch(() => {});
  await Deno.remove(`${o.out}/runs`, { recursive: true }).catch(() => {});
  const started = new Date().toISOString();
  await writeJson(`${o.out}/scenario.json`, s);
  await writeJson(`${o.out}/machine.json`, await machineFacts());
  const duration = o.durationS ?? s.durationS;
  const manifest: Manifest = {
    v: 1,
    tool: "pctcp",
    version: VERSION,
    scenario: s.name,
    arms,
    base,
    runs,
    order: [],
    seeds: Array.from({ length: runs }, (_, i) => s.seed + i),
    netns: !!o.netns,
    emulation_engine: o.netns ? "userspace" : "none",
    emulation: {},
    // Where C tor's nodes ran: in namespaces over the same emulator as ours (since j12).
    ...(arms.some((a) => armSpec(a).kind === "ctor")
      ? { ctor_network: o.netns ? "emulated-hosts" : "loopback" }
      : {}),
    ...(o.netns ? { emulation_spec: mergeSpecs(s.emulation, o.emulation) } : {}),
    duration_s: duration,
    max_duration_s: maxDurationOf(s, duration),
    min_samples: minSamplesOf(s),
    versions: { pctcp: VERSION, deno: Deno.version.deno },
    started,
  };
  await writeJson(`${o.out}/manifest.json`, manifest);
  const queues: Record<string, Record<string, unknown>> = {};
  const load: LoadSample[] = [];
  for (let run = 1; run <= runs && !o.signal?.aborted; run++) {
    for (const arm of arms) {
      if (o.signal?.aborted) break;
      const r = await runArm(arm, run, s, o);
      manifest.order.push(`${arm}#${run}`);
      manifest.emulation[arm] ??= r.emulation;
      if (r.engine !== "none") manifest.emulation_engine = r.engine;
      const tor = /Debian's tor (\S+)/.exec(r.emulation.join(" "))?.[1];
      if (tor) manifest.versions.tor = tor;
      if (r.load) load.push(r.load);
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
      // Written after every arm, so an interrupted experiment keeps what it measured.
      await writeJson(`${o.out}/queues.json`, queues);
      await writeJson(`${o.out}/load.json`, load);
      await writeJson(`${o.out}/manifest.json`, manifest);
    }
  }
  for (const q of Object.values(queues)) q.where_bytes_wait = whereBytesWait(q.series as never);
  await writeJson(`${o.out}/queues.json`, queues);
  manifest.finished = new Date().toISOString();
  if (o.signal?.aborted) manifest.interrupted = true;
  await writeJson(`${o.out}/manifest.json`, manifest);
  if (!manifest.order.length) {
    throw new Error(`stopped before any arm finished: nothing to summarize in ${o.out}`);
  }
  const summary = await writeSummary(o.out);
  await writeExperimentReport(o.out, o.out);
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
