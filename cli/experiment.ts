/**
 * `pctcp experiment interference`: arms (tor, tor-kist, pctcp, pctcp-kist, mixed, ctor) on
 * the same network and workload, repeated over runs (the run stage, then analyze and report);
 * `pctcp experiment analyze DIR`: summary.json again from a folder's records alone;
 * `pctcp experiment sweep`: the experiment per value of one parameter, and the change
 * against the value.
 * @module
 */

import { Command, Option } from "commander";
import { nonNegative, positiveInt, run, UsageError } from "./_common.ts";
import { runInterference } from "../lib/experiment/run.ts";
import { type Arm, ARMS, armsOf, isArm } from "../lib/experiment/arms.ts";
import { writeSummary } from "../lib/experiment/analyze.ts";
import { summaryMarkdown, writeExperimentReport } from "../lib/experiment/report.ts";
import { CTOR_NETWORK_ARMS } from "../lib/experiment/arms.ts";
import {
  type CtorNetworkArm,
  type Positions,
  runCtorInterference,
} from "../lib/experiment/ctor_run.ts";
import { loadScenario } from "../lib/experiment/scenario.ts";
import { makeLogger } from "../lib/util/log.ts";
import { probeNetns } from "../lib/network/netns.ts";
import { haveIpsecTools } from "../lib/network/ipsec_hosts.ts";
import { runSweep, SWEEP_PARAMS, type SweepParam } from "../lib/experiment/sweep.ts";
import { type EmulationSpec, parseDuration, parseLoss } from "../lib/emulate/mod.ts";
import { haveTor } from "../lib/tor/testnet.ts";
import { addEmulationFlags, type EmulationFlags, emulationFromFlags } from "./network.ts";

function parseArms(v: string): Arm[] {
  const arms = v.split(",").map((x) => x.trim()).filter(Boolean);
  for (const a of arms) {
    if (!(ARMS as readonly string[]).includes(a)) {
      throw new UsageError(`unknown arm ${a}: choose from ${ARMS.join(", ")}`);
    }
  }
  if (!arms.length) throw new UsageError("--arms needs at least one arm");
  return arms as Arm[];
}

interface CommonFlags extends EmulationFlags {
  scenario: string;
  out: string;
  arms: string;
  base?: string;
  runs: number;
  mixed?: boolean;
  duration?: number;
  netns?: boolean;
  withRealTor?: boolean;
}

function withCommon(c: Command): Command {
  return addEmulationFlags(c)
    .option(
      "--scenario <name|file>",
      "scenario under measurements/scenarios/ or a JSON file; auto: quick-netns on emulated hosts where it can (root, namespaces, /dev/net/tun), else quick on loopback",
      "quick",
    )
    .option(
      "--arms <list>",
      `arms, comma-separated, run in this order in each run (${ARMS.join(", ")})`,
      "tor,pctcp",
    )
    .option("--base <arm>", "the arm changes are computed against (default: tor)")
    .option(
      "--runs <n>",
      "runs, each with a fresh network and seed, arms interleaved",
      positiveInt,
      1,
    )
    .option("--mixed", "add the mixed arm (as --arms …,mixed)")
    .option("--duration <s>", "override the scenario's seconds per arm", nonNegative)
    .option(
      "--netns",
      "hosts in network namespaces linked through the user-space emulator, pctcp under IPsec (root)",
    )
    .option("--with-real-tor", "add the ctor arm (as --arms …,ctor; needs Debian's tor)");
}

/** Checks flags shared by both commands; returns the arms and base. */
async function checkCommon(o: CommonFlags): Promise<{ arms: Arm[]; base: Arm }> {
  const arms = armsOf({
    arms: parseArms(o.arms),
    ...(o.mixed ? { mixed: true } : {}),
    ...(o.withRealTor ? { withRealTor: true } : {}),
  });
  const base = (o.base ?? (arms.includes("tor") ? "tor" : arms[0]!)) as Arm;
  if (!arms.includes(base)) throw new UsageError(`--base ${base} is not among --arms`);
  if (arms.some((a) => a.startsWith("ctor")) && !(await haveTor())) {
    throw new UsageError("the ctor arms need Debian's tor: apt-get install tor");
  }
  return { arms, base };
}

/**
 * `--scenario auto`: the emulated quick-netns scenario where namespaces and a TUN device can
 * be made (root), else quick on loopback; says which on stderr.
 */
export async function autoScenario(): Promise<{ scenario: string; netns: boolean }> {
  const tun = await Deno.stat("/dev/net/tun").then(() => true, () => false);
  const netns = Deno.build.os === "linux" && Deno.uid() === 0 && tun &&
    (await probeNetns()).netns;
  console.error(
    netns
      ? "pctcp: --scenario auto: root with namespaces: quick-netns on emulated hosts (RTT 40-80 ms, 0.5 % loss)"
      : "pctcp: --scenario auto: no namespaces here (not root, or no /dev/net/tun): quick on loopback (no latency, no loss)",
  );
  return netns ? { scenario: "quick-netns", netns: true } : { scenario: "quick", netns: false };
}

/** What the console says after a run: the summary, then the warnings again where seen. */
function consoleSummary(summary: Record<string, unknown>): string {
  const check = summary.self_check as { bottleneck?: boolean; reasons?: string[] } | undefined;
  const few = ((summary.doubts as string[] | undefined) ?? []).filter((d) =>
    d.startsWith("few samples")
  );
  return [
    summaryMarkdown(summary),
    ...(check?.bottleneck
      ? [`warning: the machine may have been the bottleneck: ${(check.reasons ?? []).join("; ")}`]
      : []),
    ...(few.length
      ? [`warning: ${few.length} rows rest on few samples (see "What to doubt")`]
      : []),
  ].join("\n");
}

function signals(): { signal: AbortSignal; done(): void } {
  const ctl = new AbortController();
  const stop = () => {
    console.error("pctcp: stopping: tearing the network down");
    ctl.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  return {
    signal: ctl.signal,
    done() {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    },
  };
}

/** The options both commands pass on: arms, runs, network, duration, progress, abort. */
function runOptions(
  o: CommonFlags,
  arms: Arm[],
  base: Arm,
  emulation: EmulationSpec | undefined,
  signal: AbortSignal,
) {
  return {
    arms,
    base,
    runs: o.runs,
    ...(o.netns ? { netns: true } : {}),
    ...(emulation ? { emulation } : {}),
    ...(o.duration !== undefined ? { durationS: o.duration } : {}),
    progress: (l: string) => console.error(l), // stdout holds the results alone (docs/cli.md)
    signal,
  };
}

/** `experiment interference --network ctor`: the run stage inside a C tor network, then analyze and report. */
async function ctorNetworkExperiment(
  o: CommonFlags & { positions: Positions; networks?: number },
): Promise<number | undefined> {
  if (o.networks !== undefined && !o.netns) {
    throw new UsageError("--networks draws emulated networks: add --netns (root)");
  }
  const asked = o.arms === "tor,pctcp" ? CTOR_NETWORK_ARMS.join(",") : o.arms;
  const arms = parseArms(asked);
  const bad = arms.filter((a) => !CTOR_NETWORK_ARMS.includes(a));
  if (bad.length) {
    throw new UsageError(
      `--network ctor takes the arms ${CTOR_NETWORK_ARMS.join(", ")}, not ${bad.join(", ")}`,
    );
  }
  if (!(await haveTor())) {
    throw new UsageError("--network ctor needs Debian's tor: apt-get install tor");
  }
  const base = (o.base ?? (arms.includes("ctor") ? "ctor" : arms[0]!)) as Arm;
  if (!arms.includes(base)) throw new UsageError(`--base ${base} is not among --arms`);
  // `auto` stays the loopback scenario here: --netns asks for emulated hosts explicitly.
  const netns = !!o.netns;
  const scenario = await loadScenario(
    o.scenario === "auto" ? (netns ? "quick-netns" : "quick") : o.scenario,
  );
  if (o.networks !== undefined && !scenario.sample) {
    throw new UsageError(
      `--networks draws networks from the scenario's "sample" field (latency, loss, rate: [lo, hi]); ${scenario.name} has none (ctor-netns has)`,
    );
  }
  const emulation = await emulationFromFlags(o, netns);
  if (netns && !(await haveIpsecTools())) {
    throw new UsageError(
      "--network ctor --netns puts IPsec between the ours-pctcp pair's hosts: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins nftables",
    );
  }
  const sig = signals();
  try {
    await runCtorInterference({
      scenario,
      out: o.out,
      arms: arms as CtorNetworkArm[],
      base: base as CtorNetworkArm,
      runs: o.runs,
      ...(o.networks !== undefined ? { networks: o.networks } : {}),
      positions: o.positions,
      ...(netns ? { netns: true, ipsec: true } : {}),
      ...(emulation ? { emulation } : {}),
      ...(o.duration !== undefined ? { durationS: o.duration } : {}),
      log: makeLogger("experiment", "info"),
      signal: sig.signal,
    });
  } finally {
    sig.done();
  }
  const summary = await writeSummary(o.out);
  await writeExperimentReport(o.out, o.out);
  console.log(`\n${consoleSummary(summary)}`);
  console.log(
    `results in ${o.out}: records-*.jsonl and runs/ (raw), manifest.json, load.json, summary.json, summary.md, report.html; recompute with pctcp experiment analyze ${o.out}`,
  );
  return sig.signal.aborted ? 130 : undefined;
}

/** Builds the `experiment` command. */
export function experimentCommand(): Command {
  const exp = new Command("experiment").description(
    "run experiments (interference: arms on the same network; sweep: one parameter varied)",
  );
  withCommon(
    exp.command("interference")
      .description(
        "the cross-circuit interference experiment: the same workload under each arm; writes records, summary.json, queues.json, plots, report.html",
      ),
  )
    .option("--out <dir>", "output folder", "./pctcp-experiment")
    .addOption(
      new Option(
        "--network <n>",
        "ours: networks of our relays, one per arm; ctor: one C tor network per run (Debian's tor authorities, guard, client) where only the pair under test differs (arms ctor, ours-tor, ours-pctcp)",
      ).choices(["ours", "ctor"]).default("ours"),
    )
    .addOption(
      new Option("--positions <p>", "with --network ctor: the pair under test")
        .choices(["middle-exit", "guard-middle"]).default("middle-exit"),
    )
    .option(
      "--networks <k>",
      "with --network ctor --netns: draw K networks from the scenario's sample distributions (seeded: per hop latency and loss, the pair's host rate); --runs runs on each",
      positiveInt,
    )
    .addHelpText(
      "after",
      "\nExamples:\n  pctcp experiment interference --network ctor --arms ctor,ours-tor,ours-pctcp --runs 3 --out DIR   # inside a C tor network\n  pctcp experiment interference --network ctor --netns --scenario ctor-netns --networks 3 --runs 2 --out DIR   # the headline: 3 drawn networks × 2 runs\n  pctcp experiment interference --scenario auto --out ./demo      # emulated where root, else loopback\n  pctcp experiment interference --scenario quick-netns --netns --arms tor-kist,pctcp,ctor --runs 3 --out DIR",
    )
    .action((
      o: CommonFlags & { network: "ours" | "ctor"; positions: Positions; networks?: number },
    ) =>
      run(async () => {
        if (o.network === "ctor") return await ctorNetworkExperiment(o);
        if (o.networks !== undefined) {
          throw new UsageError("--networks is for --network ctor (networks of ours: --runs)");
        }
        const { arms, base } = await checkCommon(o);
        if (o.scenario === "auto") {
          const a = await autoScenario();
          o.scenario = a.scenario;
          if (a.netns) o.netns = true;
        }
        const emulation = await emulationFromFlags(o, !!o.netns);
        const sig = signals();
        let summary;
        try {
          summary = await runInterference({
            scenario: o.scenario,
            out: o.out,
            ...runOptions(o, arms, base, emulation, sig.signal),
          });
        } finally {
          sig.done();
        }
        console.log(`\n${consoleSummary(summary)}`);
        console.log(
          `results in ${o.out}: records-*.jsonl and runs/ (raw), manifest.json, load.json, summary.json, summary.md, report.html; recompute with pctcp experiment analyze ${o.out} and pctcp report ${o.out} --out DIR`,
        );
        if (sig.signal.aborted) return 130;
      })
    );
  withCommon(
    exp.command("sweep")
      .description(
        "the interference experiment once per value of a parameter; plots the change (each arm vs base) against the value",
      ),
  )
    .addOption(
      new Option("--param <p>", "the parameter varied").choices([...SWEEP_PARAMS])
        .makeOptionMandatory(),
    )
    .requiredOption("--values <list>", "comma-separated values (loss in %, latency in ms, …)")
    .option("--out <dir>", "output folder", "./pctcp-sweep")
    .action((o: CommonFlags & { param: SweepParam; values: string }) =>
      run(async () => {
        const values = o.values.split(",").map((v) => v.trim()).filter(Boolean);
        if (!values.length) throw new UsageError("--values needs at least one value");
        if (o.param === "loss" || o.param === "latency") {
          for (const v of values) {
            try {
              o.param === "loss" ? parseLoss(v) : parseDuration(v);
            } catch (e) {
              throw new UsageError(`--values: ${(e as Error).message}`);
            }
          }
          if (Deno.uid() !== 0) {
            throw new UsageError(
              `a sweep over ${o.param} runs on emulated links in network namespaces: run it as root`,
            );
          }
        }
        const { arms, base } = await checkCommon(o);
        const emulation = await emulationFromFlags(
          o,
          !!o.netns || o.param === "loss" || o.param === "latency",
        );
        const sig = signals();
        const r = await runSweep({
          param: o.param,
          values,
          scenario: o.scenario,
          out: o.out,
          ...runOptions(o, arms, base, emulation, sig.signal),
        });
        sig.done();
        console.log(`\n${r.markdown}`);
        console.log(`results in ${o.out}: sweep.json, sweep.md, sweep-*.svg, one folder per value`);
        if (sig.signal.aborted) return 130;
      })
    );
  exp.command("analyze")
    .description(
      "recompute summary.json from an experiment folder's records and manifest alone (offline; nothing is measured)",
    )
    .argument("<dir>", "an experiment folder (records-ARM.jsonl, runs/, manifest.json)")
    .option("--out <file>", "write the summary here (default DIR/summary.json)")
    .option("--base <arm>", "the arm changes are computed against (default: the manifest's)")
    .addHelpText(
      "after",
      "\nExample:\n  pctcp experiment analyze measurements/results/2026-11-26-quick-netns-4arms --base tor-kist --out /tmp/s.json",
    )
    .action((dir: string, o: { out?: string; base?: string }) =>
      run(async () => {
        if (o.base && !isArm(o.base)) {
          throw new UsageError(`unknown arm ${o.base}: choose from ${ARMS.join(", ")}`);
        }
        const s = await writeSummary(dir, {
          ...(o.base ? { base: o.base as Arm } : {}),
          ...(o.out ? { out: o.out } : {}),
        });
        console.log(consoleSummary(s));
        console.log(`summary in ${o.out ?? `${dir}/summary.json`}`);
      })
    );
  return exp;
}
