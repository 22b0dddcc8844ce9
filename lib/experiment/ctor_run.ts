/**
 * The interference experiment inside a C tor network (`experiment interference --network
 * ctor`): everything real — Debian's tor authorities, guard and client (congestion control as
 * deployed), the one C tor client for every fetch — and only the two relays under test differ
 * between arms. One network per run holds three pairs side by side:
 *
 * | arm          | the pair under test (middle → exit)                  |
 * | ------------ | ---------------------------------------------------- |
 * | `ctor`       | two C tor relays (tor2 → tor3)                       |
 * | `ours-tor`   | two of ours, one shared TLS link, KIST (ours1 → ours2) |
 * | `ours-pctcp` | two of ours, a TCP connection per circuit (ours3 → ours4) |
 *
 * Every circuit is pinned `tor1 → X → Y` (tor1 the common guard; the scenario's `positions`
 * "guard-middle" pins `X → Y → tor4` instead), so the web and bulk circuits of an arm share
 * the X → Y link — the link where PCTCP changes anything. X and Y get the scenario's middle
 * rate (`bandwidths[1]`, reads and writes: C tor's BandwidthRate/Burst, our token buckets), so
 * the queue builds on that link. Arms run one after another within a run, in a seeded order
 * per run; each is measured for the scenario's duration with its web and bulk clients at once.
 *
 * This stage writes the raw records (records-ARM.jsonl, every run's) and manifest.json; the
 * analyze and report stages read the folder alone. On loopback by default: no emulated latency
 * or loss (say so wherever its numbers go); with `netns` every node on an emulated host
 * of its own (the scenario's latency and loss, the pair's rate as its hosts' rate in the
 * emulator) and IPsec between the ours-pctcp pair's hosts.
 * @module
 */

import { type CtorNetworkState, ctorNetworkUp } from "../tor/mixed_network.ts";
import { stopProcesses } from "../network/launcher.ts";
import { destroyHosts } from "../network/netns.ts";
import { PinnedCircuits } from "../tor/pinned.ts";
import { runMeasurement, type Workload } from "../measure/run.ts";
import { parseSize } from "../serve/sizes.ts";
import { seededRandom } from "../util/random.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import { maxDurationOf, minSamplesOf, type Scenario } from "./scenario.ts";
import {
  checkArmsAlike,
  type NetworkDraw,
  networkPairs,
  sampleNetwork,
  scenarioNetwork,
} from "./ctor_networks.ts";
import { type Metric, METRIC_NAMES, METRICS } from "./arms.ts";
import { VERSION } from "../version.ts";
import type { Manifest, NetworkSpec } from "./analyze.ts";
import type { Arm } from "./arms.ts";
import { type LoadSample, LoadWatch } from "./load.ts";
import { type EmulationSpec, mergeSpecs } from "../emulate/config.ts";

/** An arm of a C tor network experiment (arms.ts's CTOR_NETWORK_ARMS). */
export type CtorNetworkArm = "ctor" | "ours-tor" | "ours-pctcp";
const ALL: CtorNetworkArm[] = ["ctor", "ours-tor", "ours-pctcp"];

/** Where the pair under test sits on the path. */
export type Positions = "middle-exit" | "guard-middle";

/** Options of the run stage. */
export interface CtorRunOptions {
  /** The scenario (web, bulk, duration, timeout, jitter, seed, bandwidths[1] = the pair's rate). */
  scenario: Scenario;
  /** Results folder (created). */
  out: string;
  /** Arms (default all three). */
  arms?: CtorNetworkArm[];
  /** The arm changes are computed against (default ctor). */
  base?: CtorNetworkArm;
  /** Runs per network, each on a fresh C tor network (default 1). */
  runs?: number;
  /**
   * Networks drawn from the scenario's `sample` distributions (ctor_networks.ts), each with
   * a seed of its own, every arm run `runs` times on each (with `netns`). Absent: one
   * network, the scenario's own latencies.
   */
  networks?: number;
  /** Seconds of measurement per arm (default the scenario's). */
  durationS?: number;
  /** The pair under test (default middle-exit). */
  positions?: Positions;
  /** Progress. */
  log?: Logger;
  /** Stops after the arm under way. */
  signal?: AbortSignal;
  /**
   * Every node on a host of its own (network namespaces over the user-space emulator, root
   * needed); the pair's rate is then its hosts' rate in the emulator, for C tor's and ours.
   */
  netns?: boolean;
  /** With `netns`: emulation flags, layered over the scenario's `emulation` field. */
  emulation?: EmulationSpec;
  /**
   * With `netns`: strongSwan IPsec between the hosts of the ours-pctcp pair (default: with
   * `netns`, as the own-network arms have it); ours-tor and C tor stay plain TLS.
   */
  ipsec?: boolean;
}

/** What the run stage did. */
export interface CtorRunResult {
  /** Runs and arms in the order they ran ("ours-pctcp#1", …). */
  order: string[];
  /** Records files per arm. */
  records: Record<string, string>;
  /** True if stopped before the end. */
  interrupted: boolean;
}

function sizesOf(x: string | number | (string | number)[]): string[] {
  return (Array.isArray(x) ? x : [x]).map(String);
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const rnd = seededRandom(seed);
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The pinned path of an arm (fingerprints), given the network's relays. */
export function armPath(
  arm: CtorNetworkArm,
  state: Pick<CtorNetworkState, "relays">,
  positions: Positions = "middle-exit",
): string[] {
  const fp = (nick: string) => {
    const r = state.relays.find((x) => x.nickname === nick);
    if (!r) throw new Error(`the network has no relay ${nick}`);
    return r.fingerprint;
  };
  const pair = arm === "ctor"
    ? ["tor2", "tor3"]
    : arm === "ours-tor"
    ? ["ours1", "ours2"]
    : ["ours3", "ours4"];
  return positions === "middle-exit"
    ? [fp("tor1"), fp(pair[0]!), fp(pair[1]!)]
    : [fp(pair[0]!), fp(pair[1]!), fp("tor4")];
}

/**
 * Runs the experiment's measurement stage (see the module doc) and writes manifest.json and
 * records-ARM.jsonl into `out`.
 */
export async function runCtorInterference(o: CtorRunOptions): Promise<CtorRunResult> {
  const s = o.scenario;
  const arms = o.arms ?? [...ALL];
  const runs = o.runs ?? 1;
  const positions = o.positions ?? "middle-exit";
  const log = o.log ?? nullLogger;
  const duration = o.durationS ?? s.durationS;
  const maxDuration = maxDurationOf(s, duration);
  const rate = parseSize(String(s.bandwidths[1] ?? s.bandwidths[0] ?? "1536KiB"));
  const netns = o.netns ?? false;
  const ipsec = netns && (o.ipsec ?? true);
  // The scenario's per-pair settings name our own networks' hosts (relay1–relay2, …); here the
  // arms' pairs sit on different hosts, so per-pair latencies would differ between arms: only
  // its uniform settings apply (flags given on the command line apply as given).
  // The scenario's per-pair settings name our own networks' hosts (relay1–relay2, …): they
  // are mapped to the circuit's slots, the same hop by hop for every arm (ctor_networks.ts);
  // with `networks`, each network's hops and the pair's rate are drawn instead.
  const { pairs: scenarioPairs, ...uniform } = s.emulation ?? {};
  const sampled = o.networks !== undefined;
  const networks = o.networks ?? 1;
  if (!(Number.isInteger(networks) && networks >= 1)) {
    throw new RangeError(`networks must be a whole number ≥ 1: ${o.networks}`);
  }
  if (sampled && !netns) {
    throw new RangeError("networks are drawn for emulated hosts: add --netns (root)");
  }
  if (sampled && !s.sample) {
    throw new RangeError(
      `scenario ${s.name} has no "sample" distributions (latency, loss, rate) to draw networks from`,
    );
  }
  const own = scenarioNetwork({
    ...(scenarioPairs ? { pairs: scenarioPairs } : {}),
    ...(s.path ? { path: s.path } : {}),
    rateBps: rate,
    uniform,
  });
  const draws: NetworkDraw[] = sampled
    ? Array.from(
      { length: networks },
      (_, i) => sampleNetwork(s.sample!, i + 1, s.seed, { rateBps: rate, uniform }),
    )
    : [own.draw];
  let notes: string[] = !netns && scenarioPairs?.length
    ? [`the scenario's ${scenarioPairs.length} per-pair settings not applied on loopback`]
    : !sampled && own.unapplied.length
    ? [
      `${own.unapplied.length} of the scenario's per-pair settings not applied (not a hop of the circuit, one-way or with jitter): ${
        own.unapplied.map((p) => `${p.a}–${p.b}`).join(", ")
      }`,
    ]
    : [];
  const fixedNotes = notes.length;
  await Deno.mkdir(o.out, { recursive: true });
  const order: string[] = [];
  const seeds: number[] = [];
  const started = new Date().toISOString();
  let torVersion = "";
  const records: Record<string, string> = {};
  for (const a of arms) records[a] = `${o.out}/records-${a}.jsonl`;
  let interrupted = false;
  const load: LoadSample[] = [];
  const runNetwork: number[] = [];
  const specs: (NetworkSpec & Record<string, unknown>)[] = [];
  const manifest = (finished?: string): Manifest & Record<string, unknown> => ({
    v: 1,
    tool: "pctcp",
    version: VERSION,
    scenario: s.name,
    arms: arms as Arm[],
    base: (o.base ?? (arms.includes("ctor") ? "ctor" : arms[0]!)) as Arm,
    runs: runs * networks,
    runs_per_network: runs,
    networks,
    run_network: runNetwork,
    network_specs: specs,
    order,
    seeds,
    netns,
    emulation_engine: netns ? "userspace" : "none",
    emulation: Object.fromEntries(arms.map((a) => [
      a,
      netns
        ? [
          "emulated hosts; one C tor network per run (4 C tor relays that are also authorities, a C tor client, ours, the server: each in a namespace of its own over the user-space emulator), our relays joined to it",
          sampled
            ? `${networks} networks drawn from the scenario's sample distributions (per hop one-way latency and loss, the pair's host rate): network_specs`
            : `the pair under test (${positions}) on hosts limited to ${rate} B/s each way in the emulator; the scenario's per-pair latencies hop by hop on every arm's circuit`,
          ...(a === "ours-pctcp" && ipsec
            ? ["IPsec (strongSwan) between the hosts of the ours-pctcp pair only"]
            : []),
          ...notes,
        ]
        : [
          "loopback; one C tor network per run (4 C tor relays that are also authorities, a C tor client), our relays joined to it",
          `the pair under test (${positions}) limited to ${rate} B/s each, reads and writes`,
        ],
    ])),
    network: "ctor",
    positions,
    ctor_network: netns ? "emulated-hosts" : "loopback",
    ...(netns ? { ipsec } : {}),
    duration_s: duration,
    max_duration_s: maxDuration,
    min_samples: minSamplesOf(s),
    versions: { deno: Deno.version.deno, tor: torVersion },
    started,
    ...(finished ? { finished } : {}),
    ...(interrupted ? { interrupted: true } : {}),
  });
  const save = async (finished?: string) => {
    await Deno.writeTextFile(`${o.out}/load.json`, JSON.stringify(load, null, 2) + "\n");
    await Deno.writeTextFile(
      `${o.out}/manifest.json`,
      JSON.stringify(manifest(finished), null, 2) + "\n",
    );
  };
  await Deno.writeTextFile(`${o.out}/scenario.json`, JSON.stringify(s, null, 2) + "\n");
  for (const a of arms) await Deno.remove(records[a]!).catch(() => {});
  await Deno.remove(`${o.out}/runs`, { recursive: true }).catch(() => {});
  const total = runs * networks;
  // Each arm's share of the scenario's minimum samples per run.
  const need = Object.fromEntries(
    METRIC_NAMES.map((k) => [k, Math.ceil(minSamplesOf(s)[k] / total)]),
  ) as Record<Metric, number>;
  const active = (k: Metric) => METRICS[k].label === "web" ? s.web.clients > 0 : s.bulk.clients > 0;
  for (let run = 1; run <= total && !interrupted; run++) {
    const seed = s.seed + run - 1;
    const draw = draws[Math.floor((run - 1) / runs)]!;
    const pairRate = draw.rateBps;
    seeds.push(seed);
    runNetwork.push(draw.network);
    const dir = `${o.out}/net-run${run}`;
    const emulationSpec = netns
      ? mergeSpecs(uniform, { pairs: networkPairs(draw, positions) }, o.emulation)
      : undefined;
    log.info(
      `run ${run}/${total}${
        networks > 1 ? ` (network ${draw.network} of ${networks})` : ""
      }: C tor network with 4 of ours starting (${dir})${netns ? `; ${draw.words}` : ""}`,
    );
    const net = await ctorNetworkUp({
      dir,
      ours: 4,
      transports: ["tor", "tor", "pctcp", "pctcp"],
      scheduler: "kist",
      // Every process of the network follows the experiment if it is killed.
      ownerPid: Deno.pid,
      // The pairs' hosts only: tor2/tor3 (hosts relay2, relay3) and ours1–4.
      oursBandwidths: [pairRate, pairRate, pairRate, pairRate],
      ctorBandwidths: [0, pairRate, pairRate, 0],
      ...(netns
        ? { netns: true, ipsec, ...(emulationSpec ? { emulation: emulationSpec } : {}) }
        : {}),
      log,
    });
    torVersion = net.torVersion;
    if (net.emulation) notes = [...notes.slice(0, fixedNotes), ...net.emulation.notes];
    let pinned: PinnedCircuits | undefined;
    try {
      if (net.emulation) {
        // Only the pair differs between arms: checked on what the emulator runs, kept per run.
        const problems = checkArmsAlike(net.emulation, positions, pairRate);
        await Deno.mkdir(`${o.out}/runs/r${run}`, { recursive: true });
        await Deno.writeTextFile(
          `${o.out}/runs/r${run}/emulation.json`,
          JSON.stringify({ ...net.emulation, check: problems }, null, 2) + "\n",
        );
        if (problems.length) {
          throw new Error(`the arms' networks differ beyond their pair: ${problems.join("; ")}`);
        }
        if (!specs.some((x) => x.network === draw.network)) {
          specs.push({
            network: draw.network,
            seed: draw.seed,
            words: draw.words,
            hops: draw.hops,
            pair_rate_Bps: pairRate,
            host_rates: Object.fromEntries(
              net.emulation.hosts.filter((h) => h.up !== null).map((h) => [h.name, h.up]),
            ),
            checked:
              "only the pairs' hosts rate-limited, every arm's circuit alike hop by hop (runs/rN/emulation.json)",
          });
        }
      }
      pinned = await PinnedCircuits.open(net.control, null, { cookieFile: net.cookieFile });
      const [host, port] = [
        net.socks.slice(0, net.socks.lastIndexOf(":")),
        net.socks.slice(net.socks.lastIndexOf(":") + 1),
      ];
      for (const arm of shuffled(arms, seed)) {
        if (o.signal?.aborted) {
          interrupted = true;
          break;
        }
        const path = armPath(arm, net, positions);
        const tag = `${arm}#${run}`;
        log.info(
          `${tag}: measuring ${duration} s (up to ${maxDuration} s until ${
            METRIC_NAMES.filter(active).map((k) => `${need[k]} ${k}`).join(", ")
          }) through ${
            path.map((f) => f.slice(0, 8)).join(" → ")
          }: ${s.web.clients} web (${s.web.size}), ${s.bulk.clients} bulk (${s.bulk.size})`,
        );
        const workloads: Workload[] = [{
          label: "web",
          urls: sizesOf(s.web.size).map((z) => `${net.server}/bytes/${z}`),
          thinkS: s.web.thinkS,
          concurrency: s.web.clients,
        }];
        if (s.bulk.clients > 0) {
          workloads.push({
            label: "bulk",
            urls: sizesOf(s.bulk.size).map((z) => `${net.server}/bytes/${z}`),
            ...(s.bulk.thinkS ? { thinkS: s.bulk.thinkS } : {}),
            concurrency: s.bulk.clients,
          });
        }
        // Per run (runs/rN/, what analyze's per-run spread reads) and pooled (records-ARM.jsonl).
        const runRecords = `${o.out}/runs/r${run}/records-${arm}.jsonl`;
        await Deno.mkdir(`${o.out}/runs/r${run}`, { recursive: true });
        await Deno.remove(runRecords).catch(() => {});
        // The self-check: CPU busy share and every relay's CPU over the arm (load.ts).
        const pids = Object.fromEntries(net.relays.map((r) => [r.nickname, r.pid]));
        const watch = await LoadWatch.start(
          pids,
          net.emulation?.dir ? `${net.emulation.dir}/stats.json` : undefined,
        );
        const watcher = setInterval(() => watch.sample(), 1000);
        // The arm measures `duration`, then on until it has its share of the minimum samples
        // (successes and timeouts, as analyze counts them), at most `maxDuration`; then no fetch
        // starts and those under way run to their end or timeout (cutting the slowest short
        // would bias the percentiles low). Ctrl-C ends it at once: those are unfinished.
        const have = { web_response: 0, web_download: 0, bulk_download: 0 } as Record<
          Metric,
          number
        >;
        const enough = () => METRIC_NAMES.every((k) => !active(k) || have[k] >= need[k]);
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
        let summary;
        try {
          summary = await runMeasurement({
            socks: `${host}:${port}`,
            workloads,
            durationS: maxDuration,
            timeoutMs: s.timeoutS * 1000,
            jitter: s.jitter,
            seed,
            transport: arm,
            run: `${arm}-run${run}-${Date.now().toString(36)}`,
            socksUserPrefix: `pctcp-path=${path.join(",")};`,
            circuitLookup: (p) => pinned!.info(p),
            out: runRecords,
            ...(o.signal ? { signal: o.signal } : {}),
            finish: stop.signal,
            onRecord: (r) => {
              if (r.outcome !== "ok" && r.outcome !== "timeout") return;
              for (const k of METRIC_NAMES) if (r.label === METRICS[k].label) have[k]++;
              check();
            },
          });
        } finally {
          clearInterval(timer);
          clearInterval(watcher);
          o.signal?.removeEventListener("abort", onAbort);
          load.push(await watch.stop(arm, run));
        }
        await Deno.writeTextFile(records[arm]!, await Deno.readTextFile(runRecords), {
          append: true,
        });
        order.push(tag);
        await save();
        const short = METRIC_NAMES.filter((k) => active(k) && have[k] < need[k]);
        log.info(
          `${tag}: ${summary.ok} fetches ok, ${summary.failed} failed, in ${
            ((performance.now() - tStart) / 1000).toFixed(0)
          } s${
            short.length
              ? `; few samples: ${short.map((k) => `${k} ${have[k]} of ${need[k]}`).join(", ")}`
              : ""
          }`,
        );
      }
    } finally {
      await pinned?.close().catch(() => {});
      await stopProcesses(net.processes);
      if (net.netns) await destroyHosts(net.netns);
    }
    if (o.signal?.aborted) interrupted = true;
  }
  await save(new Date().toISOString());
  return { order, records, interrupted };
}
