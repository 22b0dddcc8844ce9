/**
 * Measurement records (DESIGN.md "Records"): one JSON object per fetch, appended and flushed
 * (fdatasync) as each fetch ends, so an interrupted run loses nothing already measured.
 * @module
 */

import type { FetchResult } from "./fetch.ts";

/** Record format version. */
export const RECORD_VERSION = 1;

/** One fetch, as written to JSONL. Field names are a contract: add, never rename. */
export interface MeasureRecord {
  /** Record format version ({@link RECORD_VERSION}). */
  v: number;
  /** Run id. */
  run: string;
  /** Fetch number within the run. */
  id: number;
  /** Workload label (e.g. "web", "bulk"). */
  label: string;
  /** Transport measured ("tor", "pctcp", …), when known. */
  transport: string | null;
  /** URL fetched. */
  url: string;
  /** Expected size in bytes, when known. */
  size: number | null;
  /** Start time, ISO 8601. */
  start: string;
  /** Phase times from the start of the stream, ms (first_byte = response time). */
  phases_ms: Partial<Record<"tcp" | "socks" | "request" | "first_byte" | "last_byte", number>>;
  /** Time at which each percentage of the body had arrived, ms. */
  progress_ms: Record<string, number>;
  /** Other named timestamps, ms. */
  marks_ms: Record<string, number>;
  /** Body bytes received. */
  bytes: number;
  /** HTTP status. */
  status: number | null;
  /** SHA-256 of the body, hex. */
  sha256: string | null;
  /** Whether the body matched the server's Repr-Digest. */
  sha256_ok: boolean | null;
  /** The circuit that carried the stream, when joined. */
  circuit: {
    id: string;
    path: string[];
    build_ms: number | null;
    security?: string;
    /** Why the proxy could not give a circuit (the fetch then failed with outcome `circuit`). */
    error?: string;
  } | null;
  /** SOCKS source port (joins the proxy's stream events). */
  source_port: number | null;
  /** "ok" or an error class. */
  outcome: string;
  /** What went wrong, when something did. */
  error: string | null;
  /** The HTTP client that fetched it: raw (our socket-level one), undici or node. */
  client?: string;
  /** Web pages: time until the document and every sub-resource were complete, ms. */
  page_ms?: number;
  /** Web pages: sub-resources fetched and how many failed. */
  resources?: { count: number; failed: number };
  /** The per-fetch timeout this fetch ran under, ms (timeouts are censored at it). */
  timeout_ms?: number;
  /** When the schedule meant this fetch to start (ISO 8601); `start` is when it did. */
  scheduled_start?: string;
  /** Actual minus scheduled start, ms (positive: late). */
  slip_ms?: number;
  /** True if the fetch before ran past this one's slot, so this one started late. */
  late?: boolean;
  /** Slots dropped before this fetch because the one before ran past them (overrun skip). */
  skipped_slots?: number;
  /** The arm this fetch went through (`measure --arm`). */
  arm?: string;
  /** The relays the arm asked for, guard first. */
  arm_path?: string[];
  /** Which of this worker's circuits for the arm: n-th, made because of "first", "age" or
   * "failure", since when, and `first` on the circuit's first fetch (whose time includes the
   * circuit's build, as a Tor client's first stream on a fresh circuit does). */
  arm_circuit?: { n: number; reason: string; since: string; first?: boolean };
  /** The block of the interleaved order (one fetch per arm per block and worker). */
  arm_block?: number;
  /** The schedule worker that made the fetch (0-based). */
  worker?: number;
}

/** Builds a record from a fetch result. */
export function toRecord(
  r: FetchResult,
  meta: { run: string; id: number; label: string; transport: string | null; url: string },
): MeasureRecord {
  return {
    v: RECORD_VERSION,
    run: meta.run,
    id: meta.id,
    label: meta.label,
    transport: meta.transport,
    url: meta.url,
    size: r.size ?? null,
    start: r.start,
    phases_ms: r.phases,
    progress_ms: r.progress,
    marks_ms: r.marks,
    bytes: r.bytes,
    status: r.status ?? null,
    sha256: r.sha256 ?? null,
    sha256_ok: r.sha256Ok ?? null,
    circuit: null,
    source_port: r.sourcePort ?? null,
    outcome: r.outcome,
    error: r.error,
    client: r.client ?? "raw",
  };
}

/** Raised when another run holds the output's lock. */
export class LockedError extends Error {
  /** Error name. */
  override name = "LockedError";
}

/** Options of {@link RecordWriter.open}. */
export interface WriterOptions {
  /** Told what was repaired or set aside before appending (default: `pctcp: …` on stderr). */
  notice?: (message: string) => void;
}

/**
 * Appends records to a JSONL file, each flushed to disk (fdatasync). While open it holds an
 * exclusive advisory lock (flock) on the file itself, which the kernel releases when the
 * process ends however it ends, so no stale lock outlives a crash. Before the first append, a
 * torn last line (a crash or a full disk mid-write) is repaired when it is a whole JSON value
 * that lacks only its newline, else moved to `FILE.torn` and cut off; either is said.
 */
export class RecordWriter {
  /** The file appended to. */
  readonly path: string;
  #file: Deno.FsFile;
  #enc = new TextEncoder();

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Opens `path` for appending; a LockedError if another writer holds it. */
  static async open(path: string, options: WriterOptions = {}): Promise<RecordWriter> {
    const file = await Deno.open(path, { read: true, append: true, create: true });
    try {
      if (!(await file.tryLock(true))) {
        throw new LockedError(`another run is writing ${path} (it holds the file's lock)`);
      }
      await repairTail(file, path, options.notice ?? ((m) => console.error(`pctcp: ${m}`)));
    } catch (e) {
      file.close();
      throw e;
    }
    return new RecordWriter(path, file);
  }

  /** Appends one record and flushes it to disk. */
  async append(record: unknown): Promise<void> {
    const line = this.#enc.encode(JSON.stringify(record) + "\n");
    let off = 0;
    while (off < line.length) off += await this.#file.write(line.subarray(off));
    await this.#file.syncData();
  }

  /** Closes the file, which releases the lock. */
  close(): Promise<void> {
    try {
      this.#file.close();
    } catch { /* closed */ }
    return Promise.resolve();
  }
}

/** The largest torn tail looked at; a longer unterminated tail is set aside whole. */
const TAIL_SCAN = 1 << 20;

async function repairTail(
  file: Deno.FsFile,
  path: string,
  notice: (message: string) => void,
): Promise<void> {
  const size = (await file.stat()).size;
  if (size === 0) return;
  const last = new Uint8Array(1);
  await file.seek(size - 1, Deno.SeekMode.Start);
  await file.read(last);
  if (last[0] === 0x0a) return;
  // Find the start of the unterminated last line.
  const scan = Math.min(size, TAIL_SCAN);
  const buf = new Uint8Array(scan);
  await file.seek(size - scan, Deno.SeekMode.Start);
  let got = 0;
  while (got < scan) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  const nl = buf.subarray(0, got).lastIndexOf(0x0a);
  const tailStart = nl >= 0 ? size - scan + nl + 1 : size - scan;
  const tail = buf.subarray(tailStart - (size - scan), got);
  const text = new TextDecoder().decode(tail);
  let whole = false;
  try {
    const v = JSON.parse(text);
    whole = typeof v === "object" && v !== null;
  } catch { /* torn */ }
  if (whole) {
    await file.write(Uint8Array.of(0x0a));
    await file.syncData();
    notice(`${path}: the last line lacked its newline; added it before appending`);
    return;
  }
  const aside = new Uint8Array(tail.length + 1);
  aside.set(tail);
  aside[tail.length] = 0x0a;
  await Deno.writeFile(`${path}.torn`, aside, { append: true });
  await file.truncate(tailStart);
  await file.syncData();
  notice(
    `${path}: set aside a torn last line (${tail.length} bytes, line cut off mid-write) in ${path}.torn before appending`,
  );
}
