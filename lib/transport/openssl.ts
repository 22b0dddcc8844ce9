/**
 * AES through the system's OpenSSL (libcrypto.so.3) by FFI, for the per-byte hot path:
 * AES-128-CTR of relay cells and AES-256-GCM of link frames. Here node:crypto runs AES at
 * ~120–400 MB/s (per-call cost, no AES-NI path) and WebCrypto GCM at ~300–460 MB/s; OpenSSL
 * through FFI does ~3 GB/s, in place, ~0.17 µs per 509-byte cell.
 *
 * Optional: without libcrypto or FFI permission, {@link nativeAes} is undefined and callers
 * keep node:crypto (same bytes: tests check both against each other).
 * @module
 */

import { setCtrImplementation, setSha1Implementation } from "../crypto/relay_crypto.ts";

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_aes_128_ctr: { parameters: [], result: "pointer" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  SHA1_Init: { parameters: ["buffer"], result: "i32" },
  SHA1_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
  SHA1_Final: { parameters: ["buffer", "buffer"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function open(): Lib | undefined {
  try {
    // Ask first: without --allow-ffi, dlopen would prompt on a terminal.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    if (Deno.build.os !== "linux") return undefined;
    return Deno.dlopen("libcrypto.so.3", SYMBOLS).symbols;
  } catch {
    return undefined; // no libcrypto, no --allow-ffi, or not Linux: node:crypto it is
  }
}

const lib = open();
const outl = new Uint8Array(4);
const scratch = new Uint8Array(32);

function newContext(): Deno.PointerObject {
  const ctx = lib!.EVP_CIPHER_CTX_new();
  if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed");
  return ctx;
}

/**
 * Cipher contexts are big (an OpenSSL 3 EVP_CIPHER_CTX is ~2.3 KiB of RSS) and a circuit has
 * many directions, most idle: so CTR streams borrow one of {@link CTR_POOL} contexts, taken
 * round-robin, and a stream whose context was lent on re-keys at its own position (~0.2 µs)
 * the next time it is used. A stream keeps only its key and byte position.
 */
const CTR_POOL = 64;
const ctrPool: Deno.PointerObject[] = [];
const ctrOwner: (NativeCtr | undefined)[] = [];
let ctrHand = 0;
const counter = new Uint8Array(16);
const skip = new Uint8Array(16);

/** AES-128-CTR as a stream XORed in place (IV zero: tor-spec §0.3). */
export class NativeCtr {
  #key: Uint8Array;
  /** Keystream bytes used so far. */
  #pos = 0;
  #slot = -1;

  /**
   * A stream for a 16-byte key, counter at 0. The key is kept as given, not copied (a relay
   * holds thousands of idle streams): the caller must not change it.
   */
  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError(`AES-128 key must be 16 bytes: ${key.length}`);
    this.#key = key;
  }

  /** Takes a pooled context and sets it to this stream's key and position. */
  #acquire(): Deno.PointerObject {
    const l = lib!, slot = ctrHand;
    ctrHand = (ctrHand + 1) % CTR_POOL;
    const prev = ctrOwner[slot];
    if (prev) prev.#slot = -1;
    ctrOwner[slot] = this;
    this.#slot = slot;
    let ctx = ctrPool[slot];
    if (!ctx) ctx = ctrPool[slot] = newContext();
    // Counter block = 128-bit big-endian block index from IV zero (tor-spec §0.3).
    const block = Math.floor(this.#pos / 16);
    const hi = Math.floor(block / 0x100000000), lo = block >>> 0;
    counter.fill(0, 0, 8);
    counter[8] = hi >>> 24, counter[9] = (hi >>> 16) & 0xff;
    counter[10] = (hi >>> 8) & 0xff, counter[11] = hi & 0xff;
    counter[12] = lo >>> 24, counter[13] = (lo >>> 16) & 0xff;
    counter[14] = (lo >>> 8) & 0xff, counter[15] = lo & 0xff;
    if (l.EVP_EncryptInit_ex(ctx, l.EVP_aes_128_ctr(), null, this.#key, counter) !== 1) {
      throw new Error("EVP_EncryptInit_ex (aes-128-ctr) failed");
    }
    const part = this.#pos % 16;
    if (part) l.EVP_EncryptUpdate(ctx, skip, outl, skip, part);
    return ctx;
  }

  /** XORs the next keystream bytes into `p`. */
  xor(p: Uint8Array): void {
    const ctx = this.#slot >= 0 ? ctrPool[this.#slot]! : this.#acquire();
    lib!.EVP_EncryptUpdate(ctx, p, outl, p, p.length);
    this.#pos += p.length;
  }
}

/** One context per direction for every link of the process, re-keyed per frame (~0.1 µs). */
let gcmSealCtx: Deno.PointerObject | undefined;
let gcmOpenCtx: Deno.PointerObject | undefined;

/**
 * AES-256-GCM seal of one frame: encrypts `body` in place with associated data `aad` and
 * writes the 16-byte tag to `tag`. A link keeps only its key: no context per link (an idle
 * per-circuit link would hold two).
 */
function gcmSeal(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  body: Uint8Array,
  tag: Uint8Array,
): void {
  const l = lib!;
  const ctx = gcmSealCtx ??= newContext();
  if (l.EVP_EncryptInit_ex(ctx, l.EVP_aes_256_gcm(), null, key, iv) !== 1) {
    throw new Error("EVP_EncryptInit_ex (aes-256-gcm) failed");
  }
  l.EVP_EncryptUpdate(ctx, null, outl, aad, aad.length);
  l.EVP_EncryptUpdate(ctx, body, outl, body, body.length);
  l.EVP_EncryptFinal_ex(ctx, scratch, outl);
  l.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
}

/** AES-256-GCM open of one frame into `out` (same length as `body`); false when the tag does
 * not verify. */
function gcmOpen(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  body: Uint8Array,
  tag: Uint8Array,
  out: Uint8Array,
): boolean {
  const l = lib!;
  const ctx = gcmOpenCtx ??= newContext();
  if (l.EVP_DecryptInit_ex(ctx, l.EVP_aes_256_gcm(), null, key, iv) !== 1) {
    throw new Error("EVP_DecryptInit_ex (aes-256-gcm) failed");
  }
  l.EVP_DecryptUpdate(ctx, null, outl, aad, aad.length);
  l.EVP_DecryptUpdate(ctx, out, outl, body, body.length);
  // The tag argument is read, not written, for SET_TAG; copy: the view may be read-only.
  scratch.set(tag.subarray(0, 16));
  l.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, scratch);
  return l.EVP_DecryptFinal_ex(ctx, scratch, outl) === 1;
}

/** sizeof(SHA_CTX): h0..h4, Nl, Nh, data[16], num — 24 32-bit words. */
const SHA_CTX_LEN = 96;
const shaScratch = new Uint8Array(SHA_CTX_LEN);

/**
 * Tor's running SHA-1 digest (tor-spec §6.1) with its state in JS memory: reading the digest
 * so far copies 96 bytes instead of cloning a hash object.
 */
export class NativeSha1 {
  /** Bytes of OpenSSL's SHA_CTX (a caller may hold them in a buffer of its own). */
  static readonly stateBytes = SHA_CTX_LEN;
  #state: Uint8Array;

  /**
   * A running digest seeded with `seed` (Df or Db); its SHA_CTX lives in `state` when given
   * ({@link NativeSha1.stateBytes} bytes the caller keeps for it alone), else in its own.
   */
  constructor(seed: Uint8Array, state?: Uint8Array) {
    // An empty view is no state given (a layer made while no state bytes were asked for).
    if (state?.length && state.length !== SHA_CTX_LEN) {
      throw new RangeError(`SHA_CTX needs ${SHA_CTX_LEN} bytes: ${state.length}`);
    }
    this.#state = state?.length ? state : new Uint8Array(SHA_CTX_LEN);
    lib!.SHA1_Init(this.#state);
    lib!.SHA1_Update(this.#state, seed, BigInt(seed.length));
  }

  /** Feeds bytes. */
  update(p: Uint8Array): void {
    lib!.SHA1_Update(this.#state, p, BigInt(p.length));
  }

  /** Writes the digest so far into `out` (20 bytes); the running state is left as it is. */
  current(out: Uint8Array): void {
    shaScratch.set(this.#state);
    lib!.SHA1_Final(out, shaScratch);
  }

  /** Writes the digest the state would have after `p` into `out`, without advancing it. */
  trial(p: Uint8Array, out: Uint8Array): void {
    shaScratch.set(this.#state);
    lib!.SHA1_Update(shaScratch, p, BigInt(p.length));
    lib!.SHA1_Final(out, shaScratch);
  }
}

/** OpenSSL's AES and SHA-1 when it could be loaded, else undefined. */
export const nativeAes:
  | {
    ctr: typeof NativeCtr;
    sha1: typeof NativeSha1;
    gcmSeal: typeof gcmSeal;
    gcmOpen: typeof gcmOpen;
  }
  | undefined = lib ? { ctr: NativeCtr, sha1: NativeSha1, gcmSeal, gcmOpen } : undefined;

/**
 * Makes relay-cell AES-128-CTR and the running SHA-1 digests (lib/crypto/relay_crypto.ts) use
 * OpenSSL when it could be loaded: ~10× node:crypto here. Called once by a relay or client
 * when it starts (not as a side effect of importing anything); idempotent. Returns whether
 * OpenSSL is in use.
 */
export function installNativeCrypto(): boolean {
  if (!nativeAes) return false;
  const aes = nativeAes;
  setCtrImplementation((key) => new aes.ctr(key));
  setSha1Implementation((seed, state) => new aes.sha1(seed, state), aes.sha1.stateBytes);
  return true;
}
