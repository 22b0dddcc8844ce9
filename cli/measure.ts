/**
 * `pctcp measure`: timed fetches through any SOCKS5 proxy, appended as JSONL records.
 * @module
 */

import { Command, Option } from "commander";
import {
  EXIT_FAILURE,
  EXIT_INTERRUPTED,
  EXIT_PARTIAL,
  EXIT_TERMINATED,
  millis,
  nonNegative,
  positiveInt,
  run,
  seconds,
  UsageError,
} from "./_common.ts";
import {
  type Arm,
  type ArmOrder,
  armSocksUser,
  DEFAULT_CIRCUIT_AGE_S,
  DEFAULT_TIMEOUT_MS,
  type OverrunPolicy,
  ProxyDownError,
  runId,
  runMeasurement,
  splitHostPort,
  type Workload,
} from "../lib/measure/run.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { circuitLookupFromLog } from "../lib/measure/streams.ts";
import { PinnedCircuits } from "../lib/tor/pinned.ts";
import { expandDatePattern } from "../lib/schedule/date_pattern.ts";
import { Progress } from "../lib/util/progress.ts";
import { encodeSocksUser } from "../lib/util/socks_user.ts";

interface MeasureFlags {
  socks: string;
  url?: string[];
  page?: string[];
  label: string;
  count?: number;
  duration?: number;
  interval: number;
  think?: number;
  overrun: OverrunPolicy;
  jitter: number;
  concurrency: number;
  timeout?: number;
  grace?: number;
  out: string;
  seed?: number;
  transport?: string;
  streams?: string;
  isolate: boolean;
  quiet?: boolean;
  path?: string;
  control?: string;
  controlPassword?: string;
  controlCookie?: string;
  caCert?: string[];
  arm?: string[];
  order: ArmOrder;
  circuitAge: number;
  guard?: string;
  exit?: string;
  client: "raw" | "undici" | "node";
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function relayList(s: string): string[] {
  return s.split(",").map((x) => x.trim()).filter(Boolean);
}

/** Parses `--arm NAME=R1,R2,R3` (or `NAME=MIDDLE` with --guard/--exit); usage errors. */
export function parseArms(specs: string[], guard?: string, exit?: string): Arm[] {
  const arms = specs.map((spec) => {
    const m = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--arm expects NAME=RELAY,RELAY,…, got ${JSON.stringify(spec)}`);
    const path = [...(guard ? [guard] : []), ...relayList(m[2]!), ...(exit ? [exit] : [])];
    if (path.length < 3) {
      throw new UsageError(
        `--arm ${
          m[1]
        }: ${path.length} relay(s); a circuit needs guard, middle and exit (give --guard and --exit, or whole paths)`,
      );
    }
    return { name: m[1]!, path };
  });
  if (arms.length === 1) throw new UsageError("--arm: give at least two arms to compare");
  const names = new Set(arms.map((a) => a.name));
  if (names.size !== arms.length) throw new UsageError("--arm: arm names must differ");
  return arms;
}

/** The output file, with `{run}` filled in (date fields were expanded before, by
 * `expandDatePattern`); its folder is made; a folder gets `measure-RUN.jsonl`. */
export async function resolveOut(out: string, run: string): Promise<string> {
  out = out.replaceAll("{run}", run);
  const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
  if (parent && !out.endsWith("/")) await Deno.mkdir(parent, { recursive: true });
  let isDir = out.endsWith("/");
  try {
    isDir ||= (await Deno.stat(out)).isDirectory;
  } catch { /* a new file */ }
  if (isDir) {
    await Deno.mkdir(out, { recursive: true });
    return `${out.replace(/\/$/, "")}/measure-${run}.jsonl`;
  }
  return out;
}

/** Builds the `measure` command. */
export function measureCommand(): Command {
  return new Command("measure")
    .description("fetch URLs through a SOCKS5 proxy and append one timed record per fetch (JSONL)")
    .requiredOption("--socks <host:port>", "SOCKS5 proxy (ours, or a Tor client's SocksPort)")
    .option("--url <url...>", "URL(s) to fetch as files (e.g. http://127.0.0.1:8080/bytes/5MiB)")
    .option("--page <url...>", "URL(s) of web pages: the document and its sub-resources")
    .requiredOption(
      "--out <file|dir>",
      "JSONL file to append to, or a folder; %Y %m %d %H %M %S expand to the start time, {run} to the run id",
    )
    .option("--label <name>", "label of the records", "measure")
    .option("--count <n>", "fetches per worker", positiveInt)
    .option(
      "--duration <time>",
      "stop starting fetches after this long (90s, 5m, 1h; a bare number is seconds); fetches under way then have --grace",
      seconds,
    )
    .option(
      "--grace <time>",
      "with --duration: how long fetches under way may run on before they are stopped and recorded as interrupted",
      seconds,
      0,
    )
    .option(
      "--interval <time>",
      "time between a worker's fetch starts, a monitor's schedule (e.g. 5m; bare: seconds; 0: back to back)",
      seconds,
      0,
    )
    .option(
      "--think <time>",
      "pause of a worker after a fetch ends, a person reading the page (bare: seconds; not with --interval)",
      seconds,
    )
    .addOption(
      new Option(
        "--overrun <policy>",
        "a fetch ran past its next slot: late = start the next at once and record the slip; skip = drop missed slots (counted)",
      ).choices(["late", "skip"]).default("late"),
    )
    .option(
      "--jitter <fraction>",
      "interval or think-time jitter, e.g. 0.2 for ±20 %",
      nonNegative,
      0,
    )
    .option("--concurrency <n>", "parallel workers per workload", positiveInt, 1)
    .option(
      "--timeout <time>",
      `per-fetch timeout (e.g. 270s; a bare number is ms, as before units; default ${
        DEFAULT_TIMEOUT_MS / 1000
      }s, OnionPerf's; never shortened by the schedule)`,
      millis,
    )
    .option("--seed <n>", "seed of the jitter", positiveInt)
    .option("--transport <name>", "transport label for the records (tor, pctcp, …)")
    .option(
      "--streams <file>",
      "our client's stream log (joins records to circuits by source port)",
    )
    .option("--no-isolate", "share circuits between workers (default: one SOCKS user per worker)")
    .option(
      "--path <r1,r2,r3>",
      "fetch through these relays (our client: nicknames; with --control: fingerprints or nicknames)",
    )
    .option(
      "--control <host:port>",
      "a Tor client's ControlPort: pin --path with EXTENDCIRCUIT/ATTACHSTREAM",
    )
    .option("--control-password <pw>", "control port password (default: SAFECOOKIE or COOKIE)")
    .option("--control-cookie <file>", "control auth cookie file (default: from PROTOCOLINFO)")
    .option(
      "--arm <name=path>",
      "an arm to compare: NAME=R1,R2,R3 (nicknames or fingerprints; repeat, at least two); fetches alternate between arms",
      collect,
    )
    .option("--guard <relay>", "with --arm: every arm's first hop (arms then name the rest)")
    .option("--exit <relay>", "with --arm: every arm's last hop")
    .addOption(
      new Option(
        "--order <order>",
        "with --arm: round-robin, or blocks (each block one fetch per arm in a seeded random order)",
      ).choices(["round-robin", "blocks"]).default("blocks"),
    )
    .option(
      "--circuit-age <time>",
      `with --arm: a fresh circuit per arm after this long (bare: seconds; default ${DEFAULT_CIRCUIT_AGE_S}s, Tor's MaxCircuitDirtiness; also after a failure)`,
      seconds,
      DEFAULT_CIRCUIT_AGE_S,
    )
    .option("--ca-cert <pem...>", "extra trusted CA certificates for HTTPS (e.g. a test server's)")
    .addOption(
      new Option("--client <c>", "HTTP client: raw (socket-level timing), undici, node")
        .choices(["raw", "undici", "node"]).default("raw"),
    )
    .addOption(new Option("--quiet", "no progress: print only errors and the final summary"))
    .addHelpText(
      "after",
      `
Examples:
  # 10 timed downloads of 1 MiB through a local Tor client, one JSON record per line
  pctcp measure --socks 127.0.0.1:9050 --url http://127.0.0.1:8080/bytes/1MiB --count 10 --out m.jsonl

  # a monitor: one 5 MiB fetch every 5 minutes for an hour, into a daily file (UTC day)
  pctcp measure --socks 127.0.0.1:9050 --url http://HOST:8080/bytes/5MiB --interval 5m \\
    --duration 1h --timeout 270s --out 'data/%Y-%m-%d.jsonl'

Output: records are appended to --out as each fetch ends; the run's summary is the one JSON
line on stdout; progress and errors go to stderr.
Exit: 0 all fetches ok; 3 some failed; 1 none succeeded, the proxy is down, or an error;
2 usage error; 130 after Ctrl-C (fetches under way are recorded as interrupted; a second
Ctrl-C exits at once).`,
    )
    .action((o: MeasureFlags) =>
      run(async () => {
        try {
          splitHostPort(o.socks);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const workloads: Workload[] = [];
        if (o.url?.length) workloads.push({ label: o.label, urls: o.url, kind: "file" });
        if (o.page?.length) workloads.push({ label: o.label, urls: o.page, kind: "page" });
        if (!workloads.length) throw new UsageError("give at least one --url or --page");
        for (const u of [...(o.url ?? []), ...(o.page ?? [])]) {
          if (!URL.canParse(u)) throw new UsageError(`not a URL: ${u}`);
        }
        const runName = runId();
        let outName: string; // %Y-%m-%d etc. expanded now: a cron entry writes daily files
        try {
          outName = expandDatePattern(o.out);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const out = await resolveOut(outName, runName);
        if (o.interval > 0 && o.think !== undefined && o.think > 0) {
          throw new UsageError(
            "--interval (start to start) and --think (end to start) exclude each other",
          );
        }
        if (o.arm?.length && o.path) throw new UsageError("--arm and --path exclude each other");
        if ((o.guard || o.exit) && !o.arm?.length) {
          throw new UsageError("--guard and --exit go with --arm");
        }
        const arms = o.arm?.length ? parseArms(o.arm, o.guard, o.exit) : undefined;
        for (const a of arms ?? []) {
          const longest = armSocksUser(a, 99999, `${runName}-${o.label}-${o.concurrency}`);
          if (new TextEncoder().encode(longest).length > 255) {
            throw new UsageError(
              `--arm ${a.name}: the path is too long for a SOCKS user name (255 bytes); use nicknames or fewer hops`,
            );
          }
        }
        if (o.control && !o.path && !arms) {
          throw new UsageError("--control needs --path or --arm (the relays to pin)");
        }
        if (o.streams && !(await Deno.stat(o.streams).then((st) => st.isFile, () => false))) {
          throw new UsageError(
            `--streams ${o.streams}: no such file (network status --json names the client's stream log)`,
          );
        }
        const path = o.path ? relayList(o.path) : undefined;
        let pinned: PinnedCircuits | undefined;
        if (o.control && (path || arms)) {
          pinned = await PinnedCircuits.open(o.control, path ?? null, {
            ...(o.controlPassword !== undefined ? { password: o.controlPassword } : {}),
            ...(o.controlCookie ? { cookieFile: o.controlCookie } : {}),
          });
        }
        const lookup = pinned
          ? (port: number) => pinned!.info(port)
          : o.streams
          ? circuitLookupFromLog(o.streams)
          : undefined;
        const times: number[] = [];
        let done = 0;
        const armTimes = new Map<string, number[]>();
        const workers = workloads.length * o.concurrency;
        const progress = o.quiet ? undefined : new Progress({
          unit: "fetches",
          ...(o.count ? { total: o.count * workers } : {}),
          ...(o.duration !== undefined && !o.count
            ? { endsAt: Date.now() + o.duration * 1000 }
            : {}),
        });
        // First signal: stop scheduling, stop fetches under way (recorded as interrupted),
        // write, exit 130 (143 for SIGTERM). A second one: exit at once.
        const ctl = new AbortController();
        let signalled: "SIGINT" | "SIGTERM" | undefined;
        const onSignal = (sig: "SIGINT" | "SIGTERM") => () => {
          if (signalled) Deno.exit(sig === "SIGINT" ? EXIT_INTERRUPTED : EXIT_TERMINATED);
          signalled = sig;
          progress?.say(
            `pctcp: ${sig}: stopping; fetches under way are recorded as interrupted (again to quit at once)`,
          );
          ctl.abort(`stopped by ${sig}`);
        };
        const onInt = onSignal("SIGINT"), onTerm = onSignal("SIGTERM");
        Deno.addSignalListener("SIGINT", onInt);
        Deno.addSignalListener("SIGTERM", onTerm);
        let summary;
        let downError: ProxyDownError | undefined;
        try {
          const caCerts = o.caCert
            ? await Promise.all(o.caCert.map((f) => Deno.readTextFile(f)))
            : undefined;
          summary = await runMeasurement({
            ...(caCerts ? { caCerts } : {}),
            socks: o.socks,
            workloads,
            client: o.client,
            ...(o.count ? { count: o.count } : {}),
            ...(o.duration !== undefined ? { durationS: o.duration, graceS: o.grace ?? 0 } : {}),
            intervalS: o.interval,
            ...(o.think !== undefined ? { thinkS: o.think } : {}),
            overrun: o.overrun,
            ...(arms ? { arms, armOrder: o.order, circuitAgeS: o.circuitAge } : {}),
            jitter: o.jitter,
            concurrency: o.concurrency,
            ...(o.timeout ? { timeoutMs: o.timeout } : {}),
            ...(o.seed ? { seed: o.seed } : {}),
            transport: o.transport ?? null,
            isolate: o.isolate,
            run: runName,
            out,
            signal: ctl.signal,
            ...(lookup ? { circuitLookup: lookup } : {}),
            ...(path && !pinned ? { socksUserPrefix: encodeSocksUser({ path }) } : {}),
            onNotice: (m: string) =>
              progress ? progress.say(`pctcp: ${m}`) : console.error(`pctcp: ${m}`),
            onRecord: (r: MeasureRecord) => {
              done++;
              if (r.outcome !== "ok") {
                const arm = r.arm ? ` [${r.arm}]` : "";
                const msg = `pctcp: fetch ${r.id}${arm} ${r.url}: ${r.outcome}: ${r.error}`;
                if (progress) progress.say(msg);
                else console.error(msg);
              } else if (r.phases_ms.last_byte !== undefined) {
                times.push(r.phases_ms.last_byte);
                if (r.arm) {
                  const t = armTimes.get(r.arm) ?? [];
                  t.push(r.phases_ms.last_byte);
                  armTimes.set(r.arm, t);
                }
              }
              if (progress) {
                const p50 = times.length ? percentile(times, 50).toFixed(1) : "-";
                const p90 = times.length ? percentile(times, 90).toFixed(1) : "-";
                const perArm = [...armTimes].map(([a, t]) => `${a} ${percentile(t, 50).toFixed(1)}`)
                  .join(", ");
                progress.update(
                  done,
                  `${times.length} ok; download p50 ${p50} ms, p90 ${p90} ms${
                    perArm ? ` (p50 by arm: ${perArm})` : ""
                  }`,
                );
              }
            },
          });
        } catch (e) {
          if (!(e instanceof ProxyDownError)) throw e;
          downError = e;
          summary = e.summary;
        } finally {
          await pinned?.close();
          Deno.removeSignalListener("SIGINT", onInt);
          Deno.removeSignalListener("SIGTERM", onTerm);
          progress?.done();
        }
        console.log(JSON.stringify(summary));
        if (downError) {
          console.error(`pctcp: ${downError.message}`);
          return EXIT_FAILURE;
        }
        if (signalled) return signalled === "SIGINT" ? EXIT_INTERRUPTED : EXIT_TERMINATED;
        if (summary.failed > 0 && summary.ok === 0) return EXIT_FAILURE;
        return summary.failed > 0 ? EXIT_PARTIAL : 0;
      })
    );
}
