/**
 * `pctcp schedule add|list|remove`: measurements run by cron, one tagged crontab line each.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import {
  addEntry,
  checkCronFields,
  everyToCron,
  listEntries,
  makeEntry,
  removeEntries,
  systemCrontab,
} from "../lib/schedule/crontab.ts";
import { expandDatePattern } from "../lib/schedule/date_pattern.ts";
import { createHash } from "node:crypto";
import { selfCommand } from "../lib/util/self.ts";

interface AddFlags {
  name?: string;
  every?: string;
  cron?: string;
  log?: string;
  print?: boolean;
  preset?: string;
  socks?: string;
  server?: string;
  outDir?: string;
}

/**
 * OnionPerf's measurement as its default TGen model makes it (onionperf/model.py, TorperfModel
 * and TGenModelConf: one stream of `recvsize` 5 MiB with `timeout="270 seconds"`, a
 * `pause_between` of 300 s running beside each stream and a `pause_sync` waiting for both, so a
 * stream starts every 5 minutes, or as soon as a slower one ends): one 5 MiB download every
 * 5 minutes with a 270 s timeout; OnionPerf's 50 KiB and 1 MiB points are the byte marks of
 * that download (`marks_ms`), not downloads of their own. Its 300 s `pause_initial` is cron's
 * first slot. The timeout is shorter than the period, so runs never overlap.
 */
function onionperfArgs(o: AddFlags, cwd: string): string[] {
  if (!o.socks || !o.server) {
    throw new UsageError("--preset onionperf needs --socks HOST:PORT and --server URL");
  }
  if (!URL.canParse(o.server)) throw new UsageError(`not a URL: ${o.server}`);
  const base = o.server.replace(/\/$/, "");
  const dir = absolute(o.outDir ?? "onionperf", cwd);
  return [
    "measure",
    "--socks",
    o.socks,
    "--label",
    "onionperf",
    "--url",
    `${base}/bytes/5MiB`,
    "--count",
    "1",
    "--timeout",
    "270s",
    "--out",
    `${dir}/onionperf-%Y-%m-%d.jsonl`,
  ];
}

function absolute(p: string, cwd: string): string {
  return p.startsWith("/") ? p : `${cwd.replace(/\/$/, "")}/${p}`;
}

/** The command that runs this pctcp as it was started: `deno run -A cli/main.ts` from source,
 * `deno run -A /path/pctcp.js` from the bundle, or the compiled binary alone. */
function selfArgv(): string[] {
  const argv = selfCommand();
  const entry = argv.at(-1)!;
  if (argv.length > 1 && !entry.startsWith("/")) {
    throw new Error(`cannot schedule from ${entry}: run pctcp from a local file`);
  }
  return argv;
}

function cronRunning(): boolean {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const comm = Deno.readTextFileSync(`/proc/${e.name}/comm`).trim();
      if (comm === "cron" || comm === "crond") return true;
    } catch { /* gone */ }
  }
  return false;
}

/** Builds the `schedule` command. */
export function scheduleCommand(): Command {
  const cmd = new Command("schedule").description(
    "run measurements from cron: add, list and remove tagged crontab entries",
  );
  cmd.command("add")
    .description(
      "add (or replace, by name) a crontab entry that runs `pctcp measure …`; e.g. " +
        "schedule add --every 5m -- measure --socks 127.0.0.1:9050 --url URL --out 'records-%Y-%m-%d.jsonl'",
    )
    .argument("[measure...]", "after --: measure and its options")
    .option("--every <period>", "1m, 5m, 15m, 1h, 6h, 1d … (a period dividing the hour or day)")
    .option("--cron <fields>", "five cron time fields instead of --every, e.g. '*/10 6-22 * * *'")
    .option("--name <name>", "entry name (default: onionperf, or measure-HASH of the arguments)")
    .option("--log <file>", "where the runs' output goes (default ./pctcp-schedule-NAME.log)")
    .option("--print", "only print the crontab line; change nothing")
    .option(
      "--preset <preset>",
      "onionperf: as OnionPerf measures, one 5 MiB download every 5 min, 270 s timeout (50 KiB and 1 MiB byte marks kept)",
    )
    .option("--socks <host:port>", "with --preset: the SOCKS5 proxy")
    .option("--server <url>", "with --preset: the file server (GET /bytes/SIZE)")
    .option("--out-dir <dir>", "with --preset: folder of the daily files (default ./onionperf)")
    .action((measure: string[], o: AddFlags) =>
      run(async () => {
        const cwd = Deno.cwd();
        let args: string[];
        if (o.preset !== undefined) {
          if (o.preset !== "onionperf") throw new UsageError(`unknown preset: ${o.preset}`);
          if (measure.length) throw new UsageError("give either --preset or -- measure …");
          args = onionperfArgs(o, cwd);
        } else {
          args = measure;
          if (args[0] !== "measure") {
            throw new UsageError(
              "after --, give the measure command: -- measure --socks … --out …",
            );
          }
          if (!args.includes("--out")) throw new UsageError("the measure command needs --out");
          const out = args[args.indexOf("--out") + 1] ?? "";
          try {
            expandDatePattern(out);
          } catch (e) {
            throw new UsageError((e as Error).message);
          }
        }
        if (o.every && o.cron) throw new UsageError("give --every or --cron, not both");
        let cron: string;
        try {
          cron = o.cron ? checkCronFields(o.cron) : everyToCron(o.every ?? (o.preset ? "5m" : ""));
        } catch (e) {
          if (!o.every && !o.cron) throw new UsageError("give --every PERIOD or --cron FIELDS");
          throw new UsageError((e as Error).message);
        }
        const name = o.name ?? (o.preset
          ? o.preset
          : `measure-${createHash("sha256").update(args.join("\0")).digest("hex").slice(0, 8)}`);
        let entry;
        try {
          entry = makeEntry({
            name,
            cron,
            argv: [...selfArgv(), ...args],
            cwd,
            log: absolute(o.log ?? `pctcp-schedule-${name}.log`, cwd),
          });
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        if (o.print) return void console.log(entry.line);
        if (o.preset) await Deno.mkdir(absolute(o.outDir ?? "onionperf", cwd), { recursive: true });
        await addEntry(systemCrontab(), entry);
        console.log(`crontab entry ${name}: ${entry.cron}`);
        console.log(entry.line);
        console.log(`remove it with: pctcp schedule remove ${name}`);
        if (!cronRunning()) console.error("pctcp: note: no cron daemon is running here");
      })
    );
  cmd.command("list")
    .description("list the crontab entries pctcp schedule added")
    .option("--json", "print JSON")
    .action((o: { json?: boolean }) =>
      run(async () => {
        const entries = await listEntries(systemCrontab());
        if (o.json) return void console.log(JSON.stringify(entries));
        if (!entries.length) return void console.log("no pctcp entries in the crontab");
        for (const e of entries) {
          console.log(`${e.name.padEnd(20)} ${e.cron.padEnd(14)} ${e.command}`);
        }
      })
    );
  cmd.command("remove")
    .description("remove entries by name (or --all of ours); other crontab lines stay as they were")
    .argument("[names...]", "entry names (see schedule list)")
    .option("--all", "every entry pctcp schedule added")
    .action((names: string[], o: { all?: boolean }) =>
      run(async () => {
        if (!names.length && !o.all) throw new UsageError("give entry names or --all");
        const removed = await removeEntries(systemCrontab(), o.all ? null : names);
        const missing = names.filter((n) => !removed.some((e) => e.name === n));
        for (const e of removed) console.log(`removed ${e.name}`);
        if (missing.length) {
          console.error(`pctcp: no entry named ${missing.join(", ")}`);
          return 1;
        }
        if (!removed.length) console.log("no pctcp entries in the crontab");
      })
    );
  return cmd;
}
