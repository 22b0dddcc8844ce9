/**
 * `pctcp compare`: compare two sets of records: change per percentile with its interval
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `compare` command. */
export function compareCommand(): Command {
  return new Command("compare")
    .description(
      "compare two sets of records: change per percentile with its interval (not built yet)",
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("compare", 6));
}
