/**
 * OnionPerf analysis JSON (type "onionperf", version 3.1): export our records so Tor
 * Metrics tooling can read them, and import OnionPerf analyses so runs can be compared with
 * Tor Metrics' own. The mapping: data.<nickname>.tgen.streams.<id> carries elapsed_seconds
 * (first_byte_recv, last_byte_recv, payload_progress_recv by decile, payload_bytes_recv by
 * byte mark, all from the stream start as in our records) and data.<nickname>.tor.circuits
 * carries buildtime_seconds and path. Only uncompressed JSON is read (decompress .xz first).
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

/** One tgen stream. */
export interface OnionPerfStream {
  byte_info: { total_bytes_recv: number; total_bytes_send: number };
  elapsed_seconds: {
    first_byte_recv?: number;
    last_byte_recv?: number;
    payload_progress_recv?: Record<string, number>;
    payload_bytes_recv?: Record<string, number>;
    proxy_init?: number;
    proxy_response?: number;
    command?: number;
  };
  is_complete: boolean;
  is_error: boolean;
  is_success: boolean;
  stream_id: string;
  stream_info: {
    error: string;
    name: string;
    recvsize: number;
    id: string;
    url?: string;
    label?: string;
    transport?: string | null;
  };
  transport_info: { local: string; remote: string };
  unix_ts_start: number;
  unix_ts_end: number;
  circuit_id?: string;
}

/** One circuit. */
export interface OnionPerfCircuit {
  circuit_id: string;
  buildtime_seconds: number | null;
  path: [string, number][];
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

/** Records → an OnionPerf analysis under `nickname`. */
export function toOnionPerf(
  records: Iterable<MeasureRecord>,
  nickname = "pctcp",
): OnionPerfAnalysis {
  const streams: Record<string, OnionPerfStream> = {};
  const circuits: Record<string, OnionPerfCircuit> = {};
  for (const r of records) {
    const start = Date.parse(r.start) / 1000;
    const end = start + (r.phases_ms.last_byte ?? 0) / 1000;
    const id = `${r.run}:${r.id}`;
    const progress: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.progress_ms)) {
      progress[(Number(k) / 100).toFixed(1)] = s(v)!;
    }
    const marks: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.marks_ms ?? {})) marks[k] = s(v)!;
    streams[id] = {
      byte_info: { total_bytes_recv: r.bytes, total_bytes_send: 0 },
      elapsed_seconds: {
        ...(r.phases_ms.first_byte !== undefined
          ? { first_byte_recv: s(r.phases_ms.first_byte)! }
          : {}),
        ...(r.phases_ms.last_byte !== undefined
          ? { last_byte_recv: s(r.phases_ms.last_byte)! }
          : {}),
        ...(r.phases_ms.tcp !== undefined ? { proxy_init: s(r.phases_ms.tcp)! } : {}),
        ...(r.phases_ms.socks !== undefined ? { proxy_response: s(r.phases_ms.socks)! } : {}),
        ...(r.phases_ms.request !== undefined ? { command: s(r.phases_ms.request)! } : {}),
        payload_progress_recv: progress,
        payload_bytes_recv: marks,
      },
      is_complete: r.outcome === "ok",
      is_error: r.outcome !== "ok",
      is_success: r.outcome === "ok",
      stream_id: id,
      stream_info: {
        error: r.outcome === "ok" ? "NONE" : (ERRORS[r.outcome] ?? "OTHER"),
        name: r.label,
        recvsize: r.size ?? r.bytes,
        id,
        url: r.url,
        label: r.label,
        transport: r.transport,
      },
      transport_info: { local: `localhost:127.0.0.1:${r.source_port ?? 0}`, remote: r.url },
      unix_ts_start: start,
      unix_ts_end: end,
      ...(r.circuit ? { circuit_id: `${r.run}:${r.circuit.id}` } : {}),
    };
    if (r.circuit) {
      const cid = `${r.run}:${r.circuit.id}`;
      circuits[cid] ??= {
        circuit_id: cid,
        buildtime_seconds: r.circuit.build_ms === null ? null : s(r.circuit.build_ms)!,
        path: r.circuit.path.map((p) => [p, start] as [string, number]),
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

/** An OnionPerf analysis → records (label "onionperf" unless the stream carries ours). */
export function fromOnionPerf(doc: unknown, run = "onionperf"): MeasureRecord[] {
  const d = doc as OnionPerfAnalysis;
  if (d?.type !== "onionperf" || typeof d.data !== "object") {
    throw new SyntaxError('not an OnionPerf analysis (type must be "onionperf")');
  }
  const out: MeasureRecord[] = [];
  let n = 0;
  for (const [nick, host] of Object.entries(d.data)) {
    const circuits = host.tor?.circuits ?? {};
    for (const st of Object.values(host.tgen?.streams ?? {})) {
      const e = st.elapsed_seconds ?? {};
      const ms = (x?: number) => (typeof x === "number" ? Math.round(x * 1e6) / 1000 : undefined);
      const progress: Record<string, number> = {};
      for (const [k, v] of Object.entries(e.payload_progress_recv ?? {})) {
        const pct = Math.round(Number(k) * 100);
        if (pct > 0) progress[String(pct)] = ms(v)!;
      }
      const marks: Record<string, number> = {};
      for (const [k, v] of Object.entries(e.payload_bytes_recv ?? {})) marks[k] = ms(v)!;
      const c = st.circuit_id ? circuits[st.circuit_id] : undefined;
      const phases: MeasureRecord["phases_ms"] = {};
      if (e.proxy_init !== undefined) phases.tcp = ms(e.proxy_init)!;
      if (e.proxy_response !== undefined) phases.socks = ms(e.proxy_response)!;
      if (e.command !== undefined) phases.request = ms(e.command)!;
      if (e.first_byte_recv !== undefined) phases.first_byte = ms(e.first_byte_recv)!;
      if (e.last_byte_recv !== undefined) phases.last_byte = ms(e.last_byte_recv)!;
      const error = st.stream_info?.error ?? (st.is_success ? "NONE" : "OTHER");
      out.push({
        v: 1,
        run,
        id: ++n,
        label: st.stream_info?.label ?? "onionperf",
        transport: st.stream_info?.transport ?? nick,
        url: st.stream_info?.url ?? `onionperf:${nick}`,
        size: st.stream_info?.recvsize ?? null,
        start: new Date(st.unix_ts_start * 1000).toISOString(),
        phases_ms: phases,
        progress_ms: progress,
        marks_ms: marks,
        bytes: st.byte_info?.total_bytes_recv ?? 0,
        status: null,
        sha256: null,
        sha256_ok: null,
        circuit: c
          ? {
            id: c.circuit_id,
            path: c.path.map((p) => p[0]),
            build_ms: c.buildtime_seconds === null ? null : ms(c.buildtime_seconds)!,
          }
          : null,
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
