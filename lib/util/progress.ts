/**
 * Progress of a long command: on a terminal, one line redrawn in place with done/total, elapsed
 * time and ETA; without one (cron, a pipe, a log), a plain line every `everyMs` (none for a
 * job shorter than that). Always on
 * stderr, so stdout holds results alone.
 * @module
 */

import { formatDuration } from "./duration.ts";

/** Options of a {@link Progress}. */
export interface ProgressOptions {
  /** What is counted ("fetches"). */
  unit: string;
  /** Planned total, when known (else the ETA comes from `endsAt`). */
  total?: number;
  /** When the job ends by the clock (ms since the epoch), e.g. a `--duration` run. */
  endsAt?: number;
  /** Redraw in place (a terminal) or print periodic lines (default: stderr is a terminal). */
  tty?: boolean;
  /** Without a terminal: the least time between lines, ms (default 10 s). */
  everyMs?: number;
  /** Where lines go (default stderr). */
  write?: (text: string) => void;
  /** The clock (ms since the epoch; tests pass their own). */
  now?: () => number;
}

/** A progress line on stderr. */
export class Progress {
  #o: Required<Omit<ProgressOptions, "total" | "endsAt">> & ProgressOptions;
  #start: number;
  #lastLine = -Infinity;
  #drawn = false;

  /** Starts counting now. */
  constructor(options: ProgressOptions) {
    const enc = new TextEncoder();
    this.#o = {
      tty: Deno.stderr.isTerminal(),
      everyMs: 10_000,
      write: (t) => Deno.stderr.writeSync(enc.encode(t)),
      now: Date.now,
      ...options,
    };
    this.#start = this.#o.now();
    this.#lastLine = this.#start; // without a terminal, the first line after `everyMs`
  }

  /** The line for `done` items and a detail, e.g. `12/40 fetches, 11 ok; elapsed 8.2 s, ETA 19 s`. */
  line(done: number, detail = ""): string {
    const o = this.#o;
    const now = o.now();
    const elapsed = now - this.#start;
    let eta: number | undefined;
    if (o.total && done > 0) eta = (elapsed / done) * (o.total - done);
    else if (o.endsAt !== undefined) eta = Math.max(0, o.endsAt - now);
    const count = o.total ? `${done}/${o.total} ${o.unit}` : `${done} ${o.unit}`;
    return `${count}${detail ? `, ${detail}` : ""}; elapsed ${formatDuration(elapsed)}${
      eta !== undefined ? `, ETA ${formatDuration(eta)}` : ""
    }`;
  }

  /** Shows progress: redraws the terminal line, or prints a line if `everyMs` has passed. */
  update(done: number, detail = ""): void {
    const o = this.#o;
    if (o.tty) {
      o.write(`\r\x1b[K${this.line(done, detail)}`);
      this.#drawn = true;
    } else if (o.now() - this.#lastLine >= o.everyMs) {
      this.#lastLine = o.now();
      o.write(`pctcp: ${this.line(done, detail)}\n`);
    }
  }

  /** Prints a message on its own line (not overwritten by the next redraw). */
  say(message: string): void {
    const o = this.#o;
    if (o.tty && this.#drawn) o.write(`\r\x1b[K`);
    o.write(`${message}\n`);
  }

  /** Ends the progress line (a terminal gets its newline). */
  done(): void {
    if (this.#o.tty && this.#drawn) this.#o.write("\n");
    this.#drawn = false;
  }
}
