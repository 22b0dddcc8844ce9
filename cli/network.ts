/**
 * `pctcp network`: start, inspect and stop a private network (up|status|down)
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `network` command. */
export function networkCommand(): Command {
  return new Command("network")
    .description("start, inspect and stop a private network (up|status|down) (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("network", 3));
}
