/**
 * `pctcp serve`: serve a folder and generated bodies (/bytes/SIZE) over HTTP
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `serve` command. */
export function serveCommand(): Command {
  return new Command("serve")
    .description("serve a folder and generated bodies (/bytes/SIZE) over HTTP (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("serve", 3));
}
