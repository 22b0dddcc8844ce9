/**
 * `pctcp relay`: runs an onion router.
 * @module
 */

import { Command, Option } from "commander";
import { exitAfter, positiveInt, run, untilStopped, UsageError } from "./_common.ts";
import { relayKeysFrom, relayKeysFromJson, relayKeysToJson } from "../lib/directory/keys.ts";
import { renewTorRelayKeys } from "../lib/keys/mod.ts";
import {
  authoritiesFromTorrc,
  type DirAuthority,
  parseDirAuthorityLine,
} from "../lib/dirauth/authorities.ts";
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
  directory?: string;
  dirAuthority?: string[];
  torrc?: string;
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
    .option(
      "--directory <file>",
      "the signed network document of a network of our relays (re-read when it changes)",
    )
    .option(
      "--dir-authority <line...>",
      'join the C tor network of this authority (torrc syntax, repeatable: "nick orport=N v3ident=HEX ADDR:DIRPORT FP")',
    )
    .option("--torrc <file>", "join the C tor network whose DirAuthority lines this torrc has")
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
        const authorities: DirAuthority[] = [
          ...(o.torrc ? authoritiesFromTorrc(await Deno.readTextFile(o.torrc)) : []),
          ...(o.dirAuthority ?? []).map((l) => {
            try {
              return parseDirAuthorityLine(l.replace(/^DirAuthority\s+/i, ""));
            } catch (e) {
              throw new UsageError(`--dir-authority: ${(e as Error).message}`);
            }
          }),
        ];
        if (!o.directory && !authorities.length) {
          throw new UsageError(
            "a relay needs a network: --directory FILE (our own) or --dir-authority LINE / --torrc FILE (C tor's)",
          );
        }
        if (o.torrc && !authorities.length) {
          throw new UsageError(`${o.torrc} has no DirAuthority lines`);
        }
        const keysText = await Deno.readTextFile(o.keys);
        let keys = relayKeysFromJson(keysText);
        // Certificates and onion keys that lapsed while the relay was down are renewed now,
        // and the file keeps the renewed set (a restart must not undo a rotation).
        const saveKeys = () =>
          Deno.writeTextFile(`${o.keys}.tmp`, relayKeysToJson(keys) + "\n", { mode: 0o600 })
            .then(() => Deno.rename(`${o.keys}.tmp`, o.keys));
        const renewed = renewTorRelayKeys(keys.tor, new Date());
        if (renewed.renewed.length) {
          keys = relayKeysFrom(renewed.keys, keys.link);
          log.info(`keys renewed at start: ${renewed.renewed.join(", ")}`);
          await saveKeys();
        }
        const path = o.directory;
        const dir = path
          ? watchDirectory(path, {
            log,
            ...(o.authority ? { authority: o.authority } : {}),
          })
          : undefined;
        const rate = o.bandwidth ? parseSize(o.bandwidth) : undefined;
        const relay = new Relay({
          keys,
          nickname: o.nickname,
          address: o.address,
          orPort: o.orPort,
          ...(dir ? { directory: () => dir.get() } : {}),
          ...(authorities.length ? { authorities } : {}),
          onKeysRenewed: (k) => {
            keys = k;
            saveKeys().catch((e) => log.warn(`keys file not rewritten: ${(e as Error).message}`));
          },
          ...transport,
          ...(rate ? { bandwidth: { rate, burst: o.burst ? parseSize(o.burst) : rate } } : {}),
          exitAllow: o.exitAllow ?? [],
          fdBudget: o.fdBudget,
          ewmaHalflifeMs: o.ewmaHalflife,
          scheduler: o.scheduler,
          log,
        });
        let statsTimer: ReturnType<typeof setInterval> | undefined;
        const writeStats = (f: string) =>
          Deno.writeTextFile(`${f}.tmp`, JSON.stringify(relay.stats()))
            .then(() => Deno.rename(`${f}.tmp`, f)).catch(() => {});
        if (o.statsFile) {
          const f = o.statsFile;
          statsTimer = setInterval(() => writeStats(f), 1000);
        }
        // Resolves once listening and, in a C tor network, once every authority answered our
        // descriptor (the stats file's `published`; a 400 is logged with its reason).
        await relay.start();
        if (o.statsFile) await writeStats(o.statsFile);
        if (o.portFile) await Deno.writeTextFile(o.portFile, `${relay.port}\n`);
        await untilStopped(o.exitWith);
        clearInterval(statsTimer);
        dir?.stop();
        await exitAfter(() => relay.stop(), { log: (m) => log.warn(m) });
      })
    );
}
