/**
 * Tor's EWMA circuit priority (tor's circuitmux_ewma.c; CircuitPriorityHalflife): each circuit
 * keeps a cell count that decays with a half-life; the scheduler serves the circuit with the
 * lowest count first, so quiet circuits go before loud ones. Tor decays per 10 s tick; we
 * decay continuously, which orders circuits the same way.
 * @module
 */

/** Decaying per-circuit cell counts. */
export class EwmaCounts {
  #halflifeMs: number;
  #counts = new Map<number, { value: number; at: number }>();
  #now: () => number;

  /** Default half-life 30 s (Tor's CircuitPriorityHalflifeMsec default). */
  constructor(halflifeMs = 30_000, now: () => number = () => performance.now()) {
    this.#halflifeMs = halflifeMs;
    this.#now = now;
  }

  /** The decayed count of a circuit now. */
  get(id: number): number {
    const c = this.#counts.get(id);
    if (!c) return 0;
    const t = this.#now();
    if (t !== c.at) {
      c.value *= Math.pow(0.5, (t - c.at) / this.#halflifeMs);
      c.at = t;
    }
    return c.value;
  }

  /** Records `n` cells sent on a circuit. */
  add(id: number, n = 1): void {
    const v = this.get(id);
    this.#counts.set(id, { value: v + n, at: this.#now() });
  }

  /** Forgets a circuit. */
  delete(id: number): void {
    this.#counts.delete(id);
  }

  /** Of `ids`, the one with the lowest count (ties: first given). */
  pick(ids: Iterable<number>): number | undefined {
    let best: number | undefined, bestV = Infinity;
    for (const id of ids) {
      const v = this.get(id);
      if (v < bestV) bestV = v, best = id;
    }
    return best;
  }
}
