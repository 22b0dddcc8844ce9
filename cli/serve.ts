/**
 * `pctcp serve`: the web and file server measurements fetch from.
 * @module
 */

import { Command } from "commander";
import { positiveInt, run, untilStopped } from "./_common.ts";
import { serve } from "../lib/serve/server.ts";

/** Builds the `serve` command. */
export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "serve GET /bytes/SIZE (deterministic bytes, Repr-Digest) and a folder of web pages",
    )
    .option("--address <addr>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port (default: any free port)", positiveInt)
    .option("--root <dir>", "folder of static files (web pages)")
    .option("--exit-with <pid>", "exit when this process is gone", positiveInt)
    .action((o: { address: string; port?: number; root?: string; exitWith?: number }) =>
      run(async () => {
        const s = await serve({
          address: o.address,
          ...(o.port ? { port: o.port } : {}),
          ...(o.root ? { root: o.root } : {}),
        });
        console.log(JSON.stringify({ server: s.url, port: s.port }));
        await untilStopped(o.exitWith);
        await s.stop();
        Deno.exit(0);
      })
    );
}
