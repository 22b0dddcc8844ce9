/**
 * `pctcp stats`: percentiles with confidence intervals from records files
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `stats` command. */
export function statsCommand(): Command {
  return new Command("stats")
    .description("percentiles with confidence intervals from records files (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("stats", 6));
}
