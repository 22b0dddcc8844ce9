/**
 * What one timed fetch measures, shared by the three HTTP clients (raw.ts, clients.ts): the
 * options, the result, the body meter (progress deciles, OnionPerf's byte marks, SHA-256,
 * length and digest checks) and the stop of a fetch by its timeout or the run's abort signal.
 * @module
 */

import { createHash } from "node:crypto";
import type { Outcome } from "./outcome.ts";

export type { Outcome } from "./outcome.ts";

/** OnionPerf's byte marks for partial completion. */
export const BYTE_MARKS = [10240, 20480, 51200, 102400, 204800, 512000, 1048576, 2097152, 5242880];

/** The HTTP clients `pctcp measure --client` offers. */
export type HttpClient = "raw" | "undici" | "node";

/** Every client name, for option parsing. */
export const HTTP_CLIENTS: readonly HttpClient[] = ["raw", "undici", "node"];

/** The per-fetch timeout when none is given, ms. */
export const FETCH_TIMEOUT_MS = 60_000;

/** Options of one fetch. */
export interface FetchOptions {
  /** SOCKS5 proxy host. */
  socksHost: string;
  /** SOCKS5 proxy port. */
  socksPort: number;
  /** SOCKS user name (Tor and our client isolate streams by it); password is "x". */
  socksUser?: string;
  /** Give up after this many ms (the whole fetch). */
  timeoutMs?: number;
  /** Expected SHA-256 (hex) of the body; else taken from the response's headers. */
  expectedSha256?: string;
  /** Keep the body (web pages need it to find sub-resources). */
  keepBody?: boolean;
  /** Extra trusted CA certificates (PEM) for HTTPS, e.g. a test server's self-signed one. */
  caCerts?: string[];
  /**
   * The HTTP client: `raw` (default; our SOCKS5 + HTTP/1.1 on a Deno socket, every phase
   * stamped at the socket), `undici` (its SOCKS5 agent) or `node` (node:http(s) with
   * socks-proxy-agent); see clients.ts for what the other two cannot time.
   */
  client?: HttpClient;
  /** Stops the fetch at once; it ends with outcome `interrupted` (the signal's reason said). */
  signal?: AbortSignal;
}

/** What one fetch measured. */
export interface FetchResult {
  /** Wall-clock start, ISO 8601. */
  start: string;
  /** Monotonic start (performance.now()). */
  startMono: number;
  /** Phase times in ms from the start. */
  phases: Partial<Record<"tcp" | "socks" | "request" | "first_byte" | "last_byte", number>>;
  /** Time at which 10 %…100 % of the body had arrived, ms. */
  progress: Record<string, number>;
  /** Time at which OnionPerf's byte marks were passed, ms. */
  marks: Record<string, number>;
  /** Body bytes received. */
  bytes: number;
  /** Content-Length when given. */
  size?: number;
  /** HTTP status. */
  status?: number;
  /** Hex SHA-256 of the body. */
  sha256?: string;
  /** Whether it matched the expected hash (undefined when none known). */
  sha256Ok?: boolean;
  /** The local port of the connection to the proxy. */
  sourcePort?: number;
  /** Outcome class. */
  outcome: Outcome;
  /** What happened, when it failed. */
  error: string | null;
  /** The body (only with keepBody). */
  body?: Uint8Array;
  /** Response headers, lower-case names. */
  headers?: Record<string, string>;
  /** The HTTP client that fetched it (`raw`, `undici`, `node`). */
  client?: string;
}

/** A failure of a given outcome class, thrown inside a fetch and turned into its result. */
export class FetchFailure extends Error {
  /** The outcome it stands for. */
  readonly outcome: Outcome;
  /** A failure of class `outcome`. */
  constructor(outcome: Outcome, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

/**
 * A fresh result of one fetch by `client`, started now, and the clock of its phases (ms since
 * the start, to the microsecond).
 */
export function newFetchResult(client: HttpClient): { r: FetchResult; at: () => number } {
  const startMono = performance.now();
  const r: FetchResult = {
    start: new Date().toISOString(),
    startMono,
    phases: {},
    progress: {},
    marks: {},
    bytes: 0,
    outcome: "ok",
    error: null,
    client,
  };
  return { r, at: () => Math.round((performance.now() - startMono) * 1000) / 1000 };
}

/** Why a fetch was stopped from outside, if it was. */
export interface FetchStop {
  /** "timeout", "interrupted", or undefined while it runs. */
  readonly why: "timeout" | "interrupted" | undefined;
  /** Sets the result's outcome and error when the fetch was stopped; true if it was. */
  settle(r: FetchResult): boolean;
  /** Clears the timer and the signal listener. */
  clear(): void;
}

/** Arms the timeout and the abort signal of one fetch; `stop` is called once, on either. */
export function fetchStop(options: FetchOptions, stop: () => void): FetchStop {
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  let why: "timeout" | "interrupted" | undefined;
  const fire = (w: "timeout" | "interrupted") => {
    if (why) return;
    why = w;
    try {
      stop();
    } catch { /* already closed */ }
  };
  const timer = setTimeout(() => fire("timeout"), timeoutMs);
  const onAbort = () => fire("interrupted");
  const signal = options.signal;
  if (signal?.aborted) queueMicrotask(onAbort);
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    get why() {
      return why;
    },
    settle(r) {
      if (why === "timeout") {
        r.outcome = "timeout";
        r.error = `no answer within ${timeoutMs} ms`;
      } else if (why === "interrupted") {
        const reason = signal?.reason;
        r.outcome = "interrupted";
        r.error = `stopped after ${r.bytes} bytes: ${
          typeof reason === "string" ? reason : (reason as Error)?.message ?? "aborted"
        }`;
      }
      return why !== undefined;
    },
    clear() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** Counts body bytes into a result: progress deciles, byte marks, SHA-256, last byte. */
export class BodyMeter {
  #r: FetchResult;
  #at: () => number;
  #hash = createHash("sha256");
  #kept: Uint8Array[] | undefined;
  #decile = 0;
  #mark = 0;

  /** A meter filling `r` on the clock `at`; the body is kept with `keepBody`. */
  constructor(r: FetchResult, at: () => number, keepBody: boolean) {
    this.#r = r;
    this.#at = at;
    this.#kept = keepBody ? [] : undefined;
  }

  /** Counts one chunk of the body as it arrives. */
  take(b: Uint8Array): void {
    if (b.length === 0) return;
    const r = this.#r;
    this.#hash.update(b);
    this.#kept?.push(b.slice());
    r.bytes += b.length;
    const t = this.#at();
    r.phases.last_byte = t;
    if (r.size) {
      while (this.#decile < 10 && r.bytes * 100 >= (this.#decile + 1) * 10 * r.size) {
        r.progress[String((this.#decile + 1) * 10)] = t;
        this.#decile++;
      }
    }
    while (this.#mark < BYTE_MARKS.length && r.bytes >= BYTE_MARKS[this.#mark]!) {
      r.marks[String(BYTE_MARKS[this.#mark]!)] = t;
      this.#mark++;
    }
  }

  /**
   * Ends the body: the last byte is when the last body byte arrived (the headers' arrival for
   * an empty body); hash; length, digest and status checks (a {@link FetchFailure}).
   */
  finish(headers: Record<string, string>, expectedSha256?: string): void {
    const r = this.#r;
    r.phases.last_byte ??= r.phases.first_byte ?? this.#at();
    r.sha256 = this.#hash.digest("hex");
    if (this.#kept) {
      const all = new Uint8Array(r.bytes);
      let off = 0;
      for (const c of this.#kept) all.set(c, off), off += c.length;
      r.body = all;
    }
    if (r.size !== undefined && r.bytes < r.size) {
      throw new FetchFailure("short-read", `got ${r.bytes} of ${r.size} bytes`);
    }
    const expected = expectedSha256 ?? headers["x-content-sha256"] ??
      reprDigestHex(headers["repr-digest"]);
    if (expected) {
      r.sha256Ok = expected.toLowerCase() === r.sha256;
      if (!r.sha256Ok) {
        throw new FetchFailure("checksum", `SHA-256 ${r.sha256} differs from ${expected}`);
      }
    }
    if ((r.status ?? 0) >= 400) throw new FetchFailure("http", `HTTP status ${r.status}`);
  }
}

/** The hex SHA-256 of a `Repr-Digest: sha-256=:BASE64:` header (RFC 9530). */
export function reprDigestHex(v?: string): string | undefined {
  const m = v ? /sha-256=:([A-Za-z0-9+/=]+):/.exec(v) : null;
  if (!m) return undefined;
  return Array.from(atob(m[1]!), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

/** Response headers with lower-case names, repeated ones joined. */
export function lowerHeaders(
  h: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}
