/**
 * Joins measurement records to circuits through our client's stream log (JSONL of
 * StreamEvent, one per SOCKS stream): the SOCKS source port names the stream.
 * @module
 */

import type { MeasureRecord } from "./record.ts";

/** A lookup that re-reads the log when a port is not found yet. */
export function circuitLookupFromLog(
  path: string,
): (port: number) => Promise<MeasureRecord["circuit"]> {
  const byPort = new Map<number, NonNullable<MeasureRecord["circuit"]>>();
  let readUpTo = 0;
  return async (port) => {
    if (!byPort.has(port)) {
      let text = "";
      try {
        text = await Deno.readTextFile(path);
      } catch {
        return null;
      }
      const lines = text.split("\n");
      for (let i = readUpTo; i < lines.length - 1; i++) {
        try {
          const e = JSON.parse(lines[i]!);
          byPort.set(e.sourcePort, {
            id: String(e.circuit),
            path: e.path,
            build_ms: e.buildMs ?? null,
            ...(e.security ? { security: e.security } : {}),
          });
        } catch { /* partial line */ }
      }
      readUpTo = Math.max(0, lines.length - 1);
    }
    return byPort.get(port) ?? null;
  };
}
