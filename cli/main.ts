/**
 * The `pctcp` command: one entry, one file per command under cli/.
 *
 * @module
 */

import { Command, type CommanderError } from "commander";
import { EXIT_USAGE, millisOrZero, renamedFlag, seconds } from "./_common.ts";
import { Option } from "commander";
import { EXAMPLES } from "./_examples.ts";
import { VERSION } from "../lib/version.ts";
import { keygenCommand } from "./keygen.ts";
import { relayCommand } from "./relay.ts";
import { clientCommand } from "./client.ts";
import { serveCommand } from "./serve.ts";
import { networkCommand } from "./network.ts";
import { measureCommand } from "./measure.ts";
import { statsCommand } from "./stats.ts";
import { compareCommand } from "./compare.ts";
import { reportCommand } from "./report.ts";
import { experimentCommand } from "./experiment.ts";
import { exportCommand } from "./export.ts";
import { importCommand } from "./import.ts";
import { scheduleCommand } from "./schedule.ts";

/** Builds the whole command tree (exported so tests can inspect it). */
export function buildProgram(): Command {
  const program = new Command("pctcp")
    .description(
      "PCTCP (per-circuit TCP over IPsec) for onion routing: relays, private networks, measurement",
    )
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .enablePositionalOptions();
  for (
    const make of [
      keygenCommand,
      relayCommand,
      clientCommand,
      serveCommand,
      networkCommand,
      measureCommand,
      statsCommand,
      compareCommand,
      reportCommand,
      exportCommand,
      importCommand,
      experimentCommand,
      scheduleCommand,
    ]
  ) program.addCommand(make());
  oneMeaningPerFlag(program);
  addExamples(program, "");
  return program;
}

/** Adds the examples of cli/_examples.ts to every command whose own file gives none. */
function addExamples(c: Command, path: string): void {
  const text = EXAMPLES[path];
  // Commander keeps help texts as listeners of its "afterHelp" event (it is an EventEmitter).
  const own = (c as unknown as { listenerCount(e: string): number }).listenerCount("afterHelp");
  if (text !== undefined && own === 0) c.addHelpText("after", text);
  for (const sub of c.commands) addExamples(sub, path ? `${path} ${sub.name()}` : sub.name());
}

/**
 * One meaning per flag name across commands (docs/cli.md "Flag names"): where two commands
 * used a name for different things, the one that moved gets its new name here and the old name
 * stays as a hidden alias (same value, so old command lines and cron entries keep working):
 * `--time-origin` (stats, compare; was `--base`, which elsewhere is the base arm),
 * `--baseline` (experiment; was `--base`, as compare and report already call the base arm),
 * `--arms` (the filter of stats, compare, export; was `--arm`, which in measure defines an arm;
 * `--arms` picks arms, as in experiment). Durations take units (lib/util/duration.ts).
 */
function oneMeaningPerFlag(program: Command): void {
  const find = (c: Command, long: string) => c.options.find((o) => o.long === long);
  const sub = (name: string) => program.commands.find((c) => c.name() === name);
  const hide = (c: Command, long: string, newName: string) => {
    const o = find(c, long);
    if (!o) return false;
    o.hideHelp();
    o.description = `old name of ${newName}`;
    return true;
  };
  for (const name of ["stats", "compare"]) {
    const c = sub(name);
    if (c && hide(c, "--base", "--time-origin")) {
      renamedFlag(
        c,
        new Option(
          "--time-origin <b>",
          "where times count from: onionperf (the stream's start, default) or tgen (old name: --base)",
        ).choices(["onionperf", "tgen"]),
        "base",
      );
    }
  }
  for (const name of ["stats", "compare", "export"]) {
    const c = sub(name);
    if (c && hide(c, "--arm", "--arms")) {
      renamedFlag(
        c,
        new Option("--arms <list>", "only these arms, comma-separated (measure --arm; old: --arm)"),
        "arm",
        (v) => v.split(",").map((x) => x.trim()).filter(Boolean),
      );
    }
  }
  for (const c of sub("experiment")?.commands ?? []) {
    if (hide(c, "--base", "--baseline")) {
      renamedFlag(
        c,
        new Option(
          "--baseline <arm>",
          "the arm changes are computed against (default: tor; old name: --base)",
        ),
        "base",
      );
    }
    const d = find(c, "--duration");
    if (d) {
      d.argParser(seconds);
      d.flags = "--duration <time>";
      d.description = "override the scenario's time per arm (90s, 5m; a bare number is seconds)";
    }
  }
  const ewma = sub("relay") && find(sub("relay")!, "--ewma-halflife");
  if (ewma) {
    ewma.argParser(millisOrZero);
    ewma.flags = "--ewma-halflife <time>";
    ewma.description = "EWMA half-life of the circuit scheduler (e.g. 30s; bare: ms; 0: off)";
  }
  // `--format json` everywhere; `--json` stays as a hidden alias where it was.
  const net = sub("network");
  const sched = sub("schedule");
  for (
    const c of [
      net?.commands.find((x) => x.name() === "up"),
      net?.commands.find((x) => x.name() === "status"),
      sched?.commands.find((x) => x.name() === "list"),
    ]
  ) {
    if (!c || !hide(c, "--json", "--format json")) continue;
    renamedFlag(
      c,
      new Option("--format <f>", "output format: text (default) or json (old: --json)")
        .choices(["text", "json"]),
      "json",
      (v) => v === "json",
    );
  }
}

/** Runs the command line; usage errors exit 2, help and version exit 0. */
export async function main(args: string[]): Promise<void> {
  const program = buildProgram();
  const exitOverride = (err: CommanderError) => {
    if (
      err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
      err.code === "commander.help"
    ) Deno.exit(0);
    Deno.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  };
  program.exitOverride(exitOverride);
  for (const cmd of program.commands) {
    cmd.exitOverride(exitOverride);
    for (const sub of cmd.commands) sub.exitOverride(exitOverride);
  }
  await program.parseAsync(args, { from: "user" });
}

if (import.meta.main) await main(Deno.args);
