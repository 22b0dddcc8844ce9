/**
 * Reads records files line by line with bounded memory. A malformed line is reported with
 * its file and line number and skipped; the count is returned, never a silent drop. Names may
 * be globs (`measurements/daily-*.jsonl`, `data/**\/*.jsonl`, quoted so the shell leaves them
 * alone, as from cron) or folders (their records files).
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";
import { readRecords as readRecordFile } from "../measure/schema.ts";

/** A line that could not be used. */
export interface BadLine {
  /** File. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** Why. */
  reason: string;
}

/** True if a name has glob characters (`*`, `?`, `[`). */
export function isGlob(name: string): boolean {
  return /[*?[]/.test(name);
}

/** A regular expression for one path segment of a glob: `*`, `?` and `[…]` classes. */
export function globSegment(segment: string): RegExp {
  let re = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        const body = segment.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\");
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Whether a file in a folder is a records file (not a run-settings file). */
function isRecordsFile(name: string): boolean {
  return name.endsWith(".jsonl") && !name.endsWith(".runs.jsonl");
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * The files that names stand for: a glob expands to the matching files (sorted; `**` is any
 * number of folders; dot-files only when the pattern names them), a folder to its records
 * files (`*.jsonl` but `*.runs.jsonl`), anything else stays as given. A glob that matches
 * nothing is a RangeError, so a mistyped pattern in a cron line is not a silent empty report.
 */
export async function expandRecordFiles(names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    const literalExists = await Deno.stat(name).then(() => true, () => false);
    if (!literalExists && isGlob(name)) {
      const found = await expandGlob(name);
      if (!found.length) throw new RangeError(`no file matches ${name}`);
      out.push(...found.filter((f) => !f.endsWith(".runs.jsonl")));
    } else if (literalExists && await isDir(name)) {
      const inDir: string[] = [];
      for await (const e of Deno.readDir(name)) {
        if (e.isFile && isRecordsFile(e.name)) inDir.push(`${name.replace(/\/$/, "")}/${e.name}`);
      }
      out.push(...inDir.sort());
    } else out.push(name);
  }
  return [...new Set(out)];
}

async function expandGlob(pattern: string): Promise<string[]> {
  const absolute = pattern.startsWith("/");
  const segments = pattern.split("/").filter((s, i) => s !== "" || i === 0);
  if (absolute) segments.shift();
  let current = [absolute ? "/" : "."];
  for (let k = 0; k < segments.length; k++) {
    const seg = segments[k]!;
    const last = k === segments.length - 1;
    const next: string[] = [];
    const join = (dir: string, n: string) =>
      dir === "." ? n : dir === "/" ? `/${n}` : `${dir}/${n}`;
    if (seg === "**") {
      // Zero or more folders: every folder below each current one, itself included.
      for (const dir of current) {
        const stack = [dir];
        while (stack.length) {
          const d = stack.pop()!;
          next.push(d);
          try {
            for await (const e of Deno.readDir(d)) {
              if (e.isDirectory && !e.name.startsWith(".")) stack.push(join(d, e.name));
            }
          } catch { /* unreadable */ }
        }
      }
      current = next;
      continue;
    }
    if (!isGlob(seg)) {
      for (const dir of current) {
        const p = join(dir, seg);
        if (last || await isDir(p)) {
          if (await Deno.stat(p).then(() => true, () => false)) next.push(p);
        }
      }
    } else {
      const re = globSegment(seg);
      for (const dir of current) {
        try {
          for await (const e of Deno.readDir(dir)) {
            if (e.name.startsWith(".") && !seg.startsWith(".")) continue;
            if (!re.test(e.name)) continue;
            if (last ? e.isFile || e.isSymlink : e.isDirectory) next.push(join(dir, e.name));
          }
        } catch { /* not a folder */ }
      }
    }
    current = next;
  }
  return [...new Set(current)].sort();
}

/** Calls `onRecord` for each record of each file (names may be globs or folders); returns the
 * bad lines. */
export async function readRecords(
  files: string[],
  onRecord: (r: MeasureRecord, file: string) => void,
  options: { maxBadReported?: number } = {},
): Promise<{ records: number; bad: BadLine[]; badCount: number; files: string[] }> {
  const bad: BadLine[] = [];
  let badCount = 0, records = 0;
  const max = options.maxBadReported ?? 100;
  files = await expandRecordFiles(files);
  for (const file of files) {
    // Through the records schema (docs/records.md, lib/measure/schema.ts): it names the field.
    await readRecordFile(file, {
      onBad: (e) => {
        badCount++;
        const reason = e.message.slice(`${file}:${e.line}: `.length);
        if (bad.length < max) bad.push({ file, line: e.line, reason });
      },
      onRecord: (r) => {
        records++;
        onRecord(r, file);
      },
    });
  }
  return { records, bad, badCount, files };
}
