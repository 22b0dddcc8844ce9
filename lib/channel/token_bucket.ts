/**
 * A Tor-style token bucket (BandwidthRate / BandwidthBurst, tor's token_bucket_rw): tokens are
 * bytes, refilled at `rate` bytes per second up to `burst`. Tor refills every 100 ms
 * (TokenBucketRefillInterval); we refill continuously, which is the same long-run rate with
 * finer grain.
 *
 * Waiters are served lowest priority value first, as Tor's scheduler serves the channel
 * whose best circuit has the lowest EWMA count (scheduler_compare_channels): so quiet
 * circuits go first across the relay's links, not only within one link.
 * @module
 */

interface Waiter {
  n: number;
  priority: number;
  seq: number;
  resolve: () => void;
}

/** True when `a` is served before `b`: lower priority value, then arrival order. */
function before(a: Waiter, b: Waiter): boolean {
  return a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq);
}

/** A binary min-heap of waiters: O(log n) per take instead of a sort of every waiter. */
class WaiterHeap {
  #a: Waiter[] = [];

  get length(): number {
    return this.#a.length;
  }

  peek(): Waiter | undefined {
    return this.#a[0];
  }

  push(w: Waiter): void {
    const a = this.#a;
    let i = a.push(w) - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!before(w, a[up]!)) break;
      a[i] = a[up]!;
      i = up;
    }
    a[i] = w;
  }

  pop(): Waiter | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      let best = last;
      if (l < a.length && before(a[l]!, best)) m = l, best = a[l]!;
      if (r < a.length && before(a[r]!, best)) m = r;
      if (m === i) break;
      a[i] = a[m]!;
      i = m;
    }
    a[i] = last;
    return top;
  }

  drain(): Waiter[] {
    const all = this.#a;
    this.#a = [];
    return all.sort((x, y) => (before(x, y) ? -1 : 1));
  }
}

/** A byte-rate limiter shared by every link of a relay. */
export class TokenBucket {
  /** Refill rate (bytes per second). */
  readonly rate: number;
  /** Largest number of tokens held (bytes). */
  readonly burst: number;
  #tokens: number;
  #last: number;
  #now: () => number;
  #waiters = new WaiterHeap();
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `rate` and `burst` in bytes (per second); `now` in ms (for tests). */
  constructor(rate: number, burst = rate, now: () => number = () => performance.now()) {
    if (!(rate > 0) || !(burst > 0)) {
      throw new RangeError(`token bucket rate and burst must be > 0`);
    }
    this.rate = rate;
    this.burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#last = now();
  }

  #refill(): void {
    const t = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) / 1000) * this.rate);
    this.#last = t;
  }

  /** Tokens available now (may be negative after a take larger than the burst). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Waiters queued. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes `n` bytes if available now and nobody waits; true on success. */
  tryTake(n: number): boolean {
    this.#refill();
    if (this.#waiters.length === 0 && this.#tokens >= Math.min(n, this.burst)) {
      this.#tokens -= n;
      return true;
    }
    return false;
  }

  /**
   * Waits until `n` bytes (a take larger than the burst waits for a full bucket and leaves
   * it in debt) are available and this waiter has the lowest priority value, then takes them.
   */
  take(n: number, priority = 0): Promise<void> {
    if (this.tryTake(n)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ n, priority, seq: this.#seq++, resolve });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#serve();
  }

  #serve(): void {
    this.#timer = undefined;
    this.#refill();
    while (this.#waiters.length) {
      const w = this.#waiters.peek()!;
      const need = Math.min(w.n, this.burst);
      if (this.#tokens < need) {
        const ms = Math.max(1, ((need - this.#tokens) / this.rate) * 1000);
        this.#timer = setTimeout(() => this.#serve(), ms);
        return;
      }
      this.#tokens -= w.n;
      this.#waiters.pop();
      w.resolve();
    }
  }

  /** Releases every waiter (shutting down). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiters.drain()) w.resolve();
  }
}
