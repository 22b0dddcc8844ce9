/**
 * A tiny leveled logger writing one line per event to stderr.
 * @module
 */

/** Log levels, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A logger. */
export interface Logger {
  /** Verbose detail. */
  debug(msg: string): void;
  /** Normal events. */
  info(msg: string): void;
  /** Something refused or failed that the process survives. */
  warn(msg: string): void;
  /** Failures. */
  error(msg: string): void;
}

const ORDER: LogLevel[] = ["debug", "info", "warn", "error"];

/** A logger that prints `TIME LEVEL [name] msg` at `level` and above. */
export function makeLogger(name: string, level: LogLevel = "info"): Logger {
  const min = ORDER.indexOf(level);
  const out = (l: LogLevel) => (msg: string) => {
    if (ORDER.indexOf(l) >= min) console.error(`${new Date().toISOString()} ${l} [${name}] ${msg}`);
  };
  return { debug: out("debug"), info: out("info"), warn: out("warn"), error: out("error") };
}

/** A logger that drops everything. */
export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Options of {@link rateLimitWarnings}. */
export interface WarnLimit {
  /** Lines of one shape let through per window (default 5). */
  burst?: number;
  /** The window, ms (default 10 s). */
  windowMs?: number;
  /** Clock, ms (default performance.now). */
  now?: () => number;
}

/**
 * A logger whose warnings and errors of one shape (the message with its numbers taken out: "CREATE2
 * # on link # refused: onion queue full") are limited to `burst` lines per window, as C tor's
 * `log_fn_ratelim` limits its own: a flood of refused cells must not spend the relay's CPU
 * writing one line per cell. The first line of the next window says how many were suppressed.
 */
export function rateLimitWarnings(log: Logger, options: WarnLimit = {}): Logger {
  const burst = options.burst ?? 5, windowMs = options.windowMs ?? 10_000;
  const now = options.now ?? (() => performance.now());
  const shapes = new Map<string, { start: number; count: number; suppressed: number }>();
  const limited = (out: (msg: string) => void) => (msg: string) => {
    const key = msg.replace(/[0-9]+/g, "#");
    const t = now();
    let s = shapes.get(key);
    if (!s || t - s.start >= windowMs) {
      const suppressed = s?.suppressed ?? 0;
      if (!s && shapes.size >= 1000) shapes.clear(); // bounded: shapes are few, names many
      shapes.set(key, s = { start: t, count: 0, suppressed: 0 });
      if (suppressed) {
        msg += ` [${suppressed} similar message(s) suppressed in the last ${
          Math.round(windowMs / 1000)
        } s]`;
      }
    }
    if (++s.count > burst) {
      s.suppressed++;
      return;
    }
    out(msg);
  };
  return {
    debug: (m) => log.debug(m),
    info: (m) => log.info(m),
    warn: limited((m) => log.warn(m)),
    error: limited((m) => log.error(m)),
  };
}
