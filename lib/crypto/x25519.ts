/**
 * X25519 (RFC 7748) on node:crypto, with raw 32-byte keys as Tor uses them.
 * @module
 */

import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { Buffer } from "node:buffer";

// DER prefixes for raw X25519 keys (RFC 8410): PKCS#8 private and SPKI public.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/** An X25519 key pair as raw bytes. */
export interface X25519KeyPair {
  /** The 32-byte secret scalar. */
  secret: Uint8Array;
  /** The 32-byte public u-coordinate. */
  public: Uint8Array;
}

function privateKey(secret: Uint8Array): KeyObject {
  if (secret.length !== 32) {
    throw new RangeError(`X25519 secret must be 32 bytes: ${secret.length}`);
  }
  return createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, secret]),
    format: "der",
    type: "pkcs8",
  });
}

function publicKey(pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new RangeError(`X25519 public key must be 32 bytes: ${pub.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: "der", type: "spki" });
}

/** Computes the public key of a 32-byte secret. */
export function x25519Public(secret: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKey(secret)).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** A key pair from the given secret bytes (or fresh random ones). */
export function x25519KeyPair(secret?: Uint8Array): X25519KeyPair {
  const s = secret ?? crypto.getRandomValues(new Uint8Array(32));
  return { secret: s, public: x25519Public(s) };
}

/** X25519(secret, pub): the 32-byte shared secret (may be all-zero for a bad point). */
export function x25519(secret: Uint8Array, pub: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(
      diffieHellman({ privateKey: privateKey(secret), publicKey: publicKey(pub) }),
    );
  } catch {
    // OpenSSL refuses small-order points; Tor treats that like an all-zero output.
    return new Uint8Array(32);
  }
}
