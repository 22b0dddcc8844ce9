/**
 * Seeded fuzz inputs for the decoder and importer tests: random bytes of random lengths, bit
 * flips, truncations and extensions of valid encodings, and a small "error or consistent"
 * harness. Every input comes from lib/util/random.ts's seeded PRNG, so a failure names the
 * seed and index that reproduce it.
 * @module
 */

import { seededRandom } from "../lib/util/random.ts";

/** A seeded source of fuzz material. */
export class Fuzz {
  /** The PRNG, [0, 1). */
  readonly random: () => number;

  /** Seeds the PRNG (mulberry32). */
  constructor(readonly seed: number) {
    this.random = seededRandom(seed);
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  /** One of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.random() * 256);
    return out;
  }

  /** A copy of `b` with 1..`max` single bits flipped. */
  flipBits(b: Uint8Array, max = 8): Uint8Array {
    const out = b.slice();
    if (out.length === 0) return out;
    const n = this.int(1, max);
    for (let k = 0; k < n; k++) out[this.int(0, out.length - 1)]! ^= 1 << this.int(0, 7);
    return out;
  }

  /**
   * A mutant of a valid encoding: bit flips (half of the time), a truncation, an extension
   * with random bytes, or flips and a cut together.
   */
  mutate(b: Uint8Array): Uint8Array {
    switch (this.int(0, 3)) {
      case 0:
      case 1:
        return this.flipBits(b);
      case 2: {
        const cut = b.slice(0, this.int(0, b.length));
        return this.random() < 0.5 ? cut : concat(cut, this.bytes(this.int(1, 40)));
      }
      default:
        return this.flipBits(b.slice(0, this.int(0, b.length)), 3);
    }
  }
}

/** `a` then `b`. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** What {@link fuzzDecoder} saw. */
export interface FuzzTally {
  /** Inputs decoded (and found consistent). */
  accepted: number;
  /** Inputs refused with one of the allowed error classes. */
  rejected: number;
}

/**
 * Runs `decode` on every input: it must either return a value that `check` finds consistent
 * (check throws otherwise) or throw one of `errors`. Anything else — a TypeError from deep
 * inside, a plain Error, a value `check` refuses — fails with the input's index and bytes.
 */
export function fuzzDecoder<T>(
  name: string,
  inputs: Iterable<Uint8Array>,
  decode: (b: Uint8Array) => T,
  check: (value: T, input: Uint8Array) => void,
  errors: (abstract new (...a: never[]) => Error)[],
): FuzzTally {
  const tally = { accepted: 0, rejected: 0 };
  let i = 0;
  for (const input of inputs) {
    let value: T;
    try {
      value = decode(input);
    } catch (e) {
      if (!errors.some((c) => e instanceof c)) {
        throw new Error(
          `${name}: input ${i} threw ${String(e)} (not ${errors.map((c) => c.name)}): ${
            hexOf(input)
          }`,
        );
      }
      tally.rejected++;
      i++;
      continue;
    }
    try {
      check(value, input);
    } catch (e) {
      throw new Error(
        `${name}: input ${i} decoded inconsistently: ${(e as Error).message}: ${hexOf(input)}`,
      );
    }
    tally.accepted++;
    i++;
  }
  return tally;
}

function hexOf(b: Uint8Array): string {
  return Array.from(b.subarray(0, 64), (x) => x.toString(16).padStart(2, "0")).join("") +
    (b.length > 64 ? `… (${b.length} bytes)` : "");
}
