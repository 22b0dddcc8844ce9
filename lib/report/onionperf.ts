/**
 * OnionPerf analysis JSON (type "onionperf", version 3.1): export our records so Tor
 * Metrics tooling can read them, and import OnionPerf analyses so runs can be compared with
 * Tor Metrics' own. The export writes OnionPerf 3.1's layout (see toOnionPerf):
 * data.<nickname>.tgen.streams.<id> carries time_info (phases), byte_info (counts),
 * elapsed_seconds (payload_progress_recv by decile, payload_bytes_recv by byte mark, all
 * from the stream start as in our records); data.<nickname>.tor.circuits carries
 * buildtime_seconds and path. Only uncompressed JSON is read (decompress .xz first).
 *
 * The import also reads analyses as OnionPerf 3.1 itself writes them (its
 * schema/onionperf-3.1.json): phases from time_info's "usecs-to-…" microsecond strings,
 * "total-bytes-recv" and recvsize as digit strings. Every field it reads is checked, and a
 * bad one is refused with a SyntaxError naming its path.
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";

/** The analysis document. */
export interface OnionPerfAnalysis {
  type: "onionperf";
  version: string;
  data: Record<string, {
    measurement_ip: string;
    tgen: { streams: Record<string, OnionPerfStream> };
    tor: { circuits: Record<string, OnionPerfCircuit>; streams: Record<string, unknown> };
  }>;
}

/**
 * One tgen stream as OnionPerf 3.1 writes it: counts and sizes as digit strings, times in
 * `time_info` as microsecond strings ("-1": not reached), `elapsed_seconds` only for the
 * payload marks. Ours adds `stream_info.url|label|transport` and `circuit_id`, names the
 * schema does not use.
 */
export interface OnionPerfStream {
  byte_info: {
    "payload-bytes-recv": string;
    "payload-bytes-send": string;
    "payload-progress-recv": string;
    "payload-progress-send": string;
    "total-bytes-recv": string;
    "total-bytes-send": string;
  };
  elapsed_seconds: {
    payload_progress_recv: Record<string, number>;
    payload_bytes_recv: Record<string, number>;
  };
  is_complete: boolean;
  is_error: boolean;
  is_success: boolean;
  stream_id: string;
  stream_info: {
    error: string;
    id: string;
    name: string;
    peername: string;
    recvsize: string;
    recvstate: string;
    sendsize: string;
    sendstate: string;
    vertexid: string;
    url: string;
    label: string;
    transport: string | null;
  };
  time_info: Record<string, string>;
  transport_info: {
    error: string;
    fd: string;
    local: string;
    proxy: string;
    remote: string;
    state: string;
  };
  unix_ts_start: number;
  unix_ts_end: number;
  circuit_id?: string;
}

/**
 * One circuit. The schema allows no other fields here; `path` pairs a hop with the seconds
 * until the circuit reached it, which we know only for the last hop (the build time), so the
 * other hops are written without a time.
 */
export interface OnionPerfCircuit {
  circuit_id: number;
  elapsed_seconds: [string, number][];
  buildtime_seconds?: number;
  path: ([string, number] | [string])[];
  unix_ts_start: number;
  unix_ts_end: number;
  filtered_out: boolean;
}

const ERRORS: Record<string, string> = {
  timeout: "TIMEOUT",
  socks: "PROXY",
  "proxy-connect": "PROXY",
  reset: "READ",
  "short-read": "READ",
  tls: "PROXY",
  http: "STATUS",
  checksum: "AUTH",
};

const s = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms * 1000) / 1e6);
/** ms → time_info's microsecond string, "-1" when the step was not timed. */
const us = (ms: number | undefined) => (ms === undefined ? "-1" : String(Math.round(ms * 1000)));

/** The host[:port] of a URL, or the URL itself when it does not parse. */
function peer(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

/**
 * Records → an OnionPerf analysis under `nickname`, in the layout OnionPerf 3.1 writes
 * (schema/onionperf-3.1.json of tpo/metrics/onionperf, read from the anyone-protocol/onionperf
 * mirror at commit 8b09b049b30e993f6706041c7f62e1b125722b38): every field the schema requires
 * is present. Our phases map onto tgen's steps: tcp → usecs-to-socket-connect and
 * usecs-to-proxy-init (our client sends the SOCKS greeting as soon as it is connected),
 * socks → usecs-to-proxy-response, request → usecs-to-command, first_byte and last_byte →
 * usecs-to-first/last-byte-recv; steps we do not time are "-1". Byte counts are the body
 * bytes we counted (tgen's totals would include its own headers). Circuit keys must be
 * integers: a record's circuit id is kept when it is one and not taken by another run's
 * circuit, else the circuit gets the next free integer.
 */
export function toOnionPerf(
  records: Iterable<MeasureRecord>,
  nickname = "pctcp",
): OnionPerfAnalysis {
  const streams: Record<string, OnionPerfStream> = {};
  const circuits: Record<string, OnionPerfCircuit> = {};
  const circuitKey = new Map<string, number>(); // `${run}\n${id}` → key
  const taken = new Set<number>();
  const all = [...records];
  let next = 1;
  const keyOf = (run: string, id: string): number => {
    const k = `${run}\n${id}`;
    let n = circuitKey.get(k);
    if (n !== undefined) return n;
    n = /^\d{1,9}$/.test(id) && !taken.has(Number(id)) ? Number(id) : undefined;
    if (n === undefined) {
      while (taken.has(next)) next++;
      n = next;
    }
    taken.add(n);
    circuitKey.set(k, n);
    return n;
  };
  // Integer ids first, so a renumbered circuit never takes one a later record keeps.
  for (const r of all) if (r.circuit && /^\d{1,9}$/.test(r.circuit.id)) keyOf(r.run, r.circuit.id);
  for (const r of all) {
    const start = Date.parse(r.start) / 1000;
    const p = r.phases_ms;
    const lastMs = Math.max(0, ...Object.values(p).filter((x) => x !== undefined));
    const end = start + lastMs / 1000;
    const id = `${r.run}:${r.id}`;
    const progress: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.progress_ms)) {
      // OnionPerf keys deciles "0.1" … "1.0" (schema: ^[01]\.[0-9]$).
      if (/^\d+$/.test(k) && Number(k) % 10 === 0 && Number(k) <= 100) {
        progress[(Number(k) / 100).toFixed(1)] = s(v)!;
      }
    }
    const marks: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.marks_ms ?? {})) marks[k] = s(v)!;
    const ok = r.outcome === "ok";
    const error = ok ? "NONE" : (ERRORS[r.outcome] ?? "OTHER");
    const startUs = Math.round(start * 1e6);
    const cid = r.circuit ? keyOf(r.run, r.circuit.id) : undefined;
    streams[id] = {
      byte_info: {
        "payload-bytes-recv": String(r.bytes),
        "payload-bytes-send": "0",
        "payload-progress-recv": `${
          (r.size ? Math.min(100, (100 * r.bytes) / r.size) : ok ? 100 : 0).toFixed(1)
        }%`,
        "payload-progress-send": "100.0%",
        "total-bytes-recv": String(r.bytes),
        "total-bytes-send": "0",
      },
      elapsed_seconds: { payload_progress_recv: progress, payload_bytes_recv: marks },
      is_complete: true,
      is_error: !ok,
      is_success: ok,
      stream_id: id,
      stream_info: {
        error,
        id: String(r.id),
        name: nickname,
        peername: peer(r.url),
        recvsize: String(r.size ?? r.bytes),
        recvstate: ok ? "RECV_SUCCESS" : "RECV_ERROR",
        sendsize: "0",
        sendstate: ok ? "SEND_SUCCESS" : "SEND_ERROR",
        vertexid: "stream",
        url: r.url,
        label: r.label,
        transport: r.transport,
      },
      time_info: {
        "created-ts": String(startUs),
        "now-ts": String(startUs + Math.round(lastMs * 1000)),
        "usecs-to-socket-create": "-1",
        "usecs-to-socket-connect": us(p.tcp),
        "usecs-to-proxy-init": us(p.tcp),
        "usecs-to-proxy-choice": "-1",
        "usecs-to-proxy-request": "-1",
        "usecs-to-proxy-response": us(p.socks),
        "usecs-to-command": us(p.request),
        "usecs-to-response": "-1",
        "usecs-to-first-byte-send": "-1",
        "usecs-to-last-byte-send": "-1",
        "usecs-to-first-byte-recv": us(p.first_byte),
        "usecs-to-last-byte-recv": us(p.last_byte),
        "usecs-to-checksum-send": "-1",
        "usecs-to-checksum-recv": "-1",
      },
      transport_info: {
        error,
        fd: "-1",
        local: `localhost:127.0.0.1:${r.source_port ?? 0}`,
        proxy: "unknown",
        remote: peer(r.url),
        state: ok ? "SUCCESS_EOF" : "ERROR",
      },
      unix_ts_start: start,
      unix_ts_end: end,
      ...(cid !== undefined ? { circuit_id: String(cid) } : {}),
    };
    if (r.circuit && cid !== undefined) {
      const build = r.circuit.build_ms === null ? undefined : s(r.circuit.build_ms)!;
      const hops = r.circuit.path;
      circuits[String(cid)] ??= {
        circuit_id: cid,
        elapsed_seconds: build === undefined ? [] : [["BUILT", build]],
        ...(build === undefined ? {} : { buildtime_seconds: build }),
        path: hops.map((h, i) =>
          i === hops.length - 1 && build !== undefined ? [h, build] : [h] as [string]
        ),
        unix_ts_start: start,
        unix_ts_end: end,
        filtered_out: false,
      };
    }
  }
  return {
    type: "onionperf",
    version: "3.1",
    data: {
      [nickname]: { measurement_ip: "unknown", tgen: { streams }, tor: { circuits, streams: {} } },
    },
  };
}

const OUTCOMES: Record<string, string> = {
  NONE: "ok",
  TIMEOUT: "timeout",
  PROXY: "socks",
  READ: "reset",
  STATUS: "http",
  AUTH: "checksum",
};

/** Latest start time we take, in seconds since 1970: the end of Date's range (ECMA-262 §21.4.1.1). */
const MAX_UNIX_TS = 8.64e12;
/**
 * Longest elapsed time we take, in seconds: a day. OnionPerf's tgen gives up on a stream after
 * minutes, so anything longer is a broken file, not a slow fetch.
 */
const MAX_ELAPSED_S = 86_400;

function shown(v: unknown): string {
  if (typeof v === "number" || typeof v === "bigint" || v === undefined) return String(v);
  try {
    const t = JSON.stringify(v);
    return t.length > 40 ? `${t.slice(0, 40)}…` : t;
  } catch {
    return typeof v;
  }
}

/** Refuses the field at `path`: a SyntaxError that names it, what it must be and what it was. */
function refuse(path: string, want: string, got: unknown): never {
  throw new SyntaxError(`OnionPerf analysis: ${path} must be ${want}, got ${shown(got)}`);
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) refuse(path, "an object", v);
  return v as Record<string, unknown>;
}

const optObject = (v: unknown, path: string) => v === undefined ? {} : object(v, path);

function seconds(v: unknown, path: string, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max) {
    refuse(path, `a number of seconds in [0, ${max}]`, v);
  }
  return v;
}

const optSeconds = (v: unknown, path: string) =>
  v === undefined ? undefined : seconds(v, path, MAX_ELAPSED_S);

/** A byte count: a whole number, or its decimal string as OnionPerf 3.1 writes counts. */
function count(v: unknown, path: string): number {
  const n = typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : v;
  if (!Number.isSafeInteger(n) || (n as number) < 0) {
    refuse(path, "a byte count (integer ≥ 0, or its digits)", v);
  }
  return n as number;
}

/**
 * A time_info entry of OnionPerf 3.1: elapsed microseconds as a decimal string, "-1" when
 * the step was not reached (schema/onionperf-3.1.json, "time_info").
 */
function usecs(v: unknown, path: string): number | undefined {
  if (v === undefined || v === "-1" || v === -1) return undefined;
  const n = typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : v;
  if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > MAX_ELAPSED_S * 1e6) {
    refuse(path, `microseconds in [0, ${MAX_ELAPSED_S * 1e6}] (or "-1")`, v);
  }
  return n as number;
}

function optString(v: unknown, path: string): string | undefined {
  if (v !== undefined && typeof v !== "string") refuse(path, "a string", v);
  return v;
}

/** Seconds → ms, to the microsecond as our records keep them. */
const ms = (x: number) => Math.round(x * 1e6) / 1000;

function circuitOf(v: unknown, path: string, key: string): NonNullable<MeasureRecord["circuit"]> {
  const c = object(v, path);
  const id = c.circuit_id === undefined ? key : c.circuit_id;
  if (typeof id !== "string" && !Number.isSafeInteger(id)) {
    refuse(`${path}.circuit_id`, "a string or integer", id);
  }
  if (!Array.isArray(c.path)) refuse(`${path}.path`, "an array of [relay, time] pairs", c.path);
  const hops = c.path.map((h, i) => {
    if (!Array.isArray(h) || typeof h[0] !== "string") {
      refuse(`${path}.path[${i}]`, "a [relay, time] pair", h);
    }
    return h[0] as string;
  });
  const b = c.buildtime_seconds;
  return {
    id: String(id),
    path: hops,
    build_ms: b === null || b === undefined
      ? null
      : ms(seconds(b, `${path}.buildtime_seconds`, MAX_ELAPSED_S)),
  };
}

/**
 * An OnionPerf analysis → records (label "onionperf" unless the stream carries ours). Every
 * field read is checked first: a missing or mistyped one (a time that is not a number of
 * seconds in range, a count that is not a whole number, a path that is not a list of pairs,
 * the wrong nesting) throws a SyntaxError naming its path, e.g. `data.op-hk.tgen.streams.7.
 * unix_ts_start`; fields we do not read are ignored.
 */
export function fromOnionPerf(doc: unknown, run = "onionperf"): MeasureRecord[] {
  const d = doc as Partial<OnionPerfAnalysis> | null;
  if (typeof d !== "object" || d === null || d.type !== "onionperf") {
    throw new SyntaxError('not an OnionPerf analysis (type must be "onionperf")');
  }
  const out: MeasureRecord[] = [];
  let n = 0;
  for (const [nick, hostValue] of Object.entries(object(d.data, "data"))) {
    const hp = `data.${nick}`;
    const host = object(hostValue, hp);
    const tor = optObject(host.tor, `${hp}.tor`);
    const circuits = optObject(tor.circuits, `${hp}.tor.circuits`);
    const tgen = optObject(host.tgen, `${hp}.tgen`);
    for (const [sid, stValue] of Object.entries(optObject(tgen.streams, `${hp}.tgen.streams`))) {
      const sp = `${hp}.tgen.streams.${sid}`;
      const st = object(stValue, sp);
      const e = optObject(st.elapsed_seconds, `${sp}.elapsed_seconds`);
      const ep = `${sp}.elapsed_seconds`;
      const progress: Record<string, number> = {};
      const pp = `${ep}.payload_progress_recv`;
      for (const [k, v] of Object.entries(optObject(e.payload_progress_recv, pp))) {
        const frac = Number(k);
        if (!/^\d+(\.\d+)?$/.test(k) || frac > 1) refuse(`${pp} keys`, "fractions in [0, 1]", k);
        const pct = Math.round(frac * 100);
        const t = seconds(v, `${pp}.${k}`, MAX_ELAPSED_S);
        if (pct > 0) progress[String(pct)] = ms(t);
      }
      const marks: Record<string, number> = {};
      const bp = `${ep}.payload_bytes_recv`;
      for (const [k, v] of Object.entries(optObject(e.payload_bytes_recv, bp))) {
        if (!/^\d{1,15}$/.test(k)) refuse(`${bp} keys`, "byte counts", k);
        marks[k] = ms(seconds(v, `${bp}.${k}`, MAX_ELAPSED_S));
      }
      // Phases: ours carry them in elapsed_seconds (seconds); OnionPerf 3.1 in time_info
      // (microsecond strings, "usecs-to-proxy-init" …). Where both are, ours win.
      const phases: MeasureRecord["phases_ms"] = {};
      const ti = optObject(st.time_info, `${sp}.time_info`);
      for (
        const [from, to] of [
          ["proxy_init", "tcp"],
          ["proxy_response", "socks"],
          ["command", "request"],
          ["first_byte_recv", "first_byte"],
          ["last_byte_recv", "last_byte"],
        ] as const
      ) {
        const t = optSeconds(e[from], `${ep}.${from}`);
        const key = `usecs-to-${from.replaceAll("_", "-")}`;
        const u = usecs(ti[key], `${sp}.time_info.${key}`);
        if (t !== undefined) phases[to] = ms(t);
        else if (u !== undefined) phases[to] = u / 1000;
      }
      if (typeof st.is_success !== "boolean") {
        refuse(`${sp}.is_success`, "true or false", st.is_success);
      }
      const start = seconds(st.unix_ts_start, `${sp}.unix_ts_start`, MAX_UNIX_TS);
      const info = optObject(st.stream_info, `${sp}.stream_info`);
      const error = optString(info.error, `${sp}.stream_info.error`) ??
        (st.is_success ? "NONE" : "OTHER");
      const transport = info.transport === null
        ? null
        : optString(info.transport, `${sp}.stream_info.transport`);
      // Byte counts: ours as numbers, OnionPerf 3.1's as "total-bytes-recv" digit strings.
      const bi = optObject(st.byte_info, `${sp}.byte_info`);
      const ourBytes = bi.total_bytes_recv === undefined
        ? undefined
        : count(bi.total_bytes_recv, `${sp}.byte_info.total_bytes_recv`);
      const theirBytes = bi["total-bytes-recv"] === undefined
        ? undefined
        : count(bi["total-bytes-recv"], `${sp}.byte_info.total-bytes-recv`);
      const cid = st.circuit_id;
      if (cid !== undefined && typeof cid !== "string" && !Number.isSafeInteger(cid)) {
        refuse(`${sp}.circuit_id`, "a string or integer", cid);
      }
      const cKey = cid === undefined ? undefined : String(cid);
      const c = cKey !== undefined && Object.hasOwn(circuits, cKey)
        ? circuitOf(circuits[cKey], `${hp}.tor.circuits.${cKey}`, cKey)
        : null;
      out.push({
        v: 1,
        run,
        id: ++n,
        label: optString(info.label, `${sp}.stream_info.label`) ?? "onionperf",
        transport: transport === undefined ? nick : transport,
        url: optString(info.url, `${sp}.stream_info.url`) ?? `onionperf:${nick}`,
        size: info.recvsize === undefined
          ? null
          : count(info.recvsize, `${sp}.stream_info.recvsize`),
        start: new Date(start * 1000).toISOString(),
        phases_ms: phases,
        progress_ms: progress,
        marks_ms: marks,
        bytes: ourBytes ?? theirBytes ?? 0,
        status: null,
        sha256: null,
        sha256_ok: null,
        circuit: c,
        source_port: null,
        outcome: st.is_success ? "ok" : (OUTCOMES[error] ?? "other"),
        error: st.is_success ? null : `OnionPerf error ${error}`,
      });
    }
  }
  return out;
}

/** The columns of a records CSV; the error class is always present. */
export const CSV_COLUMNS = [
  "run",
  "id",
  "label",
  "transport",
  "url",
  "size",
  "start",
  "tcp_ms",
  "socks_ms",
  "request_ms",
  "first_byte_ms",
  "last_byte_ms",
  "bytes",
  "status",
  "sha256_ok",
  "circuit",
  "path",
  "build_ms",
  "source_port",
  "outcome",
  "error",
] as const;

/** One record as a CSV row. */
export function recordRow(r: MeasureRecord): (string | number)[] {
  const p = r.phases_ms;
  const v = (x: unknown) => (x === undefined || x === null ? "" : x as string | number);
  return [
    r.run,
    r.id,
    r.label,
    v(r.transport),
    r.url,
    v(r.size),
    r.start,
    v(p.tcp),
    v(p.socks),
    v(p.request),
    v(p.first_byte),
    v(p.last_byte),
    r.bytes,
    v(r.status),
    v(r.sha256_ok === null ? "" : String(r.sha256_ok)),
    v(r.circuit?.id),
    r.circuit?.path.join(" ") ?? "",
    v(r.circuit?.build_ms),
    v(r.source_port),
    r.outcome,
    v(r.error),
  ];
}
