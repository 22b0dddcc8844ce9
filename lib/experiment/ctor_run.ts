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
import { minSamplesOf, type Scenario } from "./scenario.ts";
import { VERSION } from "../version.ts";
import type { Manifest } from "./analyze.ts";
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
  /** Runs, each on a fresh network (default 1). */
  runs?: number;
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
  const rate = parseSize(String(s.bandwidths[1] ?? s.bandwidths[0] ?? "1536KiB"));
  const netns = o.netns ?? false;
  const ipsec = netns && (o.ipsec ?? true);
  // The scenario's per-pair settings name our own networks' hosts (relay1–relay2, …); here the
  // arms' pairs sit on different hosts, so per-pair latencies would differ between arms: only
  // its uniform settings apply (flags given on the command line apply as given).
  const { pairs: scenarioPairs, ...uniform } = s.emulation ?? {};
  const emulationSpec = netns ? mergeSpecs(uniform, o.emulation) : undefined;
  let notes: string[] = scenarioPairs?.length
    ? [
      `the scenario's ${scenarioPairs.length} per-pair settings not applied (they name our own networks' hosts; here every arm's pair sits on other hosts): its uniform latency and loss on every path`,
    ]
    : [];
  await Deno.mkdir(o.out, { recursive: true });
  const order: string[] = [];
  const seeds: number[] = [];
  const started = new Date().toISOString();
  let torVersion = "";
  const records: Record<string, string> = {};
  for (const a of arms) records[a] = `${o.out}/records-${a}.jsonl`;
  let interrupted = false;
  const load: LoadSample[] = [];
  const manifest = (finished?: string): Manifest & Record<string, unknown> => ({
    v: 1,
    tool: "pctcp",
    version: VERSION,
    scenario: s.name,
    arms: arms as Arm[],
    base: (o.base ?? (arms.includes("ctor") ? "ctor" : arms[0]!)) as Arm,
    runs,
    order,
    seeds,
    netns,
    emulation_engine: netns ? "userspace" : "none",
    emulation: Object.fromEntries(arms.map((a) => [
      a,
      netns
        ? [
          "emulated hosts; one C tor network per run (4 C tor relays that are also authorities, a C tor client, ours, the server: each in a namespace of its own over the user-space emulator), our relays joined to it",
          `the pair under test (${positions}) on hosts limited to ${rate} B/s each way in the emulator`,
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
    max_duration_s: duration,
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
  for (let run = 1; run <= runs && !interrupted; run++) {
    const seed = s.seed + run - 1;
    seeds.push(seed);
    const dir = `${o.out}/net-run${run}`;
    log.info(`run ${run}/${runs}: C tor network with 4 of ours starting (${dir})`);
    const net = await ctorNetworkUp({
      dir,
      ours: 4,
      transports: ["tor", "tor", "pctcp", "pctcp"],
      scheduler: "kist",
      // Every process of the network follows the experiment if it is killed.
      ownerPid: Deno.pid,
      oursBandwidths: [rate, rate, rate, rate],
      ctorBandwidths: positions === "middle-exit" ? [0, rate, rate, 0] : [0, rate, rate, 0],
      ...(netns
        ? { netns: true, ipsec, ...(emulationSpec ? { emulation: emulationSpec } : {}) }
        : {}),
      log,
    });
    torVersion = net.torVersion;
    if (net.emulation) {
      notes = [...notes.slice(0, scenarioPairs?.length ? 1 : 0), ...net.emulation.notes];
    }
    const pinned = await PinnedCircuits.open(net.control, null, { cookieFile: net.cookieFile });
    try {
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
          `${tag}: measuring ${duration} s through ${
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
        const watch = await LoadWatch.start(pids);
        const watcher = setInterval(() => watch.sample(), 1000);
        let summary;
        try {
          summary = await runMeasurement({
            socks: `${host}:${port}`,
            workloads,
            durationS: duration,
            timeoutMs: s.timeoutS * 1000,
            jitter: s.jitter,
            seed,
            transport: arm,
            run: `${arm}-run${run}-${Date.now().toString(36)}`,
            socksUserPrefix: `pctcp-path=${path.join(",")};`,
            circuitLookup: (p) => pinned.info(p),
            out: runRecords,
            ...(o.signal ? { signal: o.signal } : {}),
          });
        } finally {
          clearInterval(watcher);
          load.push(await watch.stop(arm, run));
        }
        await Deno.writeTextFile(records[arm]!, await Deno.readTextFile(runRecords), {
          append: true,
        });
        order.push(tag);
        await save();
        log.info(`${tag}: ${summary.ok} fetches ok, ${summary.failed} failed`);
      }
    } finally {
      await pinned.close().catch(() => {});
      await stopProcesses(net.processes);
      if (net.netns) await destroyHosts(net.netns);
    }
    if (o.signal?.aborted) interrupted = true;
  }
  await save(new Date().toISOString());
  return { order, records, interrupted };
}
