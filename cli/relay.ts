/**
 * `pctcp relay`: runs an onion router.
 * @module
 */

import { Command, Option } from "commander";
import { positiveInt, run, untilStopped } from "./_common.ts";
import { relayKeysFromJson } from "../lib/directory/keys.ts";
import { watchDirectory } from "../lib/directory/watch.ts";
import { Relay } from "../lib/relay/relay.ts";
import { parseSize } from "../lib/serve/sizes.ts";
import { makeLogger } from "../lib/util/log.ts";
import { SCHEDULER_KINDS, type SchedulerKind } from "../lib/channel/scheduler.ts";
import type { Transport } from "../lib/directory/document.ts";
import { transportWarnings } from "../lib/transport/registry.ts";
import { addTransportFlags, transportOptions } from "./_transport.ts";

interface RelayFlags {
  keys: string;
  nickname: string;
  directory: string;
  authority?: string;
  address: string;
  orPort: number;
  transport: Transport;
  bandwidth?: string;
  burst?: string;
  exitAllow?: string[];
  portFile?: string;
  fdBudget: number;
  statsFile?: string;
  ewmaHalflife: number;
  scheduler: SchedulerKind;
  logLevel: "debug" | "info" | "warn" | "error";
  exitWith?: number;
  /** The transports' own flags (see lib/transport/registry.ts). */
  [transportFlag: string]: unknown;
}

/** Builds the `relay` command. */
export function relayCommand(): Command {
  const cmd = new Command("relay")
    .description("run an onion router (transport: tor, pctcp, … from the registry)")
    .requiredOption("--keys <file>", "keys file from `pctcp keygen`")
    .requiredOption("--nickname <name>", "this relay's nickname")
    .requiredOption("--directory <file>", "the signed network document (re-read when it changes)")
    .option("--authority <base64>", "pin the directory's authority key")
    .option("--address <addr>", "address to listen on", "127.0.0.1")
    .option(
      "--or-port <port>",
      "OR port (0: any free port)",
      (v) => v === "0" ? 0 : positiveInt(v),
      0,
    );
  return addTransportFlags(cmd, "relay", "link transport")
    .option("--bandwidth <rate>", "rate limit per second, reads and writes (e.g. 1MiB)")
    .option("--burst <size>", "token bucket burst (default: the rate)")
    .option(
      "--exit-allow <entry...>",
      "destinations this exit may reach besides public ones (ADDR[/BITS]:PORT|*)",
    )
    .option(
      "--fd-budget <n>",
      "sockets this relay may hold; links past it are refused",
      positiveInt,
      8192,
    )
    .option("--port-file <file>", "write the bound OR port here")
    .option("--stats-file <file>", "write per-peer statistics (JSON) here every second")
    .option("--ewma-halflife <ms>", "EWMA half-life in ms (0: off)", (v) => Number(v), 30000)
    .addOption(
      new Option("--scheduler <s>", "cell scheduler across links (kist: Tor's since 0.3.2)")
        .choices([...SCHEDULER_KINDS]).default("vanilla"),
    )
    .option("--exit-with <pid>", "exit when this process is gone", positiveInt)
    .addOption(
      new Option("--log-level <l>", "log level").choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .action((o: RelayFlags) =>
      run(async () => {
        const transport = transportOptions(o, "relay");
        const log = makeLogger(o.nickname, o.logLevel);
        for (const w of transportWarnings(transport)) log.warn(w);
        const keys = relayKeysFromJson(await Deno.readTextFile(o.keys));
        const dir = watchDirectory(o.directory, {
          log,
          ...(o.authority ? { authority: o.authority } : {}),
        });
        const rate = o.bandwidth ? parseSize(o.bandwidth) : undefined;
        const relay = new Relay({
          keys,
          nickname: o.nickname,
          address: o.address,
          orPort: o.orPort,
          directory: () => dir.get(),
          ...transport,
          ...(rate ? { bandwidth: { rate, burst: o.burst ? parseSize(o.burst) : rate } } : {}),
          exitAllow: o.exitAllow ?? [],
          fdBudget: o.fdBudget,
          ewmaHalflifeMs: o.ewmaHalflife,
          scheduler: o.scheduler,
          log,
        });
        await relay.start();
        if (o.portFile) await Deno.writeTextFile(o.portFile, `${relay.port}\n`);
        let statsTimer: ReturnType<typeof setInterval> | undefined;
        if (o.statsFile) {
          const f = o.statsFile;
          statsTimer = setInterval(() => {
            Deno.writeTextFile(`${f}.tmp`, JSON.stringify(relay.stats()))
              .then(() => Deno.rename(`${f}.tmp`, f)).catch(() => {});
          }, 1000);
        }
        await untilStopped(o.exitWith);
        clearInterval(statsTimer);
        dir.stop();
        await relay.stop();
        Deno.exit(0);
      })
    );
}
