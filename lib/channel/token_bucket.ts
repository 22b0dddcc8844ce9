/**
 * A Tor-style token bucket (BandwidthRate / BandwidthBurst, tor's token_bucket_rw): tokens are
 * bytes, refilled at `rate` bytes per second up to `burst`. Tor refills every 100 ms
 * (TokenBucketRefillInterval); we refill continuously on each take, which is the same
 * long-run rate with finer grain.
 * @module
 */

/** A byte-rate limiter shared by every link of a relay. */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #last: number;
  #now: () => number;

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

  /** Takes `n` bytes if available now; true on success. */
  tryTake(n: number): boolean {
    this.#refill();
    if (this.#tokens >= n) {
      this.#tokens -= n;
      return true;
    }
    return false;
  }

  /** Milliseconds until `n` bytes are available. */
  waitMs(n: number): number {
    this.#refill();
    return this.#tokens >= n ? 0 : ((Math.min(n, this.burst) - this.#tokens) / this.rate) * 1000;
  }

  /** Waits until `n` bytes (clamped to the burst) are available, then takes them. */
  async take(n: number): Promise<void> {
    const want = Math.min(n, this.burst);
    for (;;) {
      this.#refill();
      if (this.#tokens >= want) {
        this.#tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, this.waitMs(want))));
    }
  }
}
