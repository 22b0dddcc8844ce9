/**
 * Quantities of a network as people write them: durations (`40ms`, `0.5 s`, `"10 ms"` as in
 * Shadow's GML), rates (`20Mbit`, `2MiB`, `"100 Mbit"`; bits with SI prefixes as tc and
 * Shadow use them, bytes as `parseSize` reads them) and loss (`1%`, `0.01`).
 * @module
 */

import { parseDuration as parseDurationMs } from "../util/duration.ts";

/** Milliseconds of a duration (`40ms`, `0.04s`, `250us`, a bare number is ms). */
export function parseDuration(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isFinite(text) || text < 0) throw new RangeError(`not a duration: ${text}`);
    return text;
  }
  // The one parser (lib/util/duration.ts); a bare number is ms here.
  try {
    return parseDurationMs(text, "ms");
  } catch {
    throw new SyntaxError(`not a duration: ${JSON.stringify(text)}`);
  }
}

const SI: Record<string, number> = { "": 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const IEC: Record<string, number> = { ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4 };

/**
 * Bytes per second of a rate. Bits: `20Mbit`, `100 Mbit`, `1gbit`, `500kbps` (SI prefixes,
 * 1 Mbit = 10⁶ bits as in tc and Shadow; `Kibit` binary). Bytes: `2MiB`, `300KB`, `4MB/s`,
 * a bare number. `0`, `unlimited` and `none` mean no limit (Infinity).
 */
export function parseRate(text: string | number): number {
  if (typeof text === "number") {
    if (!(text >= 0)) throw new RangeError(`not a rate: ${text}`);
    return text === 0 ? Infinity : text;
  }
  const t = text.trim().toLowerCase();
  if (t === "unlimited" || t === "none" || t === "0") return Infinity;
  const m = /^(\d+(?:\.\d+)?)\s*(ki|mi|gi|ti|k|m|g|t)?(bit|bits|bps|b|byte|bytes)?(\/s)?$/.exec(t);
  if (!m) throw new SyntaxError(`not a rate: ${JSON.stringify(text)}`);
  const n = Number(m[1]);
  const prefix = m[2] ?? "";
  const unit = m[3] ?? "b";
  const factor = IEC[prefix] ?? SI[prefix]!;
  const bits = unit === "bit" || unit === "bits" || unit === "bps";
  // A bare prefix (`2M`, `300k`) is bytes with binary prefixes, as parseSize reads sizes.
  const bytesFactor = m[3] ? factor : (prefix ? 1024 ** (" kmgt".indexOf(prefix[0]!)) : 1);
  const r = bits ? (n * factor) / 8 : n * bytesFactor;
  if (r === 0) return Infinity;
  return r;
}

/** A loss probability in [0, 1] from `1%`, `0.5 %` or `0.01`. */
export function parseLoss(text: string | number): number {
  let p: number;
  if (typeof text === "number") p = text;
  else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(text);
    if (!m) throw new SyntaxError(`not a loss rate: ${JSON.stringify(text)}`);
    p = Number(m[1]) / (m[2] ? 100 : 1);
  }
  if (!(p >= 0 && p <= 1)) throw new RangeError(`loss must be within 0..1 (or 0..100 %): ${text}`);
  return p;
}

/** `20 Mbit/s` style text of a rate in bytes per second. */
export function formatRate(bytesPerS: number): string {
  if (!Number.isFinite(bytesPerS)) return "unlimited";
  const bits = bytesPerS * 8;
  for (const [u, f] of [["Gbit", 1e9], ["Mbit", 1e6], ["kbit", 1e3]] as const) {
    if (bits >= f) return `${Number((bits / f).toPrecision(4))} ${u}/s`;
  }
  return `${Math.round(bits)} bit/s`;
}
