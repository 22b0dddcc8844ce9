/**
 * Tor's EWMA circuit priority (tor's circuitmux_ewma.c; CircuitPriorityHalflife): each circuit
 * keeps a cell count that decays with a half-life; the scheduler serves the circuit with the
 * lowest count first, so quiet circuits go before loud ones. Tor decays per 10 s tick; we
 * decay continuously, which orders circuits the same way.
 *
 * As in circuitmux_ewma.c, counts are kept scaled to a common epoch: a count `c` at time `t`
 * is stored as `c · 2^((t − epoch)/halflife)`. Decay multiplies every count by the same factor,
 * so stored values never change with time and compare as the decayed counts do; adding `n`
 * cells at `t` adds `n · 2^((t − epoch)/halflife)`. The epoch moves forward (all values are
 * divided by one factor) before that factor could overflow.
 * @module
 */

/** Past this scale factor every stored value is rescaled to a new epoch (2^40 ≈ 40 half-lives). */
const RESCALE_AT = 2 ** 40;

interface Entry {
  id: number;
  /** The count scaled to the epoch. */
  scaled: number;
  /** Order of entry into the active heap (ties go to the earlier one). */
  seq: number;
  /** Position in the heap, -1 when not active. */
  idx: number;
}

/** The default clock, one function for every instance (a channel, so a circuit, each). */
const monotonicNow = () => performance.now();

/** Decaying per-circuit cell counts. */
export class EwmaCounts {
  #halflifeMs: number;
  #entries = new Map<number, Entry>();
  #now: () => number;
  #epoch: number;
  #lastT = NaN;
  #lastScale = 1;
  #heap: Entry[] = [];
  #seq = 0;

  /** Default half-life 30 s (Tor's CircuitPriorityHalflifeMsec default). */
  constructor(halflifeMs = 30_000, now: () => number = monotonicNow) {
    this.#halflifeMs = halflifeMs;
    this.#now = now;
    this.#epoch = now();
  }

  /** 2^((t − epoch)/halflife), rescaling every value first when it grows too large. */
  #scale(t: number): number {
    if (t === this.#lastT) return this.#lastScale;
    let s = Math.pow(2, (t - this.#epoch) / this.#halflifeMs);
    if (s > RESCALE_AT) {
      for (const e of this.#entries.values()) e.scaled /= s;
      this.#epoch = t;
      s = 1;
    }
    this.#lastT = t;
    this.#lastScale = s;
    return s;
  }

  /** The decayed count of a circuit at `now` (default: the clock's time). */
  get(id: number, now: number = this.#now()): number {
    const e = this.#entries.get(id);
    return e ? e.scaled / this.#scale(now) : 0;
  }

  /** Records `n` cells sent on a circuit at `now` (default: the clock's time). */
  add(id: number, n = 1, now: number = this.#now()): void {
    let e = this.#entries.get(id);
    if (!e) {
      e = { id, scaled: 0, seq: 0, idx: -1 };
      this.#entries.set(id, e);
    }
    const scale = this.#scale(now); // first: it may rescale e.scaled
    e.scaled += n * scale;
    if (e.idx >= 0) this.#down(e.idx);
  }

  /** Forgets a circuit (and takes it out of the active set). */
  delete(id: number): void {
    this.deactivate(id);
    this.#entries.delete(id);
  }

  /** Of `ids`, the one with the lowest count (ties: first given). */
  pick(ids: Iterable<number>): number | undefined {
    let best: number | undefined, bestV = Infinity;
    for (const id of ids) {
      const v = this.#entries.get(id)?.scaled ?? 0;
      if (v < bestV) bestV = v, best = id;
    }
    return best;
  }

  // The active set: circuits with cells waiting, in a binary min-heap on (scaled, seq), so
  // the channel picks the quietest in O(1) and re-places it after sending in O(log n)
  // instead of scanning every circuit per cell.

  /** Puts a circuit in the active set (it has cells waiting); no-op when it is there. */
  activate(id: number): void {
    let e = this.#entries.get(id);
    if (!e) {
      e = { id, scaled: 0, seq: 0, idx: -1 };
      this.#entries.set(id, e);
    }
    if (e.idx >= 0) return;
    e.seq = this.#seq++;
    e.idx = this.#heap.length;
    this.#heap.push(e);
    this.#up(e.idx);
  }

  /** Takes a circuit out of the active set (its queue is empty); its count is kept. */
  deactivate(id: number): void {
    const e = this.#entries.get(id);
    if (!e || e.idx < 0) return;
    const h = this.#heap, i = e.idx, last = h.pop()!;
    e.idx = -1;
    // Emptied: made anew, as V8 keeps a popped array's storage (an idle channel holds none).
    if (h.length === 0) this.#heap = [];
    if (last !== e) {
      h[i] = last;
      last.idx = i;
      this.#down(i);
      this.#up(last.idx);
    }
  }

  /** The active circuit with the lowest count (ties: the one active longest), if any. */
  get top(): number | undefined {
    return this.#heap[0]?.id;
  }

  /** Number of circuits in the active set. */
  get active(): number {
    return this.#heap.length;
  }

  #less(a: Entry, b: Entry): boolean {
    return a.scaled < b.scaled || (a.scaled === b.scaled && a.seq < b.seq);
  }

  #up(i: number): void {
    const h = this.#heap, e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1, pe = h[p]!;
      if (!this.#less(e, pe)) break;
      h[i] = pe, pe.idx = i, i = p;
    }
    h[i] = e, e.idx = i;
  }

  #down(i: number): void {
    const h = this.#heap, n = h.length, e = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.#less(h[c + 1]!, h[c]!)) c++;
      const ce = h[c]!;
      if (!this.#less(ce, e)) break;
      h[i] = ce, ce.idx = i, i = c;
    }
    h[i] = e, e.idx = i;
  }
}
