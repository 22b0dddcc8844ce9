/**
 * Key derivation functions of tor-spec §5.2: KDF-TOR (SHA-1 counter) and KDF-RFC5869 (HKDF).
 * @module
 */

import { createHash, createHmac, hkdfSync } from "node:crypto";

/**
 * KDF-TOR (tor-spec §5.2.1): K = SHA1(K0 | [00]) | SHA1(K0 | [01]) | …, truncated to `length`.
 */
export function kdfTor(k0: Uint8Array, length: number): Uint8Array {
  if (length > 255 * 20) throw new RangeError(`KDF-TOR output too long: ${length}`);
  const out = new Uint8Array(length);
  for (let i = 0, off = 0; off < length; i++, off += 20) {
    const block = createHash("sha1").update(k0).update(new Uint8Array([i])).digest();
    out.set(block.subarray(0, Math.min(20, length - off)), off);
  }
  return out;
}

/** KDF-RFC5869 (tor-spec §5.2.2): HKDF-SHA256 with the given salt (key) and info. */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
}

/** HMAC-SHA256 with `key` over the concatenation of `parts`. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Constant-time equality of two byte strings of equal length. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Concatenates byte strings. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
