/**
 * Tor's own certificates (cert-spec §2.1 "Certificate format", §2.2 "Basic extensions") and
 * the RSA→Ed25519 cross-certificate (cert-spec §2.3 "RSA→Ed25519 cross-certificate"; CERTS
 * type 7). C tor: `src/feature/nodelist/torcert.c`, `src/trunnel/ed25519_cert.trunnel`.
 *
 * Ed25519 certificate layout:
 *
 * | field | bytes |
 * | --- | --- |
 * | VERSION (1) | 1 |
 * | CERT_TYPE | 1 |
 * | EXPIRATION_DATE (hours since the epoch) | 4 |
 * | CERT_KEY_TYPE (1 ed25519, 2 SHA-256 of an RSA key, 3 SHA-256 of an X.509) | 1 |
 * | CERTIFIED_KEY | 32 |
 * | N_EXTENSIONS | 1 |
 * | extensions: ExtLength u16, ExtType, ExtFlags, ExtData[ExtLength] | … |
 * | SIGNATURE (Ed25519 over everything before it) | 64 |
 *
 * Checked against arti `crates/tor-cert/tests/testvec_certs.rs` (types 4, 5, 7).
 * @module
 */

import { createHash } from "node:crypto";
import { ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import { CertError } from "./cert_error.ts";
import { type RsaKeyPair, torRsaSign, torRsaVerify } from "./rsa.ts";

/** Certificate types (cert-spec §A.1 "List of certificate types"; CERTS cell types, tor-spec §4.2). */
export const CERT_TYPE = {
  /** X.509 link certificate signed by the RSA identity (CERTS only). */
  RSA_LINK: 1,
  /** X.509 RSA identity certificate, self-signed (CERTS only). */
  RSA_IDENTITY: 2,
  /** Ed25519 signing key, signed by the Ed25519 identity. */
  ED_SIGNING: 4,
  /** SHA-256 of the TLS certificate, signed by the signing key. */
  TLS_LINK: 5,
  /** Ed25519 AUTHENTICATE key, signed by the signing key. */
  ED_AUTH: 6,
  /** RSA→Ed25519 cross-certificate (cert-spec §2.3). */
  RSA_ED_CROSS: 7,
  /** ntor onion key cross-certifying the Ed25519 identity (descriptor `ntor-onion-key-crosscert`). */
  NTOR_CROSS: 0x0a,
} as const;

/** CERT_KEY_TYPE values (cert-spec §2.1). */
export const CERT_KEY_TYPE = { ED25519: 1, SHA256_RSA: 2, SHA256_X509: 3 } as const;

/** Extension type "signed-with-ed25519-key" (cert-spec §2.2.1). */
export const EXT_SIGNED_WITH_ED25519_KEY = 4;
/** ExtFlags bit: an unknown extension with it set makes the certificate invalid (cert-spec §2.1). */
export const EXT_FLAG_AFFECTS_VALIDATION = 1;

/** One certificate extension. */
export interface EdCertExtension {
  /** ExtType. */
  type: number;
  /** ExtFlags. */
  flags: number;
  /** ExtData. */
  data: Uint8Array;
}

/** A parsed Ed25519 certificate (not yet verified). */
export interface EdCert {
  /** CERT_TYPE. */
  type: number;
  /** EXPIRATION_DATE: hours since 1970-01-01 00:00 UTC. */
  expiresHours: number;
  /** CERT_KEY_TYPE. */
  keyType: number;
  /** CERTIFIED_KEY (an Ed25519 key or a SHA-256 digest). */
  certifiedKey: Uint8Array;
  /** All extensions, in order. */
  extensions: EdCertExtension[];
  /** The signer key from a signed-with-ed25519-key extension, if present. */
  signerKey?: Uint8Array;
  /** The bytes the signature covers (everything before it). */
  signed: Uint8Array;
  /** The 64-byte Ed25519 signature. */
  signature: Uint8Array;
}

/** An Ed25519 key pair as raw bytes (32-byte seed, 32-byte public key). */
export interface EdSigner {
  /** 32-byte seed. */
  secret: Uint8Array;
  /** 32-byte public key. */
  public: Uint8Array;
}

/** What `makeEdCert` needs. */
export interface MakeEdCertOptions {
  /** CERT_TYPE (see `CERT_TYPE`). */
  type: number;
  /** The 32-byte certified key or digest. */
  certifiedKey: Uint8Array;
  /** CERT_KEY_TYPE: 1 Ed25519 key, 3 SHA-256 of an X.509 certificate. */
  keyType: 1 | 2 | 3;
  /** Expiry; written as whole hours, rounded up (C tor: `CEIL_DIV(now + lifetime, 3600)`). */
  expires: Date;
  /** The signing key pair. */
  signer: EdSigner;
  /** Add the signed-with-ed25519-key extension (types 4 and 0x0A carry it; 5 and 6 do not). */
  includeSigner: boolean;
}

/** Expiry hours for a date: whole hours since the epoch, rounded up. */
export function expiryHours(expires: Date): number {
  const h = Math.ceil(expires.getTime() / 3_600_000);
  if (!Number.isFinite(h) || h < 0 || h > 0xffffffff) {
    throw new RangeError(`Certificate expiry out of range: ${expires.toISOString?.() ?? expires}`);
  }
  return h;
}

/** Encodes and signs an Ed25519 certificate (cert-spec §2.1). */
export function makeEdCert(o: MakeEdCertOptions): Uint8Array {
  if (o.certifiedKey.length !== 32) {
    throw new RangeError(`Certified key must be 32 bytes: ${o.certifiedKey.length}`);
  }
  if (!Number.isInteger(o.type) || o.type < 0 || o.type > 255) {
    throw new RangeError(`Certificate type must be a byte: ${o.type}`);
  }
  if (o.signer.secret.length !== 32 || o.signer.public.length !== 32) {
    throw new RangeError("Ed25519 signer must have a 32-byte seed and a 32-byte public key");
  }
  const ext = o.includeSigner ? 36 : 0;
  const body = new Uint8Array(40 + ext);
  const v = new DataView(body.buffer);
  body[0] = 1;
  body[1] = o.type;
  v.setUint32(2, expiryHours(o.expires));
  body[6] = o.keyType;
  body.set(o.certifiedKey, 7);
  body[39] = o.includeSigner ? 1 : 0;
  if (o.includeSigner) {
    v.setUint16(40, 32);
    body[42] = EXT_SIGNED_WITH_ED25519_KEY;
    body[43] = 0;
    body.set(o.signer.public, 44);
  }
  const out = new Uint8Array(body.length + 64);
  out.set(body);
  out.set(ed25519Sign(o.signer.secret, body), body.length);
  return out;
}

/**
 * Parses an Ed25519 certificate. SyntaxError when malformed: wrong version, truncated,
 * trailing bytes, a signed-with-ed25519-key extension that is not 32 bytes or appears twice,
 * an unknown extension with the AFFECTS_VALIDATION flag (cert-spec §2.1; torcert.c
 * `tor_cert_parse`).
 */
export function parseEdCert(bytes: Uint8Array): EdCert {
  if (bytes.length < 1) throw new SyntaxError("Ed25519 certificate is empty");
  if (bytes[0] !== 1) throw new SyntaxError(`Ed25519 certificate version is not 1: ${bytes[0]}`);
  if (bytes.length < 40 + 64) {
    throw new SyntaxError(
      `Ed25519 certificate truncated: ${bytes.length} bytes, need at least 104`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nExt = bytes[39]!;
  const extensions: EdCertExtension[] = [];
  let signerKey: Uint8Array | undefined;
  let o = 40;
  for (let i = 0; i < nExt; i++) {
    if (o + 4 > bytes.length - 64) {
      throw new SyntaxError(`Ed25519 certificate truncated: extension ${i}`);
    }
    const len = v.getUint16(o);
    const type = bytes[o + 2]!;
    const flags = bytes[o + 3]!;
    if (o + 4 + len > bytes.length - 64) {
      throw new SyntaxError(`Ed25519 certificate truncated: extension ${i} of ${len} bytes`);
    }
    const data = bytes.slice(o + 4, o + 4 + len);
    if (type === EXT_SIGNED_WITH_ED25519_KEY) {
      if (len !== 32) {
        throw new SyntaxError(`Ed25519 signer-key extension must be 32 bytes: ${len}`);
      }
      if (signerKey) throw new SyntaxError("Ed25519 certificate has two signer-key extensions");
      signerKey = data;
    } else if (flags & EXT_FLAG_AFFECTS_VALIDATION) {
      throw new SyntaxError(
        `Ed25519 certificate has an unknown extension that affects validation: ${type}`,
      );
    }
    extensions.push({ type, flags, data });
    o += 4 + len;
  }
  if (o + 64 !== bytes.length) {
    throw new SyntaxError(`Ed25519 certificate has ${bytes.length - o - 64} trailing bytes`);
  }
  const cert: EdCert = {
    type: bytes[1]!,
    expiresHours: v.getUint32(2),
    keyType: bytes[6]!,
    certifiedKey: bytes.slice(7, 39),
    extensions,
    signed: bytes.slice(0, o),
    signature: bytes.slice(o, o + 64),
  };
  if (signerKey) cert.signerKey = signerKey;
  return cert;
}

/** The expiry of a parsed certificate as a Date. */
export function edCertExpires(cert: EdCert): Date {
  return new Date(cert.expiresHours * 3_600_000);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks an Ed25519 certificate: the signer (`signerPublic`, or else the signer-key extension;
 * both present must agree), the signature, and that `now` is not after the expiry
 * (torcert.c `tor_cert_checksig`: expired when now > EXPIRATION_DATE·3600). Throws CertError.
 */
export function verifyEdCert(cert: EdCert, signerPublic: Uint8Array | undefined, now: Date): void {
  if (signerPublic && cert.signerKey && !sameBytes(signerPublic, cert.signerKey)) {
    throw new CertError(
      "key-mismatch",
      `Certificate type ${cert.type} names signer ${hex(cert.signerKey)}, expected ${
        hex(signerPublic)
      }`,
    );
  }
  const key = signerPublic ?? cert.signerKey;
  if (!key) {
    throw new CertError("missing-signer", `Certificate type ${cert.type} names no signing key`);
  }
  if (now.getTime() > cert.expiresHours * 3_600_000) {
    throw new CertError(
      "expired",
      `Certificate type ${cert.type} expired: ${
        edCertExpires(cert).toISOString()
      } before ${now.toISOString()}`,
    );
  }
  if (!ed25519Verify(key, cert.signed, cert.signature)) {
    throw new CertError(
      "bad-signature",
      `Certificate type ${cert.type} has a bad Ed25519 signature`,
    );
  }
}

/** The prefix hashed into the RSA→Ed25519 cross-certificate signature (cert-spec §2.3). */
export const RSA_ED_CROSSCERT_PREFIX = "Tor TLS RSA/Ed25519 cross-certificate";

/** A parsed RSA→Ed25519 cross-certificate (cert-spec §2.3). */
export interface RsaEdCrossCert {
  /** ED25519_KEY: the certified Ed25519 identity. */
  edIdentity: Uint8Array;
  /** EXPIRATION_DATE: hours since the epoch. */
  expiresHours: number;
  /** The RSA signature (SIGLEN bytes). */
  signature: Uint8Array;
  /** The 36 bytes before SIGLEN (what the digest covers after the prefix). */
  signed: Uint8Array;
}

function crossCertDigest(signed: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash("sha256").update(RSA_ED_CROSSCERT_PREFIX).update(signed).digest(),
  );
}

/**
 * An RSA→Ed25519 cross-certificate: `ED25519_KEY | EXPIRATION_DATE (hours) | SIGLEN |
 * SIGNATURE`, the signature Tor's RSA signature (PKCS#1 type 1, no DigestInfo) of
 * SHA-256(prefix | the 36 bytes before SIGLEN) (cert-spec §2.3).
 */
export function makeRsaEdCrossCert(
  edIdentity: Uint8Array,
  expires: Date,
  rsa: RsaKeyPair,
): Uint8Array {
  if (edIdentity.length !== 32) {
    throw new RangeError(`Ed25519 identity must be 32 bytes: ${edIdentity.length}`);
  }
  const signed = new Uint8Array(36);
  signed.set(edIdentity);
  new DataView(signed.buffer).setUint32(32, expiryHours(expires));
  const sig = torRsaSign(rsa, crossCertDigest(signed));
  if (sig.length > 255) {
    throw new RangeError(`RSA signature too long for a cross-certificate: ${sig.length}`);
  }
  const out = new Uint8Array(37 + sig.length);
  out.set(signed);
  out[36] = sig.length;
  out.set(sig, 37);
  return out;
}

/** Parses an RSA→Ed25519 cross-certificate; SyntaxError when truncated or with trailing bytes. */
export function parseRsaEdCrossCert(bytes: Uint8Array): RsaEdCrossCert {
  if (bytes.length < 37) {
    throw new SyntaxError(`RSA cross-certificate truncated: ${bytes.length} bytes`);
  }
  const sigLen = bytes[36]!;
  if (bytes.length !== 37 + sigLen) {
    throw new SyntaxError(
      `RSA cross-certificate length ${bytes.length} does not match SIGLEN ${sigLen}`,
    );
  }
  return {
    edIdentity: bytes.slice(0, 32),
    expiresHours: new DataView(bytes.buffer, bytes.byteOffset + 32, 4).getUint32(0),
    signature: bytes.slice(37),
    signed: bytes.slice(0, 36),
  };
}

/**
 * Checks an RSA→Ed25519 cross-certificate against the RSA identity (PKCS#1 DER) and `now`;
 * returns the certified Ed25519 identity. Throws CertError (reason "malformed" for bad bytes).
 */
export function verifyRsaEdCrossCert(
  bytes: Uint8Array,
  rsaPublicDer: Uint8Array,
  now: Date,
): Uint8Array {
  let c: RsaEdCrossCert;
  try {
    c = parseRsaEdCrossCert(bytes);
  } catch (e) {
    throw new CertError("malformed", `Unparseable RSA cross-certificate: ${(e as Error).message}`);
  }
  if (!torRsaVerify(rsaPublicDer, crossCertDigest(c.signed), c.signature)) {
    throw new CertError("bad-signature", "RSA cross-certificate is not signed by the RSA identity");
  }
  if (now.getTime() > c.expiresHours * 3_600_000) {
    throw new CertError(
      "expired",
      `RSA cross-certificate expired: ${
        new Date(c.expiresHours * 3_600_000).toISOString()
      } before ${now.toISOString()}`,
    );
  }
  return c.edIdentity;
}
