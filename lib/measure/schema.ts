/**
 * The records schema (docs/records.md) as code: {@link validateRecord} checks one parsed line
 * and names the first wrong field; {@link readRecords} reads a JSONL file through it, naming
 * file, line and field of every line it cannot use. Every reader (stats, report, export) goes
 * through here, so one wrong value is a clear message, not a JavaScript error deep in a plot.
 * @module
 */

import { isOutcome, OUTCOME_NAMES } from "./outcome.ts";
import type { MeasureRecord } from "./record.ts";

/** A value that breaks the schema: the field (a dotted path) and what was expected there. */
export interface SchemaProblem {
  /** Field path, e.g. `phases_ms.first_byte`. */
  field: string;
  /** What the schema wants there, and what it got. */
  message: string;
}

type Check = (v: unknown, field: string) => SchemaProblem | null;

const show = (v: unknown) => {
  const t = JSON.stringify(v);
  return t === undefined ? String(v) : t.length > 40 ? `${t.slice(0, 40)}…` : t;
};
const problem = (field: string, want: string, v: unknown): SchemaProblem => ({
  field,
  message: `expected ${want}, got ${v === undefined ? "nothing" : show(v)}`,
});
const str: Check = (v, f) => typeof v === "string" ? null : problem(f, "a string", v);
const nonEmpty: Check = (v, f) =>
  typeof v === "string" && v.length > 0 ? null : problem(f, "a non-empty string", v);
const num: Check = (v, f) =>
  typeof v === "number" && Number.isFinite(v) ? null : problem(f, "a finite number", v);
const ms: Check = (v, f) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0
    ? null
    : problem(f, "a non-negative number of ms", v);
const count: Check = (v, f) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? null : problem(f, "a non-negative integer", v);
const bool: Check = (v, f) => typeof v === "boolean" ? null : problem(f, "true or false", v);
const iso: Check = (v, f) =>
  typeof v === "string" && Number.isFinite(Date.parse(v))
    ? null
    : problem(f, "an ISO 8601 time", v);
const orNull = (c: Check): Check => (v, f) => v === null ? null : c(v, f);
const strings: Check = (v, f) => {
  if (!Array.isArray(v)) return problem(f, "a list of strings", v);
  const i = v.findIndex((x) => typeof x !== "string");
  return i < 0 ? null : problem(`${f}.${i}`, "a string", v[i]);
};
const msMap: Check = (v, f) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return problem(f, "an object of ms values", v);
  }
  for (const [k, x] of Object.entries(v)) {
    const p = ms(x, `${f}.${k}`);
    if (p) return p;
  }
  return null;
};
const object =
  (fields: Record<string, Check>, optional: Record<string, Check> = {}): Check => (v, f) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return problem(f, "an object", v);
    const o = v as Record<string, unknown>;
    for (const [k, c] of Object.entries(fields)) {
      const p = c(o[k], f ? `${f}.${k}` : k);
      if (p) return p;
    }
    for (const [k, c] of Object.entries(optional)) {
      if (o[k] === undefined) continue;
      const p = c(o[k], f ? `${f}.${k}` : k);
      if (p) return p;
    }
    return null;
  };
const outcome: Check = (v, f) =>
  isOutcome(v) ? null : problem(f, `one of ${OUTCOME_NAMES.join(", ")}`, v);

const circuit = object({ id: str, path: strings, build_ms: orNull(ms) }, {
  security: str,
  error: str,
});

/** The record of format version 1: required fields, then optional ones (checked when given). */
const RECORD_V1 = object({
  v: count,
  run: nonEmpty,
  id: count,
  label: str,
  transport: orNull(str),
  url: str,
  size: orNull(count),
  start: iso,
  phases_ms: msMap,
  progress_ms: msMap,
  bytes: count,
  status: orNull(count),
  sha256: orNull(str),
  sha256_ok: orNull(bool),
  circuit: orNull(circuit),
  source_port: orNull(count),
  outcome,
  error: orNull(str),
}, {
  marks_ms: msMap,
  client: str,
  page_ms: ms,
  resources: object({ count, failed: count }),
  timeout_ms: ms,
  scheduled_start: iso,
  slip_ms: num,
  late: bool,
  skipped_slots: count,
  arm: nonEmpty,
  arm_path: strings,
  arm_circuit: object({ n: count, reason: str, since: iso }, { first: bool }),
  arm_block: count,
  worker: count,
});

/** The first way `v` breaks the records schema, or null if it is a valid record. */
export function validateRecord(v: unknown): SchemaProblem | null {
  const p = RECORD_V1(v, "");
  if (p) return p;
  const r = v as MeasureRecord;
  if (r.v !== 1) return { field: "v", message: `expected format version 1, got ${show(r.v)}` };
  if (r.outcome === "ok" && r.error !== null) {
    return { field: "error", message: "expected null when outcome is ok" };
  }
  return null;
}

/** A line of a records file that is not a valid record; says file, line and field. */
export class RecordError extends SyntaxError {
  /** Error name. */
  override name = "RecordError";
  /** The file. */
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** The field at fault (a dotted path), or null when the line is not JSON at all. */
  readonly field: string | null;

  /** An error at `file`:`line` in `field`. */
  constructor(file: string, line: number, field: string | null, message: string) {
    super(`${file}:${line}: ${field === null ? "" : `${field}: `}${message}`);
    this.file = file;
    this.line = line;
    this.field = field;
  }
}

/** One line checked: a record, a run-settings line (`type: "run"`, not a record), blank, or
 * the problem. */
export function checkLine(
  text: string,
  file: string,
  line: number,
): { record: MeasureRecord } | { skip: true } | { error: RecordError } {
  if (!text.trim()) return { skip: true };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: new RecordError(file, line, null, `not JSON: ${(e as Error).message}`) };
  }
  if (typeof v === "object" && v !== null && (v as { type?: unknown }).type === "run") {
    return { skip: true };
  }
  const p = validateRecord(v);
  if (p) return { error: new RecordError(file, line, p.field, p.message) };
  return { record: v as MeasureRecord };
}

/** What {@link readRecords} read. */
export interface ReadResult {
  /** The valid records, in file order (none kept when `onRecord` takes them). */
  records: MeasureRecord[];
  /** Lines that were not valid records (only with `onBad`; else the first one throws). */
  badCount: number;
}

/**
 * Reads one JSONL records file (streamed line by line), validating every line. A bad line is
 * a thrown {@link RecordError} naming file, line and field, unless `onBad` is given: then it is
 * handed there and counted, and reading goes on (the caller says so; nothing is dropped in
 * silence). Run-settings lines and blank lines are skipped. `onRecord`, when given, receives
 * each record instead of the result keeping them (bounded memory for big files).
 */
export async function readRecords(
  path: string,
  options: {
    onBad?: (e: RecordError) => void;
    onRecord?: (r: MeasureRecord) => void;
  } = {},
): Promise<ReadResult> {
  const out: ReadResult = { records: [], badCount: 0 };
  const f = await Deno.open(path);
  const dec = new TextDecoder();
  let rest = "";
  let lineNo = 0;
  const handle = (text: string) => {
    lineNo++;
    const c = checkLine(text, path, lineNo);
    if ("record" in c) {
      if (options.onRecord) options.onRecord(c.record);
      else out.records.push(c.record);
    } else if ("error" in c) {
      if (!options.onBad) throw c.error;
      out.badCount++;
      options.onBad(c.error);
    }
  };
  try {
    for await (const chunk of f.readable) {
      const text = rest + dec.decode(chunk, { stream: true });
      const lines = text.split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) handle(l);
    }
    rest += dec.decode();
    if (rest) handle(rest);
  } finally {
    try {
      f.close();
    } catch { /* the readable closed it */ }
  }
  return out;
}
