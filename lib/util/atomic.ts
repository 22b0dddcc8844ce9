/**
 * The one atomic file write: the text goes to `FILE.tmp-PID-N` in the same folder, is flushed,
 * then renamed over FILE, so a reader (or a crash) sees the old file or the new one, never half
 * of one. Replaces the write-then-rename copies of the launcher, relay stats and state files
 * (issue 21).
 * @module
 */

let seq = 0;

/** Writes `text` to `path` atomically (same-folder temporary file, fdatasync, rename). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${++seq}`;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      const b = new TextEncoder().encode(text);
      let off = 0;
      while (off < b.length) off += await f.write(b.subarray(off));
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Writes `value` as JSON (two-space indented, one newline at the end) to `path` atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}
