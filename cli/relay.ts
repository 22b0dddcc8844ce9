/**
 * `pctcp relay`: run an onion router (transport tor or pctcp)
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `relay` command. */
export function relayCommand(): Command {
  return new Command("relay")
    .description("run an onion router (transport tor or pctcp) (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("relay", 3));
}
