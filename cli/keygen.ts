/**
 * `pctcp keygen`: make a relay's identity, onion and link keys
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `keygen` command. */
export function keygenCommand(): Command {
  return new Command("keygen")
    .description("make a relay's identity, onion and link keys (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("keygen", 3));
}
