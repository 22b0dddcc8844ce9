/**
 * `pctcp client`: runs an onion proxy with a SOCKS5 port.
 * @module
 */

import { Command, Option } from "commander";
import { addTransportFlags, transportOptions } from "./_transport.ts";
import { exitAfter, positiveInt, run, untilStopped } from "./_common.ts";
import { watchDirectory } from "../lib/directory/watch.ts";
import { OnionClient } from "../lib/client/client.ts";
import { makeLogger } from "../lib/util/log.ts";
import type { Transport } from "../lib/directory/document.ts";

interface ClientFlags {
  directory: string;
  authority?: string;
  socksAddress: string;
  socksPort: number;
  path?: string;
  transport: Transport;
  portFile?: string;
  streamsFile?: string;
  securityNote?: string;
  logLevel: "debug" | "info" | "warn" | "error";
  exitWith?: number;
  /** The transports' own flags (see lib/transport/registry.ts). */
  [transportFlag: string]: unknown;
}

/** Builds the `client` command. */
export function clientCommand(): Command {
  const cmd = new Command("client")
    .description("run an onion proxy with a SOCKS5 port")
    .requiredOption("--directory <file>", "the signed network document")
    .option("--authority <base64>", "pin the directory's authority key")
    .option("--socks-address <addr>", "SOCKS listen address", "127.0.0.1")
    .option(
      "--socks-port <port>",
      "SOCKS port (0: any free port)",
      (v) => v === "0" ? 0 : positiveInt(v),
      9050,
    )
    .option("--path <r1,r2,r3>", "pin every circuit to these relays (nicknames or fingerprints)");
  return addTransportFlags(cmd, "client", "transport to guards")
    .option("--port-file <file>", "write the bound SOCKS port here")
    .option("--streams-file <file>", "append one JSON line per stream (source port → circuit)")
    .option("--security-note <text>", "repeat this in every stream event (e.g. insecure lab mode)")
    .option("--exit-with <pid>", "exit when this process is gone", positiveInt)
    .addOption(
      new Option("--log-level <l>", "log level").choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .action((o: ClientFlags) =>
      run(async () => {
        const log = makeLogger("client", o.logLevel);
        const dir = watchDirectory(o.directory, {
          log,
          ...(o.authority ? { authority: o.authority } : {}),
        });
        await dir.ready();
        const streams = o.streamsFile
          ? await Deno.open(o.streamsFile, { append: true, create: true })
          : undefined;
        const enc = new TextEncoder();
        const client = new OnionClient({
          directory: () => dir.get(),
          socksAddress: o.socksAddress,
          socksPort: o.socksPort,
          ...transportOptions(o, "client"),
          ...(o.securityNote ? { securityNote: o.securityNote } : {}),
          ...(o.path ? { path: o.path.split(",").map((s) => s.trim()).filter(Boolean) } : {}),
          ...(streams
            ? { onStream: (e) => streams.writeSync(enc.encode(JSON.stringify(e) + "\n")) }
            : {}),
          log,
        });
        await client.start();
        if (o.portFile) await Deno.writeTextFile(o.portFile, `${client.socksPort}\n`);
        log.info(`SOCKS5 on ${o.socksAddress}:${client.socksPort}`);
        await untilStopped(o.exitWith);
        dir.stop();
        await exitAfter(async () => {
          await client.stop();
          streams?.close();
        }, { log: (m) => log.warn(m) });
      })
    );
}
