/**
 * The one duration parser: flags (`500ms`, `90s`, `5m`, `2h`, `1d`, or several, `1m30s`),
 * scenario and topology files (`40ms`, `"10 ms"` and `250us` as in Shadow's GML), or a bare
 * number in the caller's old unit (seconds for most flags, ms for `measure --timeout` and the
 * emulator's latencies), so command lines and files written before units keep their meaning.
 * @module
 */

const UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  nanosecond: 1e-6,
  nanoseconds: 1e-6,
  us: 1e-3,
  "μs": 1e-3,
  microsecond: 1e-3,
  microseconds: 1e-3,
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
};

/**
 * Parses a duration into milliseconds. `bare` is the unit of a number without one ("s" or
 * "ms"). A SyntaxError names what is wrong; negative and non-finite values are refused.
 */
export function parseDuration(text: string, bare: "s" | "ms" = "s"): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * UNITS_MS[bare]!;
  const part = /\s*(\d+(?:\.\d+)?)\s*([a-zA-Zμ]+)/gy;
  let total = 0, at = 0, parts = 0;
  for (let m; (m = part.exec(t)) !== null;) {
    const unit = UNITS_MS[m[2]!.toLowerCase()];
    if (unit === undefined) {
      at = -1;
      break;
    }
    total += Number(m[1]) * unit;
    at = part.lastIndex;
    parts++;
  }
  if (!parts || at !== t.length || !Number.isFinite(total)) {
    throw new SyntaxError(
      `expected a duration such as 500ms, 90s, 5m, 2h or 1m30s (a bare number is ${
        bare === "s" ? "seconds" : "milliseconds"
      }), got ${JSON.stringify(text)}`,
    );
  }
  return total;
}

/** A duration for people: `850 ms`, `12.5 s`, `4 min 10 s`, `2 h 5 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), sec = total % 60;
  return h ? `${h} h ${m} min` : `${m} min${sec ? ` ${sec} s` : ""}`;
}
