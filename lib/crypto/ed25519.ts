/**
 * Ed25519 signatures (RFC 8032) on node:crypto with raw 32-byte keys: relay identities and
 * the directory authority.
 * @module
 */

import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { Buffer } from "node:buffer";

const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** An Ed25519 key pair as raw bytes. */
export interface Ed25519KeyPair {
  /** 32-byte seed. */
  secret: Uint8Array;
  /** 32-byte public key. */
  public: Uint8Array;
}

/** A key pair from a 32-byte seed (or a fresh random one). */
export function ed25519KeyPair(seed?: Uint8Array): Ed25519KeyPair {
  const s = seed ?? crypto.getRandomValues(new Uint8Array(32));
  if (s.length !== 32) throw new RangeError(`Ed25519 seed must be 32 bytes: ${s.length}`);
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, s]),
    format: "der",
    type: "pkcs8",
  });
  const der = createPublicKey(priv).export({ format: "der", type: "spki" });
  return { secret: s, public: new Uint8Array(der.subarray(der.length - 32)) };
}

/** Signs `message` with a 32-byte seed; returns the 64-byte signature. */
export function ed25519Sign(secret: Uint8Array, message: Uint8Array): Uint8Array {
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, secret]),
    format: "der",
    type: "pkcs8",
  });
  return new Uint8Array(sign(null, message, priv));
}

/** True when `signature` is a valid signature of `message` by `publicKey`. */
export function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const pub = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: "der",
      type: "spki",
    });
    return verify(null, message, pub, signature);
  } catch {
    return false;
  }
}
