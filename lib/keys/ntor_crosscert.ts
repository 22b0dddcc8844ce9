/**
 * The ntor onion key's cross-certificate (descriptor `ntor-onion-key-crosscert`, cert type
 * 0x0A): the relay proves it holds the X25519 secret by signing its Ed25519 identity with an
 * Ed25519 key derived from that secret (dir-spec §2.1.1 "ntor-onion-key-crosscert", dir-spec
 * appendix "Converting a curve25519 public key to an ed25519 public key", proposal 228).
 *
 * The derived key, as C tor makes it (`src/lib/crypt_ops/crypto_ed25519.c`,
 * `ed25519_keypair_from_curve25519_keypair`): the Ed25519 secret scalar is the clamped
 * curve25519 secret itself; the nonce prefix ("high half" of the expanded key) is
 * `SHA-512(secret | "Derive high part of ed25519 key from curve25519 key\0")[0..32]` (C tor's
 * `sizeof` includes the NUL); the sign bit is bit 255 of the derived public key. A verifier
 * maps the X25519 public u to the Edwards y = (u − 1)/(u + 1) and takes x with that sign.
 *
 * node:crypto cannot sign with a raw scalar, so this signs with @noble/curves' Edwards point
 * arithmetic (RFC 8032 §5.1.6 with the given scalar and prefix). Checked against C tor's
 * `src/test/ed25519_vectors.inc` and a real relay's descriptor (tests/keys_test.ts).
 * @module
 */

import { createHash } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  CERT_KEY_TYPE,
  CERT_TYPE,
  type EdCert,
  expiryHours,
  parseEdCert,
  verifyEdCert,
} from "./ed_cert.ts";
import { CertError } from "./cert_error.ts";

const Point = ed25519.Point;
const L = Point.Fn.ORDER;
const P = Point.Fp.ORDER;

/** The string C tor hashes after the secret, NUL included (`sizeof(string)`). */
const HIGH_PART = new TextEncoder().encode("Derive high part of ed25519 key from curve25519 key\0");

function leToBig(b: Uint8Array): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]!);
  return x;
}

function bigToLe(x: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
}

function sha512(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
  }
  return r;
}

/** RFC 7748 clamping of a curve25519 secret (a copy; C tor stores secrets already clamped). */
export function clampCurve25519(secret: Uint8Array): Uint8Array {
  if (secret.length !== 32) {
    throw new RangeError(`Curve25519 secret must be 32 bytes: ${secret.length}`);
  }
  const s = secret.slice();
  s[0] = s[0]! & 248;
  s[31] = (s[31]! & 127) | 64;
  return s;
}

/** An Ed25519 key in expanded form: the 32-byte scalar, the 32-byte nonce prefix, the public key. */
export interface ExpandedEd25519Key {
  /** 64 bytes: scalar (little-endian) | nonce prefix, as C tor's `ed25519_secret_key_t`. */
  expandedSecret: Uint8Array;
  /** The 32-byte public key (scalar · B). */
  public: Uint8Array;
}

/** The public key of an expanded secret (its first 32 bytes as a little-endian scalar). */
export function expandedPublic(expandedSecret: Uint8Array): Uint8Array {
  if (expandedSecret.length !== 64) {
    throw new RangeError(`Expanded Ed25519 secret must be 64 bytes: ${expandedSecret.length}`);
  }
  const a = leToBig(expandedSecret.subarray(0, 32)) % L;
  if (a === 0n) throw new RangeError("Expanded Ed25519 scalar is zero");
  return Point.BASE.multiply(a).toBytes();
}

/**
 * RFC 8032 §5.1.6 signing with an expanded secret: r = SHA-512(prefix | M) mod L, R = r·B,
 * S = (r + SHA-512(R | A | M)·a) mod L. Equals node:crypto's signature when the expanded
 * secret comes from a seed (C tor's ed25519_sign with an `ed25519_secret_key_t`).
 */
export function signExpanded(expandedSecret: Uint8Array, message: Uint8Array): Uint8Array {
  const pub = expandedPublic(expandedSecret);
  const a = leToBig(expandedSecret.subarray(0, 32)) % L;
  const r = leToBig(sha512(expandedSecret.subarray(32, 64), message)) % L;
  const R = Point.BASE.multiply(r === 0n ? L : r).toBytes(); // r = 0 has negligible chance
  const k = leToBig(sha512(R, pub, message)) % L;
  const s = (r + k * a) % L;
  const out = new Uint8Array(64);
  out.set(R);
  out.set(bigToLe(s, 32), 32);
  return out;
}

/**
 * The Ed25519 key C tor derives from a curve25519 secret, and its sign bit (bit 255 of the
 * public key), for the ntor cross-certificate.
 */
export function ed25519FromCurve25519Secret(
  secret: Uint8Array,
): ExpandedEd25519Key & { signBit: 0 | 1 } {
  const scalar = clampCurve25519(secret);
  const expandedSecret = new Uint8Array(64);
  expandedSecret.set(scalar);
  expandedSecret.set(sha512(scalar, HIGH_PART).subarray(0, 32), 32);
  const pub = expandedPublic(expandedSecret);
  return { expandedSecret, public: pub, signBit: (pub[31]! >> 7) as 0 | 1 };
}

/**
 * The Ed25519 public key for a curve25519 public key u and a sign bit (dir-spec appendix:
 * y = (u − 1)/(u + 1) mod p, x's low bit = the sign bit). SyntaxError when no such point.
 */
export function ed25519FromCurve25519Public(u: Uint8Array, signBit: 0 | 1): Uint8Array {
  if (u.length !== 32) throw new RangeError(`Curve25519 public key must be 32 bytes: ${u.length}`);
  const x = leToBig(u) & ((1n << 255n) - 1n);
  const y = (((x - 1n + P) % P) * modPow((x + 1n) % P, P - 2n, P)) % P;
  const enc = bigToLe(y, 32);
  enc[31] = enc[31]! | (signBit << 7);
  try {
    Point.fromBytes(enc);
  } catch {
    throw new SyntaxError("Curve25519 public key maps to no Ed25519 point");
  }
  return enc;
}

/** What `ntorCrossCert` gives: the certificate and the sign bit written after `ntor-onion-key-crosscert`. */
export interface NtorCrossCert {
  /** The type-0x0A certificate bytes (base64 it between BEGIN/END ED25519 CERT lines). */
  cert: Uint8Array;
  /** Bit 255 of the derived public key: the "0" or "1" of the descriptor line. */
  signBit: 0 | 1;
}

/**
 * The `ntor-onion-key-crosscert`: a type-0x0A certificate of the Ed25519 identity signed by the
 * key derived from the ntor secret, without a signer-key extension (C tor `router.c`
 * `make_ntor_onion_key_crosscert` passes no flags). `ntorPublic` is checked to belong to the secret.
 */
export function ntorCrossCert(
  ntorSecret: Uint8Array,
  ntorPublic: Uint8Array,
  edIdentity: Uint8Array,
  expires: Date,
): NtorCrossCert {
  if (edIdentity.length !== 32) {
    throw new RangeError(`Ed25519 identity must be 32 bytes: ${edIdentity.length}`);
  }
  const k = ed25519FromCurve25519Secret(ntorSecret);
  const check = ed25519FromCurve25519Public(ntorPublic, k.signBit);
  if (!check.every((b, i) => b === k.public[i])) {
    throw new TypeError("ntor public key does not belong to the ntor secret");
  }
  const body = new Uint8Array(40);
  body[0] = 1;
  body[1] = CERT_TYPE.NTOR_CROSS;
  new DataView(body.buffer).setUint32(2, expiryHours(expires));
  body[6] = CERT_KEY_TYPE.ED25519;
  body.set(edIdentity, 7);
  body[39] = 0;
  const cert = new Uint8Array(104);
  cert.set(body);
  cert.set(signExpanded(k.expandedSecret, body), 40);
  return { cert, signBit: k.signBit };
}

/**
 * Checks an `ntor-onion-key-crosscert` (as an authority would, `routerparse.c`): type 0x0A, it
 * certifies `edIdentity`, is signed by the key converted from `ntorPublic` with `signBit`, and
 * is unexpired at `now`. Throws CertError; returns the parsed certificate.
 */
export function verifyNtorCrossCert(
  bytes: Uint8Array,
  o: { ntorPublic: Uint8Array; signBit: 0 | 1; edIdentity: Uint8Array; now: Date },
): EdCert {
  let c: EdCert;
  try {
    c = parseEdCert(bytes);
  } catch (e) {
    throw new CertError("malformed", `Unparseable ntor cross-certificate: ${(e as Error).message}`);
  }
  if (c.type !== CERT_TYPE.NTOR_CROSS) {
    throw new CertError("wrong-type", `ntor cross-certificate has type ${c.type}, want 10`);
  }
  if (!c.certifiedKey.every((b, i) => b === o.edIdentity[i]) || o.edIdentity.length !== 32) {
    throw new CertError(
      "key-mismatch",
      "ntor cross-certificate does not certify this Ed25519 identity",
    );
  }
  let signer: Uint8Array;
  try {
    signer = ed25519FromCurve25519Public(o.ntorPublic, o.signBit);
  } catch (e) {
    throw new CertError("malformed", (e as Error).message);
  }
  verifyEdCert(c, signer, o.now);
  return c;
}
