/**
 * The `pctcp` command: one entry, one file per command under cli/.
 *
 * @module
 */

import { Command, type CommanderError } from "commander";
import { EXIT_USAGE } from "./_common.ts";
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
  return program;
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
