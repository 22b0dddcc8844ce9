/**
 * The queue of circuit handshakes waiting for the CPU (C tor onion_queue.c and cpuworker.c).
 * C tor runs ntor on worker threads; a relay here runs it on its one event loop, so a flood
 * of CREATE2 cells, handled one after another inside one read, would starve every other
 * circuit for seconds. Instead handshakes wait in this FIFO and are run in slices of a few
 * milliseconds, each followed by a pause as long as the slice (handshakes take at most half
 * the CPU while others wait, as C tor's worker threads leave the main loop its own core), with
 * C tor's two overload rules:
 *
 * * no room: with at least 50 waiting, a new handshake is refused when the queue would take
 *   longer than `MaxOnionQueueDelay` (default 1750 ms) to clear at the measured time per
 *   handshake (have_room_for_onionskin); the CREATE2 is answered DESTROY RESOURCELIMIT;
 * * too old: a handshake waiting longer than `onion_queue_wait_cutoff` (default 5 s) is
 *   dropped the same way (onion_pending_add "cull elderly requests").
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";

/** C tor's defaults (onion_queue.c). */
export const ONION_QUEUE_DEFAULTS = {
  /** MaxOnionQueueDelay (ONION_QUEUE_MAX_DELAY_DEFAULT), ms. */
  maxDelayMs: 1750,
  /** onion_queue_wait_cutoff (ONION_QUEUE_WAIT_CUTOFF_DEFAULT, 5 s), ms. */
  waitCutoffMs: 5000,
  /** Below this many waiting there is always room (have_room_for_onionskin). */
  alwaysRoom: 50,
  /** How long one slice of handshakes may run before the event loop gets a turn, ms. */
  sliceMs: 4,
  /** Share of the time handshakes may take while they queue (the pause after a slice). */
  cpuShare: 0.5,
};

/** Options of an onion queue. */
export type OnionQueueOptions = Partial<typeof ONION_QUEUE_DEFAULTS> & {
  /** Clock in ms (default performance.now). */
  now?: () => number;
};

/** One waiting handshake. */
export interface OnionJob {
  /** Runs the handshake (and answers CREATED2), unless the circuit went meanwhile. */
  run(): void;
  /** Dropped for overload: answer DESTROY RESOURCELIMIT. */
  expire(): void;
}

/** The FIFO of handshakes of one relay. */
export class OnionQueue {
  #o: typeof ONION_QUEUE_DEFAULTS;
  #now: () => number;
  #jobs: { job: OnionJob; at: number }[] = [];
  #head = 0;
  #timer: ReturnType<typeof setImmediate> | undefined;
  #pause: ReturnType<typeof setTimeout> | undefined;
  /** When this turn's inline handshakes began (undefined: none ran in this turn yet). */
  #turnStart: number | undefined;
  /** Measured time of one handshake (EWMA), ms; ntor is ~0.2–1 ms here. */
  #perJobMs = 0.5;
  /** Handshakes refused or dropped for overload. */
  dropped = 0;

  /** A queue with C tor's defaults unless `options` say otherwise. */
  constructor(options: OnionQueueOptions = {}) {
    const { now, ...rest } = options;
    this.#o = { ...ONION_QUEUE_DEFAULTS, ...rest };
    this.#now = now ?? (() => performance.now());
  }

  /** Handshakes waiting. */
  get length(): number {
    return this.#jobs.length - this.#head;
  }

  /**
   * Runs a handshake now when nothing waits and this turn of the event loop has not yet
   * spent a slice on handshakes (so an idle relay answers in order, at once); else queues
   * it. False (nothing run or queued) when there is no room for it.
   */
  add(job: OnionJob): boolean {
    const n = this.length;
    if (n === 0 && !this.#pause && !this.#timer) {
      const t0 = this.#now();
      if (this.#turnStart === undefined) {
        this.#turnStart = t0;
        queueMicrotask(() => setImmediate(() => this.#turnStart = undefined));
      }
      if (t0 - this.#turnStart < this.#o.sliceMs) {
        job.run();
        this.#perJobMs = this.#perJobMs * 0.9 + (this.#now() - t0) * 0.1;
        return true;
      }
    }
    if (n >= this.#o.alwaysRoom && n * this.#perJobMs > this.#o.maxDelayMs) {
      this.dropped++;
      return false;
    }
    this.#jobs.push({ job, at: this.#now() });
    if (!this.#pause) this.#timer ??= setImmediate(() => this.#drain());
    return true;
  }

  #drain(): void {
    this.#timer = undefined;
    const start = this.#now();
    while (this.length > 0) {
      const { job, at } = this.#jobs[this.#head]!;
      this.#jobs[this.#head++] = undefined as never;
      const t0 = this.#now();
      if (t0 - at > this.#o.waitCutoffMs) {
        this.dropped++;
        job.expire();
      } else {
        job.run();
        const t1 = this.#now();
        this.#perJobMs = this.#perJobMs * 0.9 + (t1 - t0) * 0.1;
      }
      if (this.#now() - start >= this.#o.sliceMs) break;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#jobs.length) {
      this.#jobs = this.#jobs.slice(this.#head);
      this.#head = 0;
    }
    if (this.length === 0) {
      this.#jobs = [];
      this.#head = 0;
      return;
    }
    // More wait: pause so that the rest of the relay gets its share of the CPU.
    const ran = this.#now() - start;
    const share = Math.min(1, Math.max(0.05, this.#o.cpuShare));
    const wait = (ran * (1 - share)) / share;
    if (wait < 1) this.#timer = setImmediate(() => this.#drain());
    else {
      this.#pause = setTimeout(() => {
        this.#pause = undefined;
        this.#drain();
      }, wait);
    }
  }

  /** Drops everything waiting (the relay stops); no job is run or expired. */
  close(): void {
    if (this.#timer) clearImmediate(this.#timer);
    clearTimeout(this.#pause);
    this.#timer = undefined;
    this.#pause = undefined;
    this.#jobs = [];
    this.#head = 0;
  }
}
