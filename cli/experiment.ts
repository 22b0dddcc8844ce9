/**
 * `pctcp experiment`: run the cross-circuit interference experiment (tor vs pctcp)
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `experiment` command. */
export function experimentCommand(): Command {
  return new Command("experiment")
    .description("run the cross-circuit interference experiment (tor vs pctcp) (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("experiment", 7));
}
