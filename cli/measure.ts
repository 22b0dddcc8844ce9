/**
 * `pctcp measure`: timed fetches through any SOCKS5 proxy, appended as JSONL records.
 * @module
 */

import { Command, Option } from "commander";
import { nonNegative, positiveInt, run, UsageError } from "./_common.ts";
import { runId, runMeasurement, splitHostPort, type Workload } from "../lib/measure/run.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { circuitLookupFromLog } from "../lib/measure/streams.ts";
import { PinnedCircuits } from "../lib/tor/pinned.ts";
import { expandDatePattern } from "../lib/schedule/date_pattern.ts";

interface MeasureFlags {
  socks: string;
  url?: string[];
  page?: string[];
  label: string;
  count?: number;
  duration?: number;
  interval: number;
  jitter: number;
  concurrency: number;
  timeout?: number;
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
  client: "raw" | "undici" | "node";
}

async function resolveOut(out: string, run: string): Promise<string> {
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
      "JSONL file to append to, or a folder; %Y %m %d %H %M %S expand to the start time",
    )
    .option("--label <name>", "label of the records", "measure")
    .option("--count <n>", "fetches per worker", positiveInt)
    .option("--duration <s>", "stop starting fetches after this many seconds", nonNegative)
    .option(
      "--interval <s>",
      "seconds between a worker's fetch starts (0: back to back)",
      nonNegative,
      0,
    )
    .option("--jitter <fraction>", "interval jitter, e.g. 0.2 for ±20 %", nonNegative, 0)
    .option("--concurrency <n>", "parallel workers per workload", positiveInt, 1)
    .option("--timeout <ms>", "per-fetch timeout in ms", positiveInt)
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
    .option("--ca-cert <pem...>", "extra trusted CA certificates for HTTPS (e.g. a test server's)")
    .addOption(
      new Option("--client <c>", "HTTP client: raw (socket-level timing), undici, node")
        .choices(["raw", "undici", "node"]).default("raw"),
    )
    .addOption(new Option("--quiet", "print only errors and the final line"))
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
        if (o.control && !o.path) {
          throw new UsageError("--control needs --path (the relays to pin)");
        }
        const path = o.path?.split(",").map((x) => x.trim()).filter(Boolean);
        let pinned: PinnedCircuits | undefined;
        if (o.control && path) {
          pinned = await PinnedCircuits.open(o.control, path, {
            ...(o.controlPassword !== undefined ? { password: o.controlPassword } : {}),
            ...(o.controlCookie ? { cookieFile: o.controlCookie } : {}),
          });
        }
        const lookup = pinned
          ? (port: number) => pinned!.info(port)
          : o.streams
          ? circuitLookupFromLog(o.streams)
          : undefined;
        const tty = Deno.stderr.isTerminal() && !o.quiet;
        const times: number[] = [];
        const ctl = new AbortController();
        const onSig = () => ctl.abort();
        Deno.addSignalListener("SIGINT", onSig);
        Deno.addSignalListener("SIGTERM", onSig);
        let summary;
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
            ...(o.duration !== undefined ? { durationS: o.duration } : {}),
            intervalS: o.interval,
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
            ...(path && !pinned ? { socksUserPrefix: `pctcp-path=${path.join(",")};` } : {}),
            onRecord: (r: MeasureRecord) => {
              if (r.outcome !== "ok") {
                console.error(`pctcp: fetch ${r.id} ${r.url}: ${r.outcome}: ${r.error}`);
              } else if (r.phases_ms.last_byte !== undefined) times.push(r.phases_ms.last_byte);
              if (tty) {
                const p50 = times.length ? percentile(times, 50).toFixed(1) : "-";
                const p90 = times.length ? percentile(times, 90).toFixed(1) : "-";
                Deno.stderr.writeSync(new TextEncoder().encode(
                  `\r${r.id} fetches, ${times.length} ok; download time (from stream start) p50 ${p50} ms, p90 ${p90} ms   `,
                ));
              }
            },
          });
        } finally {
          await pinned?.close();
        }
        Deno.removeSignalListener("SIGINT", onSig);
        Deno.removeSignalListener("SIGTERM", onSig);
        if (tty) console.error("");
        console.log(JSON.stringify(summary));
        return summary.total > 0 && summary.ok === 0 ? 1 : 0;
      })
    );
}
