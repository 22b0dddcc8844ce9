/**
 * The experiment's vocabulary, in one place: the arms (who relays, on which transport and
 * scheduler), the metrics (which label and phase of a record), the percentiles reported, the
 * minimum samples per metric, and the words every output uses for the network and the
 * baseline's scheduler. The run, analyze and report stages all read it from here.
 * @module
 */

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
  "imux",
  "imux-kist",
  "mixed",
  "ctor",
  "ctor-nocc",
  // Inside one C tor network (`--network ctor`, lib/experiment/ctor_run.ts): only the pair of
  // relays under test differs — C tor's (`ctor`), ours on one shared link, or ours with PCTCP.
  "ours-tor",
  "ours-pctcp",
] as const;

/** The arms of an experiment inside a C tor network (`--network ctor`). */
export const CTOR_NETWORK_ARMS: readonly Arm[] = ["ctor", "ours-tor", "ours-pctcp"];
/** An arm of the experiment. */
export type Arm = typeof ARMS[number];

/** What an arm runs: our relays on a transport and scheduler, or C tor. */
export type ArmSpec =
  | { kind: "ours"; transport: string; scheduler: SchedulerKind }
  | { kind: "ctor"; congestionControl: boolean }
  | { kind: "in-ctor"; transport: "tor" | "pctcp"; scheduler: "kist" };

/** True if `name` is an arm. */
export function isArm(name: string): name is Arm {
  return (ARMS as readonly string[]).includes(name);
}

/** What an arm runs. */
export function armSpec(arm: Arm): ArmSpec {
  if (arm === "ctor" || arm === "ctor-nocc") {
    return { kind: "ctor", congestionControl: arm === "ctor" };
  }
  if (arm === "ours-tor" || arm === "ours-pctcp") {
    return { kind: "in-ctor", transport: arm === "ours-tor" ? "tor" : "pctcp", scheduler: "kist" };
  }
  const [t, s] = arm.split("-") as [string, string | undefined];
  return { kind: "ours", transport: t, scheduler: s === "kist" ? "kist" : "vanilla" };
}

/**
 * An arm in words, with its scheduler: the `vanilla` scheduler is Tor's before 0.3.2
 * (circuits round-robin into the socket, as soon as it takes bytes); KIST (Jansen et al.,
 * USENIX Security 2014) is C tor's default since 0.3.2.
 *
 * @example The baseline says its scheduler
 * ```ts
 * import { describeArm } from "./arms.ts";
 * if (!describeArm("tor").includes("before 0.3.2")) throw new Error();
 * ```
 */
export function describeArm(arm: Arm): string {
  const spec = armSpec(arm);
  if (spec.kind === "ctor") {
    return `Debian's C tor, scheduler KIST, ${
      spec.congestionControl ? "congestion control as deployed" : "congestion control off"
    }`;
  }
  if (spec.kind === "in-ctor") {
    return `our relays at the positions under test inside a C tor network, ${
      spec.transport === "pctcp" ? "PCTCP between them" : "one shared link between them"
    }, scheduler KIST`;
  }
  const sched = spec.scheduler === "kist"
    ? "scheduler KIST (C tor's default since 0.3.2)"
    : "scheduler vanilla (Tor before 0.3.2, the PCTCP paper's baseline; not today's KIST)";
  const transport = spec.transport === "mixed"
    ? "half the relays on pctcp, half on tor"
    : `${spec.transport} transport`;
  return `our relays, ${transport}, ${sched}`;
}

/** The arms a set of options asks for, in order, without repeats (default tor, pctcp). */
export function armsOf(
  o: { arms?: Arm[]; mixed?: boolean; withRealTor?: boolean },
): Arm[] {
  const arms: Arm[] = [...(o.arms ?? ["tor", "pctcp"])];
  if (o.mixed) arms.push("mixed");
  if (o.withRealTor) arms.push("ctor");
  return [...new Set(arms)];
}

/** The default base arm of a list: tor when present, else the first. */
export function defaultBase(arms: readonly Arm[]): Arm {
  return arms.includes("tor") ? "tor" : arms[0] ?? "tor";
}

/** The metrics the summary reports, with the workload label and phase they come from. */
export const METRICS = {
  web_response: { label: "web", phase: "first_byte", words: "web response time (first byte)" },
  web_download: { label: "web", phase: "last_byte", words: "web download time (last byte)" },
  bulk_download: { label: "bulk", phase: "last_byte", words: "bulk download time (last byte)" },
} as const;
/** A metric name. */
export type Metric = keyof typeof METRICS;
/** The metric names in report order. */
export const METRIC_NAMES = Object.keys(METRICS) as Metric[];

/** The percentiles reported. */
export const SUMMARY_PERCENTILES = [50, 75, 90] as const;

/**
 * Minimum samples per arm and metric a run aims for (issue 23 item 4): 100 web fetches and 20
 * bulk downloads. A scenario may set its own (`minSamples`); fewer make a row "few samples".
 */
export const DEFAULT_MIN_SAMPLES: Readonly<Record<Metric, number>> = {
  web_response: 100,
  web_download: 100,
  bulk_download: 20,
};

/** Fewer runs than this give no across-run interval (a t interval from 2 runs is ± 12.7 sd). */
export const MIN_RUNS_FOR_INTERVAL = 3;

/** The network the arms ran on, in words (every output says it). */
export function describeNetwork(netns: boolean): string {
  return netns
    ? "emulated: every host in its own network namespace, links through the user-space emulator (latency, loss, rates as the scenario)"
    : "loopback: every relay on 127.0.0.1, no latency or loss; rates are the relays' token buckets only";
}
