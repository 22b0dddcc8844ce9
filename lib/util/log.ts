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
