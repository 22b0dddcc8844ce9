/**
 * `pctcp serve`: the web and file server measurements fetch from.
 * @module
 */

import { Command } from "commander";
import { exitAfter, positiveInt, run, untilStopped } from "./_common.ts";
import { serve } from "../lib/serve/server.ts";
import { builtinNames, readBuiltin } from "../lib/util/builtin.ts";

/** Builds the `serve` command. */
export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "serve GET /bytes/SIZE (deterministic bytes, Repr-Digest) and a folder of web pages",
    )
    .option("--address <addr>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port (default: any free port)", positiveInt)
    .option(
      "--root <dir>",
      "folder of static files (web pages); default: the built-in pages of measurements/web (/index.html)",
    )
    .option("--exit-with <pid>", "exit when this process is gone", positiveInt)
    .addHelpText(
      "after",
      `
Examples:
  pctcp serve --port 8080            # then: curl -sI http://127.0.0.1:8080/bytes/5MiB
  pctcp serve --root ./site          # your own pages instead of the built-in one

Prints one JSON line ({"server": URL, "port": N}) and serves until Ctrl-C.`,
    )
    .action((o: { address: string; port?: number; root?: string; exitWith?: number }) =>
      run(async () => {
        const pages: Record<string, string> = {};
        if (!o.root) {
          for (const n of builtinNames("web")) pages[n] = (await readBuiltin("web", n))!;
        }
        const s = await serve({
          pages,
          address: o.address,
          ...(o.port ? { port: o.port } : {}),
          ...(o.root ? { root: o.root } : {}),
        });
        console.log(JSON.stringify({ server: s.url, port: s.port }));
        await untilStopped(o.exitWith);
        await exitAfter(() => s.stop());
      })
    );
}
