/**
 * `pctcp client`: run an onion proxy with a SOCKS5 port
 * @module
 */

import { Command } from "commander";
import { notBuilt } from "./_common.ts";

/** Builds the `client` command. */
export function clientCommand(): Command {
  return new Command("client")
    .description("run an onion proxy with a SOCKS5 port (not built yet)")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => notBuilt("client", 3));
}
