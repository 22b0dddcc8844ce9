/**
 * RSA-1024 as Tor uses it: relay identity and TAP onion keys, fingerprints, and Tor's RSA
 * "signature" (PKCS#1 v1.5 type-1 padding over a raw digest, no DigestInfo).
 *
 * tor-spec §0.3 ("Ciphers": "For a public-key cipher, unless otherwise specified, we use RSA
 * with 1024-bit keys and a fixed exponent of 65537"; "signatures … PKCS1 padding"), and
 * §1.1 ("Keys and names": the fingerprint is the SHA-1 of the DER-encoded ASN.1 RSAPublicKey,
 * PKCS#1). C tor: `src/lib/crypt_ops/crypto_rsa.c` (`crypto_pk_private_sign` =
 * `RSA_private_encrypt(..., RSA_PKCS1_PADDING)`), `crypto_pk_get_digest`.
 * @module
 */

import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  privateEncrypt,
  publicDecrypt,
} from "node:crypto";
import { Buffer } from "node:buffer";

/** An RSA key pair: the private key and the public key as PKCS#1 `RSAPublicKey` DER. */
export interface RsaKeyPair {
  /** The private key (node:crypto). */
  privateKey: KeyObject;
  /** The public key as PKCS#1 `RSAPublicKey` DER (140 bytes for a 1024-bit key, exponent 65537). */
  publicDer: Uint8Array;
}

/** The RSA public exponent Tor requires (tor-spec §0.3; `crypto_pk_public_exponent_ok`). */
export const TOR_RSA_EXPONENT = 65537;

function pairOf(privateKey: KeyObject): RsaKeyPair {
  if (privateKey.asymmetricKeyType !== "rsa") {
    throw new TypeError(`Not an RSA private key: ${privateKey.asymmetricKeyType}`);
  }
  const der = createPublicKey(privateKey).export({ format: "der", type: "pkcs1" });
  return { privateKey, publicDer: new Uint8Array(der) };
}

/** A fresh RSA key pair of `bits` bits (default 1024, Tor's identity and TAP key size), e 65537. */
export function generateRsa(bits = 1024): RsaKeyPair {
  if (!Number.isInteger(bits) || bits < 1024 || bits > 8192) {
    throw new RangeError(`RSA key size must be 1024..8192 bits: ${bits}`);
  }
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: bits,
    publicExponent: TOR_RSA_EXPONENT,
  });
  return pairOf(privateKey);
}

/** A fresh RSA-1024 key pair with exponent 65537 (a relay identity or TAP onion key). */
export function generateRsa1024(): RsaKeyPair {
  return generateRsa(1024);
}

/**
 * Reads a PEM private key: PKCS#1 "RSA PRIVATE KEY" (C tor's `secret_id_key`) or PKCS#8
 * "PRIVATE KEY". The PEM block is cut out here: C tor's `secret_id_key` ends with a NUL
 * byte after the END line, which node:crypto's PEM reader refuses (Deno 2.9.6, tor 0.4.9.11). SyntaxError if unreadable, TypeError if it is not RSA.
 */
export function rsaKeyFromPem(pem: string): RsaKeyPair {
  const m = pem.match(
    /-----BEGIN (RSA PRIVATE KEY|PRIVATE KEY)-----([A-Za-z0-9+/=\s]*)-----END \1-----/,
  );
  if (!m) {
    throw new SyntaxError(
      "Unreadable RSA private key PEM: no RSA PRIVATE KEY or PRIVATE KEY block",
    );
  }
  const der = Buffer.from(m[2]!.replace(/\s+/g, ""), "base64");
  let key: KeyObject;
  try {
    key = createPrivateKey({
      key: der,
      format: "der",
      type: m[1] === "RSA PRIVATE KEY" ? "pkcs1" : "pkcs8",
    });
  } catch (e) {
    throw new SyntaxError(`Unreadable RSA private key PEM: ${(e as Error).message}`);
  }
  return pairOf(key);
}

/** Writes the private key as PKCS#1 PEM ("-----BEGIN RSA PRIVATE KEY-----", as C tor stores it). */
export function rsaKeyToPem(key: RsaKeyPair): string {
  return String(key.privateKey.export({ format: "pem", type: "pkcs1" }));
}

/** Reads a PKCS#1 private key DER (what `rsaPrivateDer` gives). */
export function rsaKeyFromDer(der: Uint8Array): RsaKeyPair {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs1" });
  } catch (e) {
    throw new SyntaxError(`Unreadable RSA private key DER: ${(e as Error).message}`);
  }
  return pairOf(key);
}

/** The private key as PKCS#1 `RSAPrivateKey` DER (what `SSL_CTX_use_PrivateKey_ASN1(EVP_PKEY_RSA, …)` takes). */
export function rsaPrivateDer(key: RsaKeyPair): Uint8Array {
  return new Uint8Array(key.privateKey.export({ format: "der", type: "pkcs1" }));
}

/** A node:crypto public key from PKCS#1 `RSAPublicKey` DER; SyntaxError if unparseable. */
export function rsaPublicKey(publicDer: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(publicDer), format: "der", type: "pkcs1" });
  } catch (e) {
    throw new SyntaxError(`Unparseable RSA public key: ${(e as Error).message}`);
  }
}

/** Modulus size in bits and public exponent of a PKCS#1 `RSAPublicKey` DER. */
export function rsaPublicInfo(publicDer: Uint8Array): { bits: number; exponent: bigint } {
  const d = rsaPublicKey(publicDer).asymmetricKeyDetails;
  if (d?.modulusLength === undefined || d.publicExponent === undefined) {
    throw new SyntaxError("RSA public key without modulus details");
  }
  return { bits: d.modulusLength, exponent: d.publicExponent };
}

/**
 * The relay's identity digest: SHA-1 of the PKCS#1 `RSAPublicKey` DER (tor-spec §1.1), 20 bytes.
 * This is the ntor ID, the EXTEND2 legacy identity and the `fingerprint` of the descriptor.
 */
export function rsaFingerprint(publicDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(publicDer).digest());
}

/** The fingerprint as 40 upper-case hex digits, as Tor prints it (`$` + this in torrc and control). */
export function rsaFingerprintHex(publicDer: Uint8Array): string {
  return Buffer.from(rsaFingerprint(publicDer)).toString("hex").toUpperCase();
}

/**
 * Tor's RSA signature of `digest` (tor-spec §0.3, `crypto_pk_private_sign`): PKCS#1 v1.5
 * type-1 padding over the raw bytes, no DigestInfo. The signature is as long as the modulus.
 */
export function torRsaSign(key: RsaKeyPair, digest: Uint8Array): Uint8Array {
  return new Uint8Array(
    privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, digest),
  );
}

/** True when `signature` is Tor's RSA signature of `digest` by the key `publicDer` (PKCS#1 DER). */
export function torRsaVerify(
  publicDer: Uint8Array,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    const key = rsaPublicKey(publicDer);
    const got = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    return got.length === digest.length && got.every((x, i) => x === digest[i]);
  } catch {
    return false;
  }
}
