/**
 * `pctcp report`: render an HTML report of an output folder
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `report` command. */
export function reportCommand(): Command {
  return new Command("report")
    .description("render an HTML report of an output folder (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("report", 6));
}
