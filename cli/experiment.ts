/**
 * `pctcp experiment interference`: tor vs pctcp on the same network and workload.
 * @module
 */

import { Command } from "commander";
import { nonNegative, run, UsageError } from "./_common.ts";
import { runInterference, summaryMarkdown } from "../lib/experiment/interference.ts";
import { haveTor } from "../lib/tor/testnet.ts";
import { addEmulationFlags, type EmulationFlags, emulationFromFlags } from "./network.ts";

/** Builds the `experiment` command. */
export function experimentCommand(): Command {
  const exp = new Command("experiment").description("run experiments (interference: tor vs pctcp)");
  addEmulationFlags(exp.command("interference"))
    .description(
      "the cross-circuit interference experiment: same workload on tor, then pctcp; writes records, summary.json, plots, report.html",
    )
    .option(
      "--scenario <name|file>",
      "scenario under measurements/scenarios/ or a JSON file",
      "quick",
    )
    .option("--out <dir>", "output folder", "./pctcp-experiment")
    .option("--mixed", "add a half-upgraded (mixed) network arm")
    .option("--duration <s>", "override the scenario's seconds per arm", nonNegative)
    .option(
      "--netns",
      "hosts in network namespaces linked through the user-space emulator, pctcp under IPsec (root)",
    )
    .option(
      "--with-real-tor",
      "add an arm on a private network of Debian's tor (needs tor installed)",
    )
    .action((
      o: EmulationFlags & {
        scenario: string;
        out: string;
        mixed?: boolean;
        duration?: number;
        netns?: boolean;
        withRealTor?: boolean;
      },
    ) =>
      run(async () => {
        if (o.withRealTor && !(await haveTor())) {
          throw new UsageError("--with-real-tor needs Debian's tor: apt-get install tor");
        }
        const emulation = await emulationFromFlags(o, !!o.netns);
        const ctl = new AbortController();
        const stop = () => {
          console.error("pctcp: stopping: tearing the network down");
          ctl.abort();
        };
        Deno.addSignalListener("SIGINT", stop);
        Deno.addSignalListener("SIGTERM", stop);
        const quiet = !Deno.stderr.isTerminal();
        const summary = await runInterference({
          scenario: o.scenario,
          out: o.out,
          ...(o.mixed ? { mixed: true } : {}),
          ...(o.withRealTor ? { withRealTor: true } : {}),
          ...(o.netns ? { netns: true } : {}),
          ...(emulation ? { emulation } : {}),
          ...(o.duration !== undefined ? { durationS: o.duration } : {}),
          progress: (l) => quiet ? console.log(l) : console.error(l),
          signal: ctl.signal,
        });
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGTERM", stop);
        console.log(`\n${summaryMarkdown(summary)}`);
        console.log(`results in ${o.out}: summary.json, summary.md, report.html, records-*.jsonl`);
        if (ctl.signal.aborted) return 130;
      })
    );
  return exp;
}
