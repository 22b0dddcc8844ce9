/**
 * `pctcp measure`: fetch web pages and bulk files through a SOCKS5 proxy, append records
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `measure` command. */
export function measureCommand(): Command {
  return new Command("measure")
    .description(
      "fetch web pages and bulk files through a SOCKS5 proxy, append records (not built yet)",
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("measure", 5));
}
