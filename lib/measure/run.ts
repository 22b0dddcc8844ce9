/**
 * A measurement run: a schedule of fetches (bulk files, or web pages with their
 * sub-resources) through a SOCKS5 proxy, with a count or a duration, an interval with jitter
 * and concurrency. Each schedule worker runs its fetches one after another, so fetches of one
 * schedule never overlap. Records go to a {@link RecordWriter} as each fetch ends.
 * @module
 */

import { type FetchOptions, type FetchResult, timedFetch } from "./fetch.ts";
import { type MeasureRecord, RecordWriter, toRecord } from "./record.ts";
import { VERSION } from "../version.ts";
import { seededRandom } from "../util/random.ts";

/** What to fetch. */
export interface Workload {
  /** Label written to each record ("web", "bulk", …). */
  label: string;
  /** URLs, fetched in turn. */
  urls: string[];
  /** "file" (one fetch) or "page" (HTML document and its sub-resources). */
  kind?: "file" | "page";
  /** Seconds each worker waits after a fetch ends before the next (a user's think time). */
  thinkS?: number;
  /** Workers of this workload (default: the run's concurrency). */
  concurrency?: number;
}

/** Options of a run. */
export interface RunOptions {
  /** SOCKS5 proxy, HOST:PORT. */
  socks: string;
  /** Workloads; each gets `concurrency` workers. */
  workloads: Workload[];
  /** Fetches per worker (default 1 when no duration). */
  count?: number;
  /** Stop starting fetches after this many seconds. */
  durationS?: number;
  /** Seconds between the starts of a worker's fetches (0: back to back). */
  intervalS?: number;
  /** Jitter as a fraction of the interval and think time (0.2 = ±20 %). */
  jitter?: number;
  /** Workers per workload. */
  concurrency?: number;
  /** Per-fetch timeout in ms (must be shorter than the interval when one is set). */
  timeoutMs?: number;
  /** Transport label for the records (e.g. "tor", "pctcp"; null for an outside proxy). */
  transport?: string | null;
  /** Isolate each worker's streams with its own SOCKS user name (default true). */
  isolate?: boolean;
  /** Put before each worker's SOCKS user name, e.g. `pctcp-path=r1,r2,r3;` for our client. */
  socksUserPrefix?: string;
  /** Seed of the jitter and order. */
  seed?: number;
  /** Run id (default r-YYYYMMDD-HHMMSS). */
  run?: string;
  /** Output JSONL file. */
  out: string;
  /** Finds the circuit a stream used, by SOCKS source port (our client's stream log). */
  circuitLookup?: (
    sourcePort: number,
  ) => MeasureRecord["circuit"] | Promise<MeasureRecord["circuit"]>;
  /** Extra trusted CA certificates (PEM) for HTTPS. */
  caCerts?: string[];
  /** Called after each record is written. */
  onRecord?: (record: MeasureRecord) => void;
  /** Aborts the run (pending fetches finish or time out). */
  signal?: AbortSignal;
}

/** What a run did. */
export interface RunSummary {
  /** Run id. */
  run: string;
  /** The records file. */
  out: string;
  /** Fetches made. */
  total: number;
  /** Fetches that succeeded. */
  ok: number;
  /** Fetches that failed. */
  failed: number;
}

/** A run id from the time: r-YYYYMMDD-HHMMSS. */
export function runId(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `r-${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${
    p(d.getUTCHours())
  }${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

const SUBRESOURCE = /(?:src|href)\s*=\s*["']([^"'#]+)["']/gi;

/** Same-origin sub-resources of an HTML document (src= and stylesheet href=). */
export function subresources(html: string, base: string): string[] {
  const out = new Set<string>();
  const origin = new URL(base).origin;
  for (const m of html.matchAll(SUBRESOURCE)) {
    try {
      const u = new URL(m[1]!, base);
      if (u.origin === origin && !u.pathname.endsWith(".html")) out.add(u.href);
    } catch { /* not a URL */ }
  }
  return [...out];
}

/** Fetches a page as a browser would: the document, then its sub-resources over 6 connections. */
export async function fetchPage(
  url: string,
  options: FetchOptions,
): Promise<{ doc: FetchResult; pageMs: number; count: number; failed: number }> {
  const doc = await timedFetch(url, { ...options, keepBody: true });
  if (doc.outcome !== "ok" || !doc.body) {
    return { doc, pageMs: doc.phases.last_byte ?? 0, count: 0, failed: 0 };
  }
  const subs = subresources(new TextDecoder().decode(doc.body), url);
  delete doc.body;
  let failed = 0, next = 0;
  const worker = async () => {
    while (next < subs.length) {
      const u = subs[next++]!;
      const r = await timedFetch(u, options);
      if (r.outcome !== "ok") failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, subs.length) }, worker));
  return {
    doc,
    pageMs: Math.round((performance.now() - doc.startMono) * 1000) / 1000,
    count: subs.length,
    failed,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/** Runs the schedule; writes records to `options.out`, run settings to `out.runs.jsonl`. */
export async function runMeasurement(options: RunOptions): Promise<RunSummary> {
  const [host, portText] = splitHostPort(options.socks);
  const run = options.run ?? runId();
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const intervalMs = (options.intervalS ?? 0) * 1000;
  const timeoutMs = options.timeoutMs ??
    (intervalMs > 0 ? intervalMs * 0.9 : 60_000);
  if (intervalMs > 0 && timeoutMs >= intervalMs) {
    throw new RangeError(
      `the per-fetch timeout (${timeoutMs} ms) must be shorter than the interval (${intervalMs} ms)`,
    );
  }
  const writer = await RecordWriter.open(options.out);
  const summary: RunSummary = { run, out: options.out, total: 0, ok: 0, failed: 0 };
  try {
    const meta = await RecordWriter.open(`${options.out}.runs.jsonl`);
    try {
      await meta.append({
        type: "run",
        run,
        tool: "pctcp",
        version: VERSION,
        started: new Date().toISOString(),
        seed,
        settings: {
          ...options,
          circuitLookup: undefined,
          onRecord: undefined,
          signal: undefined,
          timeoutMs,
        },
        deno: Deno.version.deno,
        host: Deno.hostname(),
      });
    } finally {
      await meta.close();
    }
    const deadline = options.durationS !== undefined
      ? performance.now() + options.durationS * 1000
      : undefined;
    const count = options.count ?? (deadline === undefined ? 1 : Infinity);
    let nextId = 1;
    const workers: Promise<void>[] = [];
    let w = 0;
    for (const wl of options.workloads) {
      for (let c = 0; c < (wl.concurrency ?? options.concurrency ?? 1); c++) {
        const user = options.isolate === false
          ? options.socksUserPrefix
          : `${options.socksUserPrefix ?? ""}${run}-${wl.label}-${c}`;
        const offset = w++;
        workers.push((async () => {
          for (let i = 0; i < count; i++) {
            if (options.signal?.aborted) return;
            if (deadline !== undefined && performance.now() >= deadline) return;
            const t0 = performance.now();
            const url = wl.urls[(i + offset) % wl.urls.length]!;
            const fo: FetchOptions = {
              ...(options.caCerts ? { caCerts: options.caCerts } : {}),
              socksHost: host,
              socksPort: Number(portText),
              timeoutMs,
              ...(user ? { socksUser: user } : {}),
            };
            let rec: MeasureRecord;
            if (wl.kind === "page") {
              const p = await fetchPage(url, fo);
              rec = toRecord(p.doc, {
                run,
                id: nextId++,
                label: wl.label,
                transport: options.transport ?? null,
                url,
              });
              rec.page_ms = p.pageMs;
              rec.resources = { count: p.count, failed: p.failed };
              if (p.doc.outcome === "ok" && p.failed > 0) {
                rec.outcome = "http";
                rec.error = `${p.failed} of ${p.count} sub-resources failed`;
              }
            } else {
              const r = await timedFetch(url, fo);
              rec = toRecord(r, {
                run,
                id: nextId++,
                label: wl.label,
                transport: options.transport ?? null,
                url,
              });
            }
            if (options.circuitLookup && rec.source_port !== null) {
              rec.circuit = (await options.circuitLookup(rec.source_port)) ?? null;
            }
            await writer.append(rec);
            summary.total++;
            if (rec.outcome === "ok") {
              summary.ok++;
              await Deno.writeTextFile(`${options.out}.fresh`, `${new Date().toISOString()}\n`);
            } else summary.failed++;
            options.onRecord?.(rec);
            if (wl.thinkS) {
              await sleep(
                wl.thinkS * 1000 * (1 + (options.jitter ?? 0) * (2 * random() - 1)),
                options.signal,
              );
            } else if (intervalMs > 0) {
              const j = (options.jitter ?? 0) * (2 * random() - 1);
              const wait = intervalMs * (1 + j) - (performance.now() - t0);
              if (wait > 0) await sleep(wait, options.signal);
            }
          }
        })());
      }
    }
    await Promise.all(workers);
  } finally {
    await writer.close();
  }
  return summary;
}

/** Splits HOST:PORT (IPv6 in brackets); a SyntaxError on a bad value. */
export function splitHostPort(s: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) {
    throw new SyntaxError(`expected HOST:PORT, got ${JSON.stringify(s)}`);
  }
  return [(m[1] ?? m[2])!, Number(m[3])];
}
