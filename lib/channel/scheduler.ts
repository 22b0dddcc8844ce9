/**
 * A relay's cell scheduler across all its channels: `vanilla` or `kist`.
 *
 * - `vanilla` (Tor before 0.3.2, the PCTCP paper's baseline): each channel writes its
 *   circuits' cells (EWMA order within the channel) whenever its socket takes them, so the
 *   backlog moves into the kernel's send buffer, where nothing can reorder it.
 * - `kist` (Tor since 0.3.2; scheduler_kist.c): channels with cells wait for the next run
 *   (every 10 ms); a run reads each pending socket's TCP state, computes its write limit and
 *   moves cells, best circuit (lowest EWMA) across ALL channels first, into the channels'
 *   output buffers, which are then written. The backlog stays in the relay's circuit
 *   queues, where EWMA can let a quiet circuit pass a loud one. The decisions are
 *   {@link kistPlan}'s (no I/O); this driver feeds it socket state ({@link SocketInfo}).
 *
 * Both kinds keep a registry of channels, so a relay can report where its bytes wait
 * (circuit queues, output buffers, kernel not-sent and unacked bytes).
 * @module
 */

import { KIST_DEFAULTS, kistLimit, kistPlan } from "./kist.ts";
import type { KistCircuitInput } from "./kist.ts";
import type { TcpSocketState } from "./socket_info.ts";

/** The scheduler kinds. */
export const SCHEDULER_KINDS = ["vanilla", "kist"] as const;
/** A scheduler kind. */
export type SchedulerKind = typeof SCHEDULER_KINDS[number];

/** What the scheduler needs of a channel (Channel implements it). */
export interface SchedulableChannel {
  /** True once closed. */
  readonly closed: boolean;
  /** Circuits with cells in their queues, with EWMA counts. */
  kistCircuits(): KistCircuitInput[];
  /** Moves `cells` cells of circuit `circId` into the output buffer (charging its EWMA). */
  kistMove(circId: number, cells: number): void;
  /** Starts writing the output buffer. */
  kistFlush(): void;
  /** Bytes in the output buffer (scheduled, not yet in the kernel). */
  readonly outbufBytes: number;
  /** Bytes in the circuit queues. */
  readonly circuitQueueBytes: number;
  /** The kernel's state of the channel's socket, when it can be read. */
  socketState(): TcpSocketState | undefined;
  /** True for a link between two relays (queue reports count only these). */
  readonly betweenRelays: boolean;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  /** Kind (default "vanilla"). */
  kind?: SchedulerKind;
  /** KIST run interval, ms (default 10, tor's KISTSchedRunInterval). */
  runIntervalMs?: number;
  /** KIST's extra congestion windows in the kernel (default 1.0, KISTSockBufSizeFactor). */
  sockBufSizeFactor?: number;
}

/** Where a relay's outgoing bytes wait now, summed over its relay-to-relay channels. */
export interface QueueSnapshot {
  /** Channels counted. */
  channels: number;
  /** Bytes in circuit queues (the scheduler may still reorder these). */
  circuitQueueBytes: number;
  /** Bytes in output buffers (scheduled, waiting for the token bucket or the socket). */
  outbufBytes: number;
  /** Bytes in the kernel not yet sent (SIOCOUTQNSD). */
  kernelNotsentBytes: number;
  /** Bytes sent and not yet acknowledged (SIOCOUTQ − SIOCOUTQNSD). */
  kernelUnackedBytes: number;
  /** Sockets whose kernel state could be read. */
  socketsRead: number;
}

/** Counters of a scheduler. */
export interface SchedulerStats {
  /** Kind. */
  kind: SchedulerKind;
  /** KIST run interval, ms. */
  runIntervalMs: number;
  /** KIST sock_buf_size_factor. */
  sockBufSizeFactor: number;
  /** KIST runs so far. */
  runs: number;
  /** Cells KIST moved to output buffers. */
  cellsScheduled: number;
  /** Socket limits computed from TCP_INFO, and by the fallback (no kernel state). */
  limits: { tcpInfo: number; fallback: number };
  /** Channel-runs that ended with cells left because the socket's limit was reached (how
   * often KIST, rather than the lack of cells, decided). */
  limited: number;
  /** Channel-runs in all. */
  channelRuns: number;
  /**
   * Times a socket's notsent exceeded what the previous run allowed (notsent, outbuf and
   * limit then). Control cells bypass KIST, and a retransmission timeout moves unacked
   * bytes back to not-sent (snd_nxt rewinds), so a few are expected on lossy links.
   */
  overruns: number;
  /** The largest overrun seen, in bytes past the bound (framing slack included). */
  overrunMaxBytes: number;
  /** Queues now. */
  queues: QueueSnapshot;
}

/**
 * Bytes a run may overshoot its bound without counting as an overrun: the link wraps cells in
 * frames (a 4-byte length, plus a 16-byte tag when encrypted), which the cell-level limit does
 * not see; a run's writes span a few frames at most.
 */
const FRAMING_SLACK = 4 * 20;

/** One relay's scheduler. */
export class ChannelScheduler {
  /** vanilla or kist. */
  readonly kind: SchedulerKind;
  /** KIST's run interval (ms; tor's KISTSchedRunInterval, 10 by default). */
  readonly runIntervalMs: number;
  /** KIST's sock_buf_size_factor (tor's KISTSockBufSizeFactor, 1.0 by default). */
  readonly sockBufSizeFactor: number;
  #channels = new Set<SchedulableChannel>();
  #pending = new Set<SchedulableChannel>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastRun = -Infinity;
  #runs = 0;
  #cells = 0;
  #limits = { tcpInfo: 0, fallback: 0 };
  #overruns = 0;
  #overrunMax = 0;
  #limited = 0;
  #channelRuns = 0;
  /** Per channel: the kernel bytes the last run allowed (notsent then + limit). */
  #bound = new WeakMap<SchedulableChannel, number>();
  #closed = false;

  /** A scheduler of the given kind (default vanilla). */
  constructor(options: SchedulerOptions = {}) {
    this.kind = options.kind ?? "vanilla";
    if (!SCHEDULER_KINDS.includes(this.kind)) {
      throw new RangeError(`unknown scheduler: ${this.kind}`);
    }
    this.runIntervalMs = options.runIntervalMs ?? KIST_DEFAULTS.runIntervalMs;
    this.sockBufSizeFactor = options.sockBufSizeFactor ?? KIST_DEFAULTS.sockBufSizeFactor;
    if (!(this.runIntervalMs > 0)) throw new RangeError("KIST run interval must be > 0");
    if (!(this.sockBufSizeFactor >= 0)) throw new RangeError("sock_buf_size_factor must be ≥ 0");
  }

  /** Registers a channel (for queue reports; KIST schedules it). */
  attach(ch: SchedulableChannel): void {
    this.#channels.add(ch);
  }

  /** Forgets a channel. */
  detach(ch: SchedulableChannel): void {
    this.#channels.delete(ch);
    this.#pending.delete(ch);
  }

  /** KIST: the channel has cells; it is served at the next run. */
  wantsWrite(ch: SchedulableChannel): void {
    if (this.#closed || ch.closed) return;
    this.#pending.add(ch);
    if (this.#timer !== undefined) return;
    // kist_scheduler_schedule: run at last run + interval (at once if that has passed).
    const wait = Math.max(0, this.#lastRun + this.runIntervalMs - performance.now());
    this.#timer = setTimeout(() => this.run(), wait);
  }

  /** One KIST run (kist_scheduler_run); called by the timer, public for tests. */
  run(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    this.#lastRun = performance.now();
    this.#runs++;
    const chans = [...this.#pending].filter((c) => !c.closed);
    this.#pending.clear();
    const inputs = chans.map((c) => {
      const s = c.socketState();
      if (s) {
        this.#limits.tcpInfo++;
        const before = this.#bound.get(c);
        if (before !== undefined && s.notsent > before + FRAMING_SLACK) {
          this.#overruns++;
          this.#overrunMax = Math.max(this.#overrunMax, s.notsent - before);
        }
      } else this.#limits.fallback++;
      const limit = kistLimit(s, c.outbufBytes, this.sockBufSizeFactor);
      if (s) this.#bound.set(c, s.notsent + c.outbufBytes + limit);
      return { limit, circuits: c.kistCircuits() };
    });
    const plan = kistPlan(inputs);
    this.#channelRuns += chans.length;
    this.#limited += plan.blocked.length;
    for (const m of plan.moves) {
      chans[m.channel]!.kistMove(m.circuit, m.cells);
      this.#cells += m.cells;
    }
    for (const c of chans) c.kistFlush();
    // Channels with cells left and no room wait for the next run (to_readd).
    for (const i of plan.blocked) this.wantsWrite(chans[i]!);
  }

  /** Where bytes wait now (relay-to-relay channels). */
  queues(): QueueSnapshot {
    const q: QueueSnapshot = {
      channels: 0,
      circuitQueueBytes: 0,
      outbufBytes: 0,
      kernelNotsentBytes: 0,
      kernelUnackedBytes: 0,
      socketsRead: 0,
    };
    for (const c of this.#channels) {
      if (c.closed || !c.betweenRelays) continue;
      q.channels++;
      q.circuitQueueBytes += c.circuitQueueBytes;
      q.outbufBytes += c.outbufBytes;
      const s = c.socketState();
      if (s) {
        q.socketsRead++;
        q.kernelNotsentBytes += s.notsent;
        q.kernelUnackedBytes += Math.max(0, s.outq - s.notsent);
      }
    }
    return q;
  }

  /** Counters and queues. */
  stats(): SchedulerStats {
    return {
      kind: this.kind,
      runIntervalMs: this.runIntervalMs,
      sockBufSizeFactor: this.sockBufSizeFactor,
      runs: this.#runs,
      cellsScheduled: this.#cells,
      limits: { ...this.#limits },
      overruns: this.#overruns,
      overrunMaxBytes: this.#overrunMax,
      limited: this.#limited,
      channelRuns: this.#channelRuns,
      queues: this.queues(),
    };
  }

  /** Stops the timer. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }
}
