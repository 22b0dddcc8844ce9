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
import { encodeSocksUser } from "../util/socks_user.ts";
import { splitHostPort } from "../util/host_port.ts";

export { splitHostPort } from "../util/host_port.ts";

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

/**
 * The default per-fetch timeout, ms: OnionPerf's (its TGen model gives each stream
 * `timeout="270 seconds"`, torproject/onionperf onionperf/model.py). A schedule never shortens
 * it: a fetch slower than its interval runs on and the overrun policy decides what follows.
 */
export const DEFAULT_TIMEOUT_MS = 270_000;

/** Tor's MaxCircuitDirtiness default (10 minutes): an arm's circuit is used this long. */
export const DEFAULT_CIRCUIT_AGE_S = 600;

/**
 * What a worker does when a fetch runs past the start of its next slot (interval schedules):
 * `late` starts the next fetch as soon as this one ends (the slot is `interval` after the
 * previous actual start, as OnionPerf's TGen model waits for both the pause and the stream)
 * and records the slip; `skip` keeps a fixed grid and drops the slots that passed, counted.
 */
export type OverrunPolicy = "late" | "skip";

/** One arm of a comparison: a name and the relays its circuits go through, guard first. */
export interface Arm {
  /** Name written to each record's `arm`. */
  name: string;
  /** Relays (nicknames or fingerprints), guard first. */
  path: string[];
}

/** How fetches are spread over arms: round robin, or a seeded random order in each block. */
export type ArmOrder = "round-robin" | "blocks";

/** Options of a run. */
export interface RunOptions {
  /** SOCKS5 proxy, HOST:PORT. */
  socks: string;
  /** Workloads; each gets `concurrency` workers. */
  workloads: Workload[];
  /** Fetches per worker (default 1 when no duration). */
  count?: number;
  /** Stop starting fetches after this many seconds; fetches under way then have `graceS`. */
  durationS?: number;
  /** Seconds fetches under way at the end of `durationS` may run on before they are stopped
   * and recorded `interrupted` (default: no limit, each runs to its end or its timeout). */
  graceS?: number;
  /** When the proxy refuses connections: the first back-off pause (doubling after each
   * refusal, at most 30 s) and the refusals in a row after which the run stops as
   * {@link ProxyDownError} (default 500 ms, 5: about 7.5 s of trying). */
  proxyDown?: { firstDelayMs: number; attempts: number };
  /** Seconds between the starts of a worker's fetches (0: back to back). */
  intervalS?: number;
  /** Seconds each worker pauses after a fetch ends (a person reading the page); a workload's
   * own `thinkS` wins. Not together with `intervalS`. */
  thinkS?: number;
  /** Jitter as a fraction of the interval and think time (0.2 = ±20 %). */
  jitter?: number;
  /** Workers per workload. */
  concurrency?: number;
  /** Per-fetch timeout in ms (default {@link DEFAULT_TIMEOUT_MS}, whatever the interval). */
  timeoutMs?: number;
  /** What follows a fetch that ran past its slot (default "late"). */
  overrun?: OverrunPolicy;
  /** Arms: each fetch goes through one of them, interleaved per worker; records say which. */
  arms?: Arm[];
  /** Order of arms within a worker's fetches (default "blocks": seeded random per block). */
  armOrder?: ArmOrder;
  /** A fresh circuit per arm after this many seconds (default {@link DEFAULT_CIRCUIT_AGE_S});
   * also after a failed fetch. */
  circuitAgeS?: number;
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
  /** HTTP client of every fetch (default raw; see fetch.ts and clients.ts). */
  client?: "raw" | "undici" | "node";
  /** Called after each record is written. */
  onRecord?: (record: MeasureRecord) => void;
  /** Told what the run does on its own (e.g. backing off while the proxy refuses). */
  onNotice?: (message: string) => void;
  /** Aborts the run: nothing more starts and fetches under way stop at once, recorded as
   * `interrupted` (the signal's reason in their `error`). */
  signal?: AbortSignal;
  /**
   * Once aborted, no fetch starts; fetches under way run to their end or their timeout and
   * are recorded as usual (an experiment that has its samples ends so, without cutting its
   * slowest fetches short, which would bias the percentiles low).
   */
  finish?: AbortSignal;
}

/** Counts of one arm. */
export interface ArmCounts {
  /** Fetches. */
  total: number;
  /** Successful fetches. */
  ok: number;
  /** Failed fetches (any error class). */
  failed: number;
  /** Circuits used (fresh ones counted when made). */
  circuits: number;
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
  /** Fetches that failed (not counting interrupted ones). */
  failed: number;
  /** Fetches stopped under way because the run was stopped or its duration ended. */
  interrupted: number;
  /** Fetches that started late because the one before ran past their slot (policy late). */
  late: number;
  /** Slots dropped because a fetch ran past them (policy skip). */
  skipped: number;
  /** Per arm, when the run has arms. */
  arms?: Record<string, ArmCounts>;
}

/** The run stopped because the SOCKS proxy refused every connection for a while. */
export class ProxyDownError extends Error {
  /** Error name. */
  override name = "ProxyDownError";
  /** What the run did before it stopped (its records are written). */
  readonly summary: RunSummary;
  /** The error, and the run's summary up to it. */
  constructor(message: string, summary: RunSummary) {
    super(message);
    this.summary = summary;
  }
}

/** The SOCKS user name that pins an arm's circuit number `n` (our client and
 * {@link PinnedCircuits} read `pctcp-path=`; the rest isolates). */
export function armSocksUser(arm: Arm, n: number, rest: string): string {
  return encodeSocksUser({ path: arm.path, arm: arm.name, circuit: n, rest });
}

/** The arm of each of a worker's slots: round robin from `offset`, or blocks of one fetch
 * per arm in a random order from `random`. Returns the arm index and block number of slot i. */
export function armSlot(
  i: number,
  arms: number,
  order: ArmOrder,
  offset: number,
  blockOrder: number[][],
  random: () => number,
): { arm: number; block: number } {
  const block = Math.floor(i / arms);
  if (order === "round-robin") return { arm: (i + offset) % arms, block };
  while (blockOrder.length <= block) {
    const perm = Array.from({ length: arms }, (_, k) => k);
    for (let k = arms - 1; k > 0; k--) {
      const j = Math.floor(random() * (k + 1));
      [perm[k], perm[j]] = [perm[j]!, perm[k]!];
    }
    blockOrder.push(perm);
  }
  return { arm: blockOrder[block]![i % arms]!, block };
}

/**
 * A run id from the time to the millisecond and a random suffix, r-YYYYMMDD-HHMMSS.mmm-xxxxxx,
 * so two runs started in the same millisecond (cron on two machines merged, two workers) still
 * differ; ids sort by start time.
 */
export function runId(d = new Date(), random: () => number = Math.random): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const suffix = Math.floor(random() * 2 ** 24).toString(16).padStart(6, "0");
  return `r-${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${
    p(d.getUTCHours())
  }${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}-${suffix}`;
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
    while (next < subs.length && !options.signal?.aborted) {
      const u = subs[next++]!;
      const r = await timedFetch(u, options);
      if (r.outcome !== "ok") failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, subs.length) }, worker));
  if (failed > 0 && options.signal?.aborted) {
    doc.outcome = "interrupted";
    doc.error = `stopped with ${failed} of ${subs.length} sub-resources unfinished: ${
      reasonText(options.signal.reason) ?? "aborted"
    }`;
  }
  return {
    doc,
    pageMs: Math.round((performance.now() - doc.startMono) * 1000) / 1000,
    count: subs.length,
    failed,
  };
}

function reasonText(reason: unknown): string | undefined {
  if (reason === undefined) return undefined;
  return typeof reason === "string" ? reason : (reason as Error)?.message ?? String(reason);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Wall-clock ISO time of a monotonic instant. */
function wallIso(mono: number): string {
  return new Date(performance.timeOrigin + mono).toISOString();
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Outcomes after which an arm's next fetch gets a fresh circuit (not the server's answers,
 * not a stopped run). */
const CIRCUIT_SUSPECT = (outcome: string) =>
  outcome !== "ok" && outcome !== "http" && outcome !== "interrupted";

/** The longest back-off pause while the proxy refuses, ms. */
const MAX_BACKOFF_MS = 30_000;

/**
 * Runs the schedule; writes records to `options.out`, run settings to `out.runs.jsonl`.
 *
 * Each worker runs its fetches one after another. With an interval, fetch k+1 is scheduled
 * `interval` after fetch k started; a fetch is never cut short by the schedule (only by the
 * timeout), and when it runs past the next slot the overrun policy decides. With think time,
 * the next fetch is scheduled a pause after this one ended. Records carry `scheduled_start`
 * and `slip_ms` (actual − scheduled start) beside the actual `start`.
 */
export async function runMeasurement(options: RunOptions): Promise<RunSummary> {
  const [host, portText] = splitHostPort(options.socks);
  const run = options.run ?? runId();
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const intervalMs = (options.intervalS ?? 0) * 1000;
  if (intervalMs > 0 && (options.thinkS ?? 0) > 0) {
    throw new RangeError(
      "give an interval (start to start) or a think time (end to start), not both",
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const overrun = options.overrun ?? "late";
  const jitter = options.jitter ?? 0;
  const arms = options.arms ?? [];
  if (arms.length === 1) throw new RangeError("arms compare: give at least two");
  if (new Set(arms.map((a) => a.name)).size !== arms.length) {
    throw new RangeError("arm names must differ");
  }
  const armOrder = options.armOrder ?? "blocks";
  const circuitAgeMs = (options.circuitAgeS ?? DEFAULT_CIRCUIT_AGE_S) * 1000;
  const writer = await RecordWriter.open(options.out);
  const summary: RunSummary = {
    run,
    out: options.out,
    total: 0,
    ok: 0,
    failed: 0,
    interrupted: 0,
    late: 0,
    skipped: 0,
  };
  // One stop for everything under way: the caller's signal, or the end of the grace period.
  const stopAll = new AbortController();
  const onCallerAbort = () =>
    stopAll.abort(reasonText(options.signal?.reason) ?? "the run was stopped");
  if (options.signal?.aborted) onCallerAbort();
  else options.signal?.addEventListener("abort", onCallerAbort, { once: true });
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  // Back-off while the proxy refuses: refusals of fetches started after the last counted one.
  const down = options.proxyDown ?? { firstDelayMs: 500, attempts: 5 };
  const proxy = { refusals: 0, lastCounted: -Infinity, nextTry: 0, firstAt: 0 };
  let proxyDown: string | undefined;
  if (arms.length) {
    summary.arms = Object.fromEntries(
      arms.map((a) => [a.name, { total: 0, ok: 0, failed: 0, circuits: 0 }]),
    );
  }
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
          onNotice: undefined,
          signal: undefined,
          timeoutMs,
          overrun,
          ...(arms.length ? { armOrder, circuitAgeS: circuitAgeMs / 1000 } : {}),
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
    if (deadline !== undefined && options.graceS !== undefined && Number.isFinite(options.graceS)) {
      graceTimer = setTimeout(
        () => stopAll.abort(`the run's duration (${options.durationS} s) ended`),
        Math.max(0, deadline + options.graceS * 1000 - performance.now()),
      );
    }
    const stopped = () => stopAll.signal.aborted || !!options.finish?.aborted;
    const waitSignal = options.finish
      ? AbortSignal.any([stopAll.signal, options.finish])
      : stopAll.signal;
    let nextId = 1;
    const workers: Promise<void>[] = [];
    let w = 0;
    for (const wl of options.workloads) {
      for (let c = 0; c < (wl.concurrency ?? options.concurrency ?? 1); c++) {
        const worker = w++;
        // Each worker draws from its own seeded stream, so its order does not depend on timing.
        const random = seededRandom((seed + Math.imul(worker, 0x9e3779b1)) >>> 0);
        const isolation = options.isolate === false ? run : `${run}-${wl.label}-${c}`;
        const user = options.isolate === false
          ? options.socksUserPrefix
          : `${options.socksUserPrefix ?? ""}${isolation}`;
        const thinkMs = (wl.thinkS ?? options.thinkS ?? 0) * 1000;
        const jittered = (ms: number) => ms * (1 + jitter * (2 * random() - 1));
        const blockOrder: number[][] = [];
        const armState = new Map<
          string,
          { n: number; since: number; reason: string; bad: boolean }
        >();
        workers.push((async () => {
          let planned = performance.now();
          let startAt = planned;
          let late = false;
          let skippedBefore = 0;
          for (let i = 0; i < count; i++) {
            if (stopped()) return;
            startAt = Math.max(startAt, proxy.nextTry);
            if (deadline !== undefined && startAt >= deadline) return;
            const wait = startAt - performance.now();
            if (wait > 0) await sleep(wait, waitSignal);
            if (stopped()) return;
            const url = wl.urls[(i + worker) % wl.urls.length]!;
            let armFields: Partial<MeasureRecord> = {};
            let socksUser = user;
            let arm: Arm | undefined;
            if (arms.length) {
              const slot = armSlot(i, arms.length, armOrder, worker, blockOrder, random);
              arm = arms[slot.arm]!;
              const now = performance.now();
              let st = armState.get(arm.name);
              if (!st) st = { n: 1, since: now, reason: "first", bad: false };
              else if (st.bad) st = { n: st.n + 1, since: now, reason: "failure", bad: false };
              else if (now - st.since >= circuitAgeMs) {
                st = { n: st.n + 1, since: now, reason: "age", bad: false };
              }
              const fresh = armState.get(arm.name) !== st;
              if (fresh) summary.arms![arm.name]!.circuits++;
              armState.set(arm.name, st);
              socksUser = armSocksUser(arm, st.n, isolation);
              armFields = {
                arm: arm.name,
                arm_path: arm.path,
                arm_circuit: {
                  n: st.n,
                  reason: st.reason,
                  since: wallIso(st.since),
                  ...(fresh ? { first: true } : {}),
                },
                arm_block: slot.block,
                worker,
              };
            }
            const fo: FetchOptions = {
              ...(options.caCerts ? { caCerts: options.caCerts } : {}),
              socksHost: host,
              socksPort: Number(portText),
              timeoutMs,
              ...(socksUser ? { socksUser } : {}),
              ...(options.client ? { client: options.client } : {}),
              signal: stopAll.signal,
            };
            const meta = {
              run,
              id: nextId++,
              label: wl.label,
              transport: options.transport ?? null,
              url,
            };
            let rec: MeasureRecord;
            let startMono: number;
            if (wl.kind === "page") {
              const p = await fetchPage(url, fo);
              startMono = p.doc.startMono;
              rec = toRecord(p.doc, meta);
              rec.page_ms = p.pageMs;
              rec.resources = { count: p.count, failed: p.failed };
              if (p.doc.outcome === "ok" && p.failed > 0) {
                rec.outcome = "http";
                rec.error = `${p.failed} of ${p.count} sub-resources failed`;
              }
            } else {
              const r = await timedFetch(url, fo);
              startMono = r.startMono;
              rec = toRecord(r, meta);
            }
            const end = performance.now();
            rec.timeout_ms = timeoutMs;
            rec.scheduled_start = wallIso(planned);
            rec.slip_ms = round3(startMono - planned);
            rec.late = late;
            if (skippedBefore) rec.skipped_slots = skippedBefore;
            Object.assign(rec, armFields);
            if (options.circuitLookup && rec.source_port !== null) {
              rec.circuit = (await options.circuitLookup(rec.source_port)) ?? null;
            }
            if (rec.circuit?.error && rec.outcome !== "ok" && rec.outcome !== "timeout") {
              // The proxy could not build the circuit: say so rather than "socks".
              rec.outcome = "circuit";
              rec.error = `${rec.error}; ${rec.circuit.error}`;
            }
            await writer.append(rec);
            summary.total++;
            if (late) summary.late++;
            summary.skipped += skippedBefore;
            if (rec.outcome === "ok") {
              summary.ok++;
              await Deno.writeTextFile(`${options.out}.fresh`, `${new Date().toISOString()}\n`);
            } else if (rec.outcome === "interrupted") summary.interrupted++;
            else summary.failed++;
            if (rec.outcome === "proxy-connect") {
              if (startMono >= proxy.lastCounted) {
                const now = performance.now();
                if (proxy.refusals === 0) proxy.firstAt = now;
                proxy.refusals++;
                proxy.lastCounted = now;
                proxy.nextTry = now +
                  Math.min(MAX_BACKOFF_MS, down.firstDelayMs * 2 ** (proxy.refusals - 1));
                if (proxy.refusals < down.attempts && i < count - 1) {
                  options.onNotice?.(
                    `the SOCKS proxy ${options.socks} refused (${proxy.refusals} in a row); next try in ${
                      ((proxy.nextTry - now) / 1000).toFixed(1)
                    } s`,
                  );
                }
                if (proxy.refusals >= down.attempts && !proxyDown) {
                  proxyDown =
                    `the SOCKS proxy ${options.socks} is down: it refused ${proxy.refusals} connections in a row over ${
                      ((now - proxy.firstAt) / 1000).toFixed(1)
                    } s (${rec.error}); is it running?`;
                  stopAll.abort(proxyDown);
                }
              }
            } else if (rec.outcome !== "interrupted") {
              proxy.refusals = 0;
              proxy.nextTry = 0;
            }
            if (arm) {
              const a = summary.arms![arm.name]!;
              a.total++;
              if (rec.outcome === "ok") a.ok++;
              else if (rec.outcome !== "interrupted") a.failed++;
              if (CIRCUIT_SUSPECT(rec.outcome)) armState.get(arm.name)!.bad = true;
            }
            options.onRecord?.(rec);
            // The next slot.
            late = false;
            skippedBefore = 0;
            if (thinkMs > 0) {
              planned = end + jittered(thinkMs);
            } else if (intervalMs > 0) {
              if (overrun === "skip") {
                planned += jittered(intervalMs);
                while (planned < end) {
                  skippedBefore++;
                  planned += jittered(intervalMs);
                }
              } else {
                planned = startMono + jittered(intervalMs);
                late = planned < end;
              }
            } else planned = end;
            startAt = Math.max(planned, end);
          }
        })());
      }
    }
    await Promise.all(workers);
  } finally {
    clearTimeout(graceTimer);
    options.signal?.removeEventListener("abort", onCallerAbort);
    await writer.close();
  }
  if (proxyDown) throw new ProxyDownError(proxyDown, summary);
  return summary;
}
