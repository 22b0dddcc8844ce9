/**
 * A first-in first-out queue of byte chunks whose `shift` costs O(1) at any length.
 * `Array.prototype.shift` moves every element once an array is too large for V8 to trim it in
 * place (tens of thousands of entries): a flood of 18,000 refused CREATE2 cells queued as many
 * DESTROY cells and spent a second of a relay's CPU in `shift` alone (bench/hostile_create_flood_procs.ts).
 * @module
 */

/** The FIFO: pushed at the tail, taken from the head. */
export class ChunkFifo {
  #items: (Uint8Array | undefined)[] = [];
  #head = 0;

  /** Chunks waiting. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Adds chunks at the tail. */
  push(...chunks: Uint8Array[]): void {
    for (const c of chunks) this.#items.push(c);
  }

  /** Takes the head chunk (undefined when empty); no storage is kept once empty. */
  shift(): Uint8Array | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const v = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) this.clear();
    else if (this.#head >= 4096 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return v;
  }

  /** Drops everything. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
