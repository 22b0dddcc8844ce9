/**
 * Relay cell crypto (tor-spec §5.5 "Routing relay cells", §6.1): per hop and direction an
 * AES-128-CTR stream (IV zero, counter running for the circuit's life) and a running SHA-1
 * digest seeded with Df/Db that is never finalized (a clone is read instead).
 *
 * Four small layers in arti's style: the client's outbound and inbound sides
 * ({@link ClientCrypto}) and the relay's ({@link RelayCrypto}). All work in place on the
 * 509-byte relay payload.
 * @module
 */

import { type Cipheriv, createCipheriv, createHash, type Hash } from "node:crypto";

/** Offsets in a relay payload (tor-spec §6.1). */
const RECOGNIZED = 1;
const DIGEST = 5;
/** Length of the seed a layer needs: Df(20) Db(20) Kf(16) Kb(16). */
export const RELAY_CRYPTO_SEED_LEN = 72;

/** The 16-byte AES-CTR counter block for block index `n` (n < 2^53). */
function counterBlock(n: number): Uint8Array {
  const b = new Uint8Array(16);
  const hi = Math.floor(n / 0x100000000), lo = n >>> 0;
  b[8] = hi >>> 24, b[9] = (hi >>> 16) & 0xff, b[10] = (hi >>> 8) & 0xff, b[11] = hi & 0xff;
  b[12] = lo >>> 24, b[13] = (lo >>> 16) & 0xff, b[14] = (lo >>> 8) & 0xff, b[15] = lo & 0xff;
  return b;
}

/** Keystream made per call when traffic is sparse: about one cell. */
const KEYSTREAM_MIN = 512;
/** Keystream made per call under bulk: ~64 cells per call to node:crypto. */
const KEYSTREAM_MAX = 32768;
/** From this keystream batch size on (sustained bulk) the cipher is kept between refills. */
const KEYSTREAM_KEEP_CIPHER = 8192;
/** Refills closer together than this count as bulk: the next one makes twice as much. */
const BUSY_MS = 50;
const EMPTY = new Uint8Array(0);
const ZEROS = new Uint8Array(KEYSTREAM_MAX);

/**
 * AES-128-CTR as a keystream made in bulk and XORed in per cell. The counter runs across
 * cells for the circuit's life (tor-spec §0.3, §5.5), so the keystream is one stream and
 * can be made ahead; node:crypto's per-call cost dominates at 509 bytes (~120 MB/s per
 * cell against ~300 at 32 KiB), so a busy direction makes up to 32 KiB per call. A sparse
 * one makes 512 bytes, and a used-up keystream is dropped: an idle circuit holds at most the
 * unused rest of one call.
 */
class CtrStream {
  #key: Uint8Array;
  /** Held only while the direction is busy: a node:crypto cipher costs ~1–4 KiB of RSS. */
  #cipher: Cipheriv | undefined;
  /** Keystream bytes made so far (a multiple of 16: every chunk is whole blocks). */
  #made = 0;
  #ks: Uint8Array = EMPTY;
  #pos = 0;
  #chunk = KEYSTREAM_MIN;
  #lastRefill = -Infinity;

  constructor(key: Uint8Array) {
    this.#key = key.slice();
  }

  #refill(): void {
    const now = performance.now();
    this.#chunk = now - this.#lastRefill < BUSY_MS
      ? Math.min(this.#chunk * 2, KEYSTREAM_MAX)
      : KEYSTREAM_MIN;
    this.#lastRefill = now;
    // The counter is the 128-bit big-endian block index from IV zero (tor-spec §0.3), so a
    // cipher made afresh at block `made / 16` continues the stream exactly.
    this.#cipher ??= createCipheriv("aes-128-ctr", this.#key, counterBlock(this.#made / 16));
    this.#ks = this.#cipher.update(ZEROS.subarray(0, this.#chunk));
    this.#made += this.#chunk;
    this.#pos = 0;
    if (this.#chunk < KEYSTREAM_KEEP_CIPHER) {
      // Not (yet) bulk: hold no cipher between refills, so an idle circuit costs ~nothing.
      this.#cipher.final();
      this.#cipher = undefined;
    }
  }

  xor(p: Uint8Array): void {
    let off = 0;
    while (off < p.length) {
      if (this.#pos === this.#ks.length) this.#refill();
      const n = Math.min(p.length - off, this.#ks.length - this.#pos);
      const ks = this.#ks;
      let k = this.#pos;
      for (let i = off, end = off + n; i < end; i++) p[i]! ^= ks[k++]!;
      this.#pos = k;
      off += n;
    }
    if (this.#pos === this.#ks.length) this.#ks = EMPTY, this.#pos = 0;
  }
}

/** AES-128-CTR with IV zero as a keystream XORed in place, continuing across calls. */
export interface CtrCipher {
  /** XORs the next `p.length` keystream bytes into `p`. */
  xor(p: Uint8Array): void;
}

let makeCtr: (key: Uint8Array) => CtrCipher = (key) => new CtrStream(key);

/**
 * Sets the AES-128-CTR implementation of the layers made from now on (the I/O side installs
 * OpenSSL through FFI, see lib/transport/openssl.ts); no argument restores node:crypto.
 */
export function setCtrImplementation(make?: (key: Uint8Array) => CtrCipher): void {
  makeCtr = make ?? ((key) => new CtrStream(key));
}

/** Tor's running SHA-1 (tor-spec §6.1): fed every cell, never finalized. */
export interface RunningDigest {
  /** Feeds bytes. */
  update(p: Uint8Array): void;
  /** Writes the 20-byte digest so far into `out`; the running state is left as it is. */
  current(out: Uint8Array): void;
  /** Writes the digest the state would have after `p` into `out`, without advancing it. */
  trial(p: Uint8Array, out: Uint8Array): void;
}

/** node:crypto's SHA-1, read through `Hash.copy()`. */
class NodeSha1 implements RunningDigest {
  #h: Hash;
  constructor(seed: Uint8Array) {
    this.#h = createHash("sha1").update(seed);
  }
  update(p: Uint8Array): void {
    this.#h.update(p);
  }
  current(out: Uint8Array): void {
    out.set(this.#h.copy().digest());
  }
  trial(p: Uint8Array, out: Uint8Array): void {
    out.set(this.#h.copy().update(p).digest());
  }
}

let makeDigest: (seed: Uint8Array, state: Uint8Array) => RunningDigest = (seed) =>
  new NodeSha1(seed);
/** Bytes of state the digest implementation keeps in the hop's buffer (0: none). */
let digestStateLen = 0;

/**
 * Sets the running SHA-1 of the layers made from now on; no argument restores node:crypto.
 * An implementation whose state is plain bytes asks for `stateBytes`: each direction's state
 * is then a view into the hop's one buffer (see {@link splitSeed}), not an allocation of its own.
 */
export function setSha1Implementation(
  make?: (seed: Uint8Array, state: Uint8Array) => RunningDigest,
  stateBytes = 0,
): void {
  makeDigest = make ?? ((seed) => new NodeSha1(seed));
  digestStateLen = make ? stateBytes : 0;
}

/** One direction of one hop: a CTR stream and a running digest. */
class Direction {
  #ctr: CtrCipher;
  #digest: RunningDigest;
  /** The full 20-byte running digest after the last cell sent or recognized (SENDME v1). */
  #last: Uint8Array;
  /** Where a trial digest goes before it is known to match (shared: used synchronously). */
  static #trial = new Uint8Array(20);

  /** A copy of the full 20-byte running digest after the last cell sent or recognized. */
  get lastDigest(): Uint8Array {
    return this.#last.slice();
  }

  /**
   * `last` is this direction's 20 bytes of the hop's memory, `state` its digest state there
   * (see {@link splitSeed}).
   */
  constructor(key: Uint8Array, digestSeed: Uint8Array, last: Uint8Array, state: Uint8Array) {
    this.#ctr = makeCtr(key);
    this.#digest = makeDigest(digestSeed, state);
    this.#last = last;
  }

  /** XORs the keystream into the payload (encryption and decryption are the same). */
  crypt(payload: Uint8Array): void {
    this.#ctr.xor(payload);
  }

  /** Sets the Digest field of a cell this side originates (recognized must already be 0). */
  seal(payload: Uint8Array): void {
    payload.fill(0, DIGEST, DIGEST + 4);
    this.#digest.update(payload);
    const d = this.#last;
    this.#digest.current(d);
    payload.set(d.subarray(0, 4), DIGEST);
  }

  /**
   * True when the (decrypted) cell is for this hop: recognized is 0 and the digest matches.
   * Only then is the running digest advanced. One clone of the digest state per check (the
   * state is advanced by a second update on a match, cheaper than a second clone).
   */
  recognize(payload: Uint8Array): boolean {
    if (payload[RECOGNIZED] !== 0 || payload[RECOGNIZED + 1] !== 0) return false;
    const g0 = payload[DIGEST]!, g1 = payload[DIGEST + 1]!;
    const g2 = payload[DIGEST + 2]!, g3 = payload[DIGEST + 3]!;
    payload.fill(0, DIGEST, DIGEST + 4);
    const d = Direction.#trial;
    this.#digest.trial(payload, d);
    const ok = d[0] === g0 && d[1] === g1 && d[2] === g2 && d[3] === g3;
    if (ok) {
      this.#digest.update(payload);
      this.#last.set(d);
    }
    payload[DIGEST] = g0, payload[DIGEST + 1] = g1, payload[DIGEST + 2] = g2;
    payload[DIGEST + 3] = g3;
    return ok;
  }
}

/**
 * The key material of one hop, split as tor-spec §5.2.2 lays it out, copied into one buffer
 * of the hop's own with the two directions' last digests and running-digest states behind it:
 * a hop costs one allocation, not eight (a relay holds thousands of idle circuits). The CTR
 * streams keep views of their keys in it; nothing writes to the key bytes.
 */
function splitSeed(seed: Uint8Array): {
  df: Uint8Array;
  db: Uint8Array;
  kf: Uint8Array;
  kb: Uint8Array;
  lastF: Uint8Array;
  lastB: Uint8Array;
  stateF: Uint8Array;
  stateB: Uint8Array;
} {
  if (seed.length < RELAY_CRYPTO_SEED_LEN) {
    throw new RangeError(
      `relay crypto seed must be ${RELAY_CRYPTO_SEED_LEN} bytes: ${seed.length}`,
    );
  }
  const s = digestStateLen;
  const mem = new Uint8Array(RELAY_CRYPTO_SEED_LEN + 40 + 2 * s);
  mem.set(seed.subarray(0, RELAY_CRYPTO_SEED_LEN));
  return {
    df: mem.subarray(0, 20),
    db: mem.subarray(20, 40),
    kf: mem.subarray(40, 56),
    kb: mem.subarray(56, 72),
    lastF: mem.subarray(72, 92),
    lastB: mem.subarray(92, 112),
    stateF: mem.subarray(112, 112 + s),
    stateB: mem.subarray(112 + s, 112 + 2 * s),
  };
}

/** A relay's crypto for one circuit: it decrypts forward and encrypts backward. */
export class RelayCrypto {
  #forward: Direction;
  #backward: Direction;

  /** Builds the layer from 72 bytes of key material (Df Db Kf Kb). */
  constructor(seed: Uint8Array) {
    const { df, db, kf, kb, lastF, lastB, stateF, stateB } = splitSeed(seed);
    this.#forward = new Direction(kf, df, lastF, stateF);
    this.#backward = new Direction(kb, db, lastB, stateB);
  }

  /** Removes this hop's layer from an outbound cell; true when the cell is for this hop. */
  decryptOutbound(payload: Uint8Array): boolean {
    this.#forward.crypt(payload);
    return this.#forward.recognize(payload);
  }

  /** Adds this hop's layer to an inbound cell passing through. */
  encryptInbound(payload: Uint8Array): void {
    this.#backward.crypt(payload);
  }

  /** Seals and encrypts a cell this hop originates towards the client. */
  originateInbound(payload: Uint8Array): void {
    this.#backward.seal(payload);
    this.#backward.crypt(payload);
  }

  /** The running digest after the last cell recognized here (for SENDME v1). */
  get lastForwardDigest(): Uint8Array {
    return this.#forward.lastDigest;
  }

  /** The running digest after the last cell originated here (for SENDME v1). */
  get lastBackwardDigest(): Uint8Array {
    return this.#backward.lastDigest;
  }
}

/** A client's crypto for one circuit: one layer per hop, hop 0 nearest the client. */
export class ClientCrypto {
  #forward: Direction[] = [];
  #backward: Direction[] = [];

  /** Adds the next hop's layer from its 72 bytes of key material. */
  addHop(seed: Uint8Array): void {
    const { df, db, kf, kb, lastF, lastB, stateF, stateB } = splitSeed(seed);
    this.#forward.push(new Direction(kf, df, lastF, stateF));
    this.#backward.push(new Direction(kb, db, lastB, stateB));
  }

  /** Number of hops with keys. */
  get hops(): number {
    return this.#forward.length;
  }

  /** Seals a cell for hop `hop` and wraps it in the layers of hops `hop`..0. */
  encrypt(payload: Uint8Array, hop: number): void {
    const target = this.#forward[hop];
    if (!target) throw new RangeError(`no such hop: ${hop}`);
    target.seal(payload);
    for (let i = hop; i >= 0; i--) this.#forward[i]!.crypt(payload);
  }

  /**
   * Peels inbound layers until one recognizes the cell; returns that hop's index, or -1 when
   * no hop does (the cell is then garbage and the circuit should be closed).
   */
  decrypt(payload: Uint8Array): number {
    for (let i = 0; i < this.#backward.length; i++) {
      const d = this.#backward[i]!;
      d.crypt(payload);
      if (d.recognize(payload)) return i;
    }
    return -1;
  }

  /** The running digest of hop `hop`'s forward direction after the last cell sent. */
  lastForwardDigest(hop: number): Uint8Array {
    return this.#forward[hop]?.lastDigest ?? new Uint8Array(20);
  }

  /** The running digest of hop `hop`'s backward direction after the last cell recognized. */
  lastBackwardDigest(hop: number): Uint8Array {
    return this.#backward[hop]?.lastDigest ?? new Uint8Array(20);
  }
}
