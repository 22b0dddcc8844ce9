/**
 * Reads records files line by line with bounded memory. A malformed line is reported with
 * its file and line number and skipped; the count is returned, never a silent drop.
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";

/** A line that could not be used. */
export interface BadLine {
  /** File. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** Why. */
  reason: string;
}

/**
 * Expands `*`, `?` and `[…]` in the last path component (`onionperf/onionperf-*.jsonl`, the
 * daily files of a cron entry, when the shell did not), sorted by name; other names are kept
 * as given. A pattern that matches nothing is an error naming it.
 */
export async function expandFileGlobs(files: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    const slash = f.lastIndexOf("/");
    const base = f.slice(slash + 1);
    if (!/[*?[]/.test(base)) {
      out.push(f);
      continue;
    }
    const dir = slash >= 0 ? f.slice(0, slash) || "/" : ".";
    const re = new RegExp(
      "^" + base.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") +
        "$",
    );
    const found: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && re.test(e.name) && !e.name.endsWith(".runs.jsonl")) {
        found.push(slash >= 0 ? `${f.slice(0, slash)}/${e.name}` : e.name);
      }
    }
    if (!found.length) throw new Error(`no file matches ${f}`);
    out.push(...found.sort());
  }
  return out;
}

/** Calls `onRecord` for each record of each file (globs expanded); returns the bad lines. */
export async function readRecords(
  files: string[],
  onRecord: (r: MeasureRecord, file: string) => void,
  options: { maxBadReported?: number } = {},
): Promise<{ records: number; bad: BadLine[]; badCount: number }> {
  const bad: BadLine[] = [];
  let badCount = 0, records = 0;
  const max = options.maxBadReported ?? 100;
  for (const file of await expandFileGlobs(files)) {
    const f = await Deno.open(file);
    let lineNo = 0;
    let rest = "";
    const dec = new TextDecoder();
    const handle = (line: string) => {
      lineNo++;
      if (!line.trim()) return;
      let r: MeasureRecord;
      try {
        r = JSON.parse(line);
      } catch {
        badCount++;
        if (bad.length < max) bad.push({ file, line: lineNo, reason: "not JSON" });
        return;
      }
      if ((r as unknown as { type?: string }).type === "run") return;
      if (
        typeof r !== "object" || r === null || typeof r.outcome !== "string" ||
        typeof r.phases_ms !== "object"
      ) {
        badCount++;
        if (bad.length < max) {
          bad.push({
            file,
            line: lineNo,
            reason: "not a measurement record (no outcome/phases_ms)",
          });
        }
        return;
      }
      records++;
      onRecord(r, file);
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
      } catch { /* readable closed it */ }
    }
  }
  return { records, bad, badCount };
}
