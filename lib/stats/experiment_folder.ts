/**
 * Records of an experiment folder read by `stats`, `compare` and `report`: the folder holds
 * one records file per arm (`records-ARM.jsonl`, pooled over runs, and `runs/rN/` per run)
 * beside its manifest.json (scenario.json in folders from before the manifest). Its records
 * carry the arm only in the file name and in `transport`, and their URLs differ per run (each
 * run's server has its own port), so grouping them by URL splits an arm into unlabelled rows;
 * these helpers let the readers group by arm instead.
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";

const RECORDS = /(?:^|\/)records-([a-z0-9][a-z0-9-]*)\.jsonl$/;

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

/** True if `dir` is an experiment folder (manifest.json, or scenario.json and arm records). */
export async function isExperimentFolder(dir: string): Promise<boolean> {
  const d = dir.replace(/\/$/, "");
  if (await exists(`${d}/manifest.json`)) return true;
  if (!await exists(`${d}/scenario.json`)) return false;
  try {
    for await (const e of Deno.readDir(d)) if (e.isFile && RECORDS.test(e.name)) return true;
  } catch { /* not a folder */ }
  return false;
}

/** The experiment folder a records file or folder belongs to, if any. */
export async function experimentFolderOf(name: string): Promise<string | undefined> {
  const n = name.replace(/\/$/, "");
  if (await isExperimentFolder(n)) return n;
  if (!RECORDS.test(n)) return undefined;
  // DIR/records-ARM.jsonl or DIR/runs/rN/records-ARM.jsonl (DIR "." when no folder is named).
  let dir = n.includes("/") ? n.slice(0, n.lastIndexOf("/")) : ".";
  const run = /(?:^|\/)runs\/r\d+$/.exec(dir);
  if (run) dir = dir.slice(0, run.index) || ".";
  return await isExperimentFolder(dir) ? dir : undefined;
}

/** True if any of the names is, or lies in, an experiment folder. */
export async function anyExperiment(names: string[]): Promise<boolean> {
  for (const n of names) if (await experimentFolderOf(n)) return true;
  return false;
}

/** The arm a records file of an experiment folder stands for (`records-ARM.jsonl`). */
export function armOfFile(file: string): string | undefined {
  return RECORDS.exec(file)?.[1];
}

/**
 * The record with its arm set from its file (experiment records have none of their own; a
 * record that has one keeps it).
 */
export function withFileArm(r: MeasureRecord, file: string): MeasureRecord {
  if (r.arm) return r;
  const arm = armOfFile(file) ?? r.transport ?? undefined;
  return arm ? { ...r, arm } : r;
}
