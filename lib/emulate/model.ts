/**
 * The link model, sans IO: packets and times in, packets due out. Times are milliseconds on
 * any monotonic clock the caller passes (a fake one in tests).
 *
 * A packet from host s to host d goes through, in order (as Shadow models a path):
 * 1. s's upload link: a drop-tail FIFO served at s's up rate (bytes of the IP packet);
 * 2. the path s → d: loss (Bernoulli, or a Gilbert-Elliott chain for bursts), then one-way
 *    latency plus jitter drawn uniformly in ±jitter, never earlier than the previous packet
 *    on that path (no reordering, no duplication);
 * 3. d's download link: a drop-tail FIFO served at d's down rate;
 * then it is due for delivery. Queues are kept as "busy until" times (the backlog in bytes is
 * (busyUntil − t) × rate), so a packet costs O(log n) for the event heap and nothing else.
 * @module
 */

import { seededRandom } from "../util/random.ts";
import type { ResolvedNetwork } from "./config.ts";

/** Counters of the model. */
export interface ModelCounters {
  /** Packets offered. */
  sent: number;
  /** Packets delivered. */
  delivered: number;
  /** Bytes delivered. */
  deliveredBytes: number;
  /** Dropped by a full upload queue. */
  droppedUpQueue: number;
  /** Dropped by path loss. */
  droppedLoss: number;
  /** Dropped by a full download queue. */
  droppedDownQueue: number;
}

interface Ev<P> {
  t: number;
  seq: number;
  /** 0: arrives at the receiver's download queue; 1: due for delivery. */
  stage: 0 | 1;
  src: number;
  dst: number;
  size: number;
  packet: P;
}

/** A binary min-heap on (t, seq). */
class EventHeap<P> {
  #a: Ev<P>[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): Ev<P> | undefined {
    return this.#a[0];
  }
  #less(x: Ev<P>, y: Ev<P>): boolean {
    return x.t < y.t || (x.t === y.t && x.seq < y.seq);
  }
  push(e: Ev<P>): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Ev<P> | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.#less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** The emulated network: call `send` for each packet read, `poll` to get packets due. */
export class LinkModel<P> {
  #net: ResolvedNetwork;
  #heap = new EventHeap<P>();
  #seq = 0;
  #random: () => number;
  #upFree: number[];
  #downFree: number[];
  /** Last scheduled arrival per path (no reordering). */
  #lastArrival: Float64Array;
  /** Gilbert-Elliott state per path: true = bad. */
  #bad: Uint8Array;
  #n: number;
  /** Counters. */
  readonly counters: ModelCounters = {
    sent: 0,
    delivered: 0,
    deliveredBytes: 0,
    droppedUpQueue: 0,
    droppedLoss: 0,
    droppedDownQueue: 0,
  };

  /** A model of `net`, its randomness from `net.seed`. */
  constructor(net: ResolvedNetwork) {
    this.#net = net;
    this.#n = net.hosts.length;
    this.#random = seededRandom(net.seed);
    this.#upFree = net.hosts.map(() => -Infinity);
    this.#downFree = net.hosts.map(() => -Infinity);
    this.#lastArrival = new Float64Array(this.#n * this.#n).fill(-Infinity);
    this.#bad = new Uint8Array(this.#n * this.#n);
  }

  /** Packets waiting in the model. */
  get pending(): number {
    return this.#heap.size;
  }

  /**
   * Offers a packet of `size` bytes from host `src` to host `dst` at time `now`; false if it
   * was dropped at once (full upload queue, path loss).
   */
  send(now: number, src: number, dst: number, size: number, packet: P): boolean {
    this.counters.sent++;
    const h = this.#net.hosts[src]!;
    let depart = now;
    if (Number.isFinite(h.upBps)) {
      const free = Math.max(now, this.#upFree[src]!);
      if ((free - now) * h.upBps / 1000 + size > h.upQueueBytes) {
        this.counters.droppedUpQueue++;
        return false;
      }
      depart = free + (size * 1000) / h.upBps;
      this.#upFree[src] = depart;
    }
    const k = src * this.#n + dst;
    const p = this.#net.paths[src]![dst]!;
    if (p.loss > 0 && this.#lost(k, p.loss, p.lossBurst)) {
      this.counters.droppedLoss++;
      return false;
    }
    let t = depart + p.latencyMs;
    if (p.jitterMs > 0) t = Math.max(depart, t + (2 * this.#random() - 1) * p.jitterMs);
    if (t < this.#lastArrival[k]!) t = this.#lastArrival[k]!;
    this.#lastArrival[k] = t;
    this.#heap.push({ t, seq: this.#seq++, stage: 0, src, dst, size, packet });
    return true;
  }

  #lost(k: number, loss: number, burst: number): boolean {
    if (burst <= 1) return this.#random() < loss;
    // Gilbert-Elliott with a bad state that loses everything and a loss-free good state:
    // mean burst = 1/r, stationary P(bad) = p/(p + r) = loss.
    const r = 1 / burst;
    const p = loss >= 1 ? 1 : (loss * r) / (1 - loss);
    const bad = this.#bad[k] === 1;
    const next = bad ? this.#random() >= r : this.#random() < p;
    this.#bad[k] = next ? 1 : 0;
    return next;
  }

  /** Time of the next event, or undefined when nothing waits. */
  nextTime(): number | undefined {
    return this.#heap.peek()?.t;
  }

  /**
   * Hands every packet due by `now` to `deliver(dst, packet, src, size)`, in time order, and
   * packets a full download queue drops to `drop` (so their buffers can be reused).
   */
  poll(
    now: number,
    deliver: (dst: number, packet: P, src: number, size: number) => void,
    drop?: (packet: P) => void,
  ): number {
    let n = 0;
    for (;;) {
      const e = this.#heap.peek();
      if (!e || e.t > now) return n;
      this.#heap.pop();
      if (e.stage === 0) {
        const h = this.#net.hosts[e.dst]!;
        if (Number.isFinite(h.downBps)) {
          const free = Math.max(e.t, this.#downFree[e.dst]!);
          if ((free - e.t) * h.downBps / 1000 + e.size > h.downQueueBytes) {
            this.counters.droppedDownQueue++;
            drop?.(e.packet);
            continue;
          }
          const done = free + (e.size * 1000) / h.downBps;
          this.#downFree[e.dst] = done;
          if (done > now) {
            this.#heap.push({ ...e, t: done, seq: this.#seq++, stage: 1 });
            continue;
          }
        }
      }
      this.counters.delivered++;
      this.counters.deliveredBytes += e.size;
      deliver(e.dst, e.packet, e.src, e.size);
      n++;
    }
  }
}
