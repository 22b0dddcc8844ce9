/**
 * Tor's X.509 certificates: the RSA identity certificate (CERTS type 2, self-signed), the TLS
 * link certificate (CERTS type 1, signed by the identity) — tor-spec §4.2 "CERTS cells".
 *
 * C tor makes them in `src/lib/tls/x509_openssl.c` (`tor_tls_create_certificate`): version 3,
 * a random 8-byte serial, issuer and subject with one commonName each (UTF8String), validity,
 * the subject key, no extensions, sha256WithRSAEncryption. Checked against a C tor CERTS cell
 * (arti `crates/tor-cell/tests/testvec_chanmsg.rs`): the same bytes come out of `torX509Tbs`.
 * @module
 */

import { createSign, createVerify } from "node:crypto";
import { Buffer } from "node:buffer";
import {
  bitString,
  children,
  expectTag,
  explicit,
  integer,
  nullValue,
  oid,
  readBitString,
  readOid,
  readOne,
  readTime,
  readUnsigned,
  seq,
  set,
  smallInteger,
  TAG,
  time,
  utf8String,
} from "./_der.ts";
import { type RsaKeyPair, rsaPublicKey } from "./rsa.ts";

/** Object identifiers used by Tor's certificates. */
export const OID = {
  RSA_ENCRYPTION: "1.2.840.113549.1.1.1",
  SHA1_WITH_RSA: "1.2.840.113549.1.1.5",
  SHA256_WITH_RSA: "1.2.840.113549.1.1.11",
  COMMON_NAME: "2.5.4.3",
} as const;

/** What `makeTorX509` needs. */
export interface TorX509Options {
  /** Subject commonName (C tor: a random "www.<random>.net"-style name). */
  subjectCn: string;
  /** Issuer commonName (the identity cert's subject for a link cert; the subject itself when self-signed). */
  issuerCn: string;
  /** The certified key as PKCS#1 `RSAPublicKey` DER. */
  subjectKeyDer: Uint8Array;
  /** The issuer's key pair (signs with SHA-256 + PKCS#1 v1.5). */
  signer: RsaKeyPair;
  /** Start of validity (whole seconds). */
  notBefore: Date;
  /** End of validity (whole seconds). */
  notAfter: Date;
  /** Serial as unsigned big-endian bytes; default 8 random bytes (high bit clear, first byte non-zero). */
  serial?: Uint8Array;
}

/** A random 8-byte positive serial whose DER INTEGER keeps all 8 bytes. */
function randomSerial(): Uint8Array {
  const s = crypto.getRandomValues(new Uint8Array(8));
  s[0] = (s[0]! & 0x7f) | 0x01;
  return s;
}

function name(cn: string): Uint8Array {
  return seq(set(seq(oid(OID.COMMON_NAME), utf8String(cn))));
}

/** SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) around a PKCS#1 `RSAPublicKey`. */
export function rsaSpki(publicDer: Uint8Array): Uint8Array {
  return seq(seq(oid(OID.RSA_ENCRYPTION), nullValue()), bitString(publicDer));
}

/** The TBSCertificate (RFC 5280 §4.1) Tor writes; `serial` is required here so the bytes are reproducible. */
export function torX509Tbs(o: Omit<TorX509Options, "signer"> & { serial: Uint8Array }): Uint8Array {
  if (o.notAfter.getTime() <= o.notBefore.getTime()) {
    throw new RangeError(
      `Certificate validity is empty: ${o.notBefore.toISOString()} to ${o.notAfter.toISOString()}`,
    );
  }
  return seq(
    explicit(0, smallInteger(2)), // v3
    integer(o.serial),
    seq(oid(OID.SHA256_WITH_RSA), nullValue()),
    name(o.issuerCn),
    seq(time(o.notBefore), time(o.notAfter)),
    name(o.subjectCn),
    rsaSpki(o.subjectKeyDer),
  );
}

/** A Tor-style X.509 certificate (DER), signed by `o.signer` with sha256WithRSAEncryption. */
export function makeTorX509(o: TorX509Options): Uint8Array {
  rsaPublicKey(o.subjectKeyDer); // SyntaxError early if the subject key is not PKCS#1 RSA
  const tbs = torX509Tbs({ ...o, serial: o.serial ?? randomSerial() });
  const sig = createSign("sha256").update(tbs).sign(o.signer.privateKey);
  return seq(tbs, seq(oid(OID.SHA256_WITH_RSA), nullValue()), bitString(new Uint8Array(sig)));
}

/** A parsed X.509 certificate (only what Tor looks at). */
export interface X509Cert {
  /** The whole certificate DER. */
  der: Uint8Array;
  /** The TBSCertificate bytes the signature covers. */
  tbs: Uint8Array;
  /** Serial as unsigned big-endian bytes. */
  serial: Uint8Array;
  /** Issuer commonName, if there is one. */
  issuerCn?: string;
  /** Subject commonName, if there is one. */
  subjectCn?: string;
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
  /** Subject key algorithm OID (`OID.RSA_ENCRYPTION` for Tor's certificates). */
  subjectKeyAlgorithm: string;
  /** The subject key: PKCS#1 `RSAPublicKey` DER for RSA (the BIT STRING's content otherwise). */
  subjectKeyDer: Uint8Array;
  /** The whole SubjectPublicKeyInfo DER. */
  subjectSpkiDer: Uint8Array;
  /** Signature algorithm OID. */
  signatureAlgorithm: string;
  /** Signature bytes. */
  signature: Uint8Array;
  /** True when the signature verifies with the issuer's PKCS#1 RSA public key (SHA-256 or SHA-1 with RSA). */
  verify(issuerKeyDer: Uint8Array): boolean;
}

function commonName(node: ReturnType<typeof readOne>): string | undefined {
  for (const rdn of children(expectTag(node, TAG.SEQUENCE, "name"))) {
    for (const atv of children(expectTag(rdn, TAG.SET, "relative distinguished name"))) {
      const [type, value] = children(expectTag(atv, TAG.SEQUENCE, "attribute"));
      if (type && value && readOid(type) === OID.COMMON_NAME) {
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(value.content);
        } catch {
          throw new SyntaxError("X.509 commonName is not UTF-8");
        }
      }
    }
  }
  return undefined;
}

/** Parses an X.509 certificate DER; SyntaxError saying what is malformed. */
export function parseX509(der: Uint8Array): X509Cert {
  const top = children(expectTag(readOne(der), TAG.SEQUENCE, "certificate"));
  if (top.length !== 3) throw new SyntaxError(`X.509 certificate has ${top.length} parts, want 3`);
  const [tbsNode, algNode, sigNode] = top as [typeof top[0], typeof top[0], typeof top[0]];
  const tbsParts = children(expectTag(tbsNode, TAG.SEQUENCE, "TBSCertificate"));
  let i = 0;
  if (tbsParts[0]?.tag === 0xa0) i++; // explicit version (v2/v3)
  const serial = readUnsigned(expectTag(tbsParts[i++], TAG.INTEGER, "serial"));
  const innerAlg = children(expectTag(tbsParts[i++], TAG.SEQUENCE, "signature algorithm"));
  const issuer = tbsParts[i++];
  const validity = children(expectTag(tbsParts[i++], TAG.SEQUENCE, "validity"));
  const subject = tbsParts[i++];
  const spki = expectTag(tbsParts[i++], TAG.SEQUENCE, "subject public key info");
  if (validity.length !== 2) throw new SyntaxError("X.509 validity must have two times");
  const [spkiAlg, spkiKey] = children(spki);
  const keyAlg = readOid(children(expectTag(spkiAlg, TAG.SEQUENCE, "key algorithm"))[0]!);
  const subjectKeyDer = readBitString(expectTag(spkiKey, TAG.BIT_STRING, "subject key"));
  const outerAlgOid = readOid(
    children(expectTag(algNode, TAG.SEQUENCE, "signature algorithm"))[0]!,
  );
  if (innerAlg[0] === undefined || readOid(innerAlg[0]) !== outerAlgOid) {
    throw new SyntaxError(
      "X.509 signature algorithms inside and outside the TBSCertificate differ",
    );
  }
  const signature = readBitString(expectTag(sigNode, TAG.BIT_STRING, "signature"));
  const issuerCn = commonName(expectTag(issuer, TAG.SEQUENCE, "issuer"));
  const subjectCn = commonName(expectTag(subject, TAG.SEQUENCE, "subject"));
  const tbs = tbsNode.raw;
  const cert: X509Cert = {
    der,
    tbs,
    serial,
    notBefore: readTime(validity[0]!),
    notAfter: readTime(validity[1]!),
    subjectKeyAlgorithm: keyAlg,
    subjectKeyDer,
    subjectSpkiDer: spki.raw,
    signatureAlgorithm: outerAlgOid,
    signature,
    verify(issuerKeyDer: Uint8Array): boolean {
      const hash = outerAlgOid === OID.SHA256_WITH_RSA
        ? "sha256"
        : outerAlgOid === OID.SHA1_WITH_RSA
        ? "sha1"
        : undefined;
      if (hash === undefined) return false;
      try {
        return createVerify(hash).update(tbs).verify(
          rsaPublicKey(issuerKeyDer),
          Buffer.from(signature),
        );
      } catch {
        return false;
      }
    },
  };
  if (issuerCn !== undefined) cert.issuerCn = issuerCn;
  if (subjectCn !== undefined) cert.subjectCn = subjectCn;
  return cert;
}
