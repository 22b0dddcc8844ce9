/**
 * The one poll-until loop: try a check every `everyMs` until it gives a value, the time runs
 * out (a TimeoutError naming what was awaited and the last reason), or a signal stops it.
 * Replaces the hand-written deadline loops of the launcher, the C tor test network and the
 * experiment (issue 21).
 * @module
 */

/** Raised when what {@link pollUntil} waited for did not come in time. */
export class PollTimeoutError extends Error {
  /** Error name. */
  override name = "PollTimeoutError";
}

/** Options of {@link pollUntil}. */
export interface PollOptions {
  /** What is awaited, for the error ("the client's SOCKS port"). */
  what: string;
  /** Give up after this many ms. */
  timeoutMs: number;
  /** Pause between tries, ms (default 100). */
  everyMs?: number;
  /** Stops waiting (the signal's reason is thrown). */
  signal?: AbortSignal;
}

/**
 * Calls `check` until it returns a value other than undefined and returns that value. `check`
 * may throw to stop at once (e.g. "the process exited"), or return `{ retry: reason }` to say
 * why not yet (the reason ends up in the timeout's message).
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined | { retry: string }> | T | undefined | { retry: string },
  options: PollOptions,
): Promise<T> {
  const t0 = performance.now();
  const every = options.everyMs ?? 100;
  let last = "";
  for (;;) {
    options.signal?.throwIfAborted();
    const v = await check();
    if (v !== undefined) {
      if (typeof v === "object" && v !== null && "retry" in (v as object)) {
        last = (v as { retry: string }).retry;
      } else return v as T;
    }
    const elapsed = performance.now() - t0;
    if (elapsed >= options.timeoutMs) {
      throw new PollTimeoutError(
        `timed out after ${Math.round(elapsed)} ms waiting for ${options.what}${
          last ? `: ${last}` : ""
        }`,
      );
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(every, options.timeoutMs - elapsed));
      function done() {
        clearTimeout(t);
        options.signal?.removeEventListener("abort", done);
        resolve();
      }
      options.signal?.addEventListener("abort", done, { once: true });
    });
  }
}
