/**
 * A relay's whole key set as C tor keeps it, the CERTS cells it sends, the checks of a peer's
 * CERTS cell, lifetimes and renewal with an injected clock, and the key file.
 *
 * | item | what | lifetime here | renewed when | C tor (`src/feature/relay/routerkeys.c`, `router.c`) |
 * | --- | --- | --- | --- | --- |
 * | `rsaIdentity` | RSA-1024, e = 65537: the fingerprint | forever | never | `secret_id_key` |
 * | `rsaIdentityCert` | X.509, self-signed (CERTS type 2) | 365 d | < 30 d left | TLS context identity cert |
 * | `tapOnion` | RSA-1024 TAP onion key (descriptor `onion-key`) | 28 d | < 1 d left; old kept 7 d | OnionKeyRotationDays 28, grace 7 |
 * | `ed25519Identity` | Ed25519 master identity | forever | never | `master_identity_key` |
 * | `signing` | Ed25519 signing key + type-4 cert (signer-key extension) | 30 d | < 2 d left | SigningKeyLifetime 30 d, slop 1 d |
 * | `linkAuth` | Ed25519 AUTHENTICATE key + type-6 cert | 2 d | < 6 h left, or new signing key | TestingAuthKeyLifetime 2 d, slop 3 h |
 * | `ntor` | X25519 ntor onion key (clamped) | 28 d | < 1 d left; old kept 7 d | as TAP |
 * | `tls` | RSA-2048 TLS key + X.509 signed by the identity (CERTS type 1) + type-5 cert | 2 d (type 5); key as signing | < 6 h left (new X.509, same key), or new signing key (new key) | TestingLinkCertLifetime 2 d, slop 3 h |
 * | `rsaEdCrossCert` | RSA → Ed25519 cross-cert (CERTS type 7) | 180 d | < 30 d left | 6·30 d, renewed 30 d before |
 *
 * Our margins are wider than C tor's slops so a caller that checks hourly never lets one
 * lapse. CERTS rules: tor-spec §4.2 "CERTS cells"; `src/core/or/channeltls.c`
 * (`channel_tls_process_certs_cell`: each type at most once) and
 * `src/feature/nodelist/torcert.c` (`or_handshake_certs_ed25519_ok`).
 * @module
 */

import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { ed25519KeyPair, ed25519Sign } from "../crypto/ed25519.ts";
import { x25519KeyPair, x25519Public } from "../crypto/x25519.ts";
import { CertError } from "./cert_error.ts";
import {
  CERT_KEY_TYPE,
  CERT_TYPE,
  type EdCert,
  expiryHours,
  makeEdCert,
  makeRsaEdCrossCert,
  parseEdCert,
  parseRsaEdCrossCert,
  verifyEdCert,
  verifyRsaEdCrossCert,
} from "./ed_cert.ts";
import { clampCurve25519, type NtorCrossCert, ntorCrossCert } from "./ntor_crosscert.ts";
import {
  generateRsa,
  generateRsa1024,
  rsaFingerprint,
  rsaFingerprintHex,
  rsaKeyFromPem,
  type RsaKeyPair,
  rsaKeyToPem,
  rsaPrivateDer,
  rsaPublicInfo,
  TOR_RSA_EXPONENT,
  torRsaSign,
} from "./rsa.ts";
import { makeTorX509, OID, parseX509, type X509Cert } from "./x509.ts";

export { CertError } from "./cert_error.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Lifetimes (ms) of the renewable items (see the module table). */
export const TOR_KEY_LIFETIME = {
  rsaIdentityCert: 365 * DAY,
  onionKey: 28 * DAY,
  onionKeyGrace: 7 * DAY,
  signingCert: 30 * DAY,
  linkAuthCert: 2 * DAY,
  tlsLinkCert: 2 * DAY,
  tlsX509: 365 * DAY,
  rsaEdCrossCert: 180 * DAY,
} as const;

/** How long (ms) before its expiry each item is renewed. */
export const TOR_KEY_RENEW_BEFORE = {
  rsaIdentityCert: 30 * DAY,
  onionKey: 1 * DAY,
  signingCert: 2 * DAY,
  linkAuthCert: 6 * HOUR,
  tlsLinkCert: 6 * HOUR,
  rsaEdCrossCert: 30 * DAY,
} as const;

/** X.509 clock slop C tor allows (`src/lib/tls/x509.h`): notAfter this far past, notBefore this far ahead. */
export const X509_PAST_SLOP_MS = 2 * DAY;
/** See {@linkcode X509_PAST_SLOP_MS}. */
export const X509_FUTURE_SLOP_MS = 30 * DAY;

/** When an item was made and when it lapses. */
export interface Lifetime {
  /** When it was made. */
  created: Date;
  /** When it lapses (a certificate's expiry; for onion keys, when they are due to rotate). */
  expires: Date;
}

/** An Ed25519 key pair as raw bytes. */
export interface Ed25519Pair {
  /** 32-byte seed. */
  secret: Uint8Array;
  /** 32-byte public key. */
  public: Uint8Array;
}

/** An X25519 key pair as raw bytes. */
export interface X25519Pair {
  /** 32-byte clamped secret. */
  secret: Uint8Array;
  /** 32-byte public key. */
  public: Uint8Array;
}

/** A relay's keys and certificates (see the module table). */
export interface TorRelayKeys {
  /** RSA-1024 identity; its fingerprint names the relay. */
  rsaIdentity: RsaKeyPair;
  /** Self-signed X.509 of the identity (CERTS type 2). */
  rsaIdentityCert: Lifetime & { der: Uint8Array; commonName: string };
  /** RSA-1024 TAP onion key (the descriptor's `onion-key`; authorities still demand it). */
  tapOnion: Lifetime & { key: RsaKeyPair };
  /** The TAP key before the last rotation, kept for its grace period. */
  previousTapOnion?: Lifetime & { key: RsaKeyPair };
  /** Ed25519 master identity. */
  ed25519Identity: Ed25519Pair;
  /** Ed25519 signing key and its type-4 certificate (signed by the identity, with the signer-key extension). */
  signing: Lifetime & { key: Ed25519Pair; cert: Uint8Array };
  /** Ed25519 link-authentication key and its type-6 certificate (signed by the signing key). */
  linkAuth: Lifetime & { key: Ed25519Pair; cert: Uint8Array };
  /** X25519 ntor onion key (the descriptor's `ntor-onion-key`). */
  ntor: Lifetime & { key: X25519Pair };
  /** The ntor key before the last rotation, kept for its grace period (accept CREATE2 to either). */
  previousNtor?: Lifetime & { key: X25519Pair };
  /**
   * The TLS key, its X.509 (signed by the RSA identity; CERTS type 1, presented in the TLS
   * handshake) and the type-5 certificate of that X.509's SHA-256; `expires` is type 5's.
   */
  tls: Lifetime & { key: RsaKeyPair; certDer: Uint8Array; linkCert: Uint8Array };
  /** RSA → Ed25519 cross-certificate (CERTS type 7). */
  rsaEdCrossCert: Lifetime & { cert: Uint8Array };
}

/** One entry of a CERTS cell body (tor-spec §4.2). */
export interface CertsEntry {
  /** CertType. */
  type: number;
  /** The certificate bytes. */
  body: Uint8Array;
}

/** Who a peer proved to be by its CERTS cell. */
export interface PeerIdentity {
  /** The peer's RSA identity key (PKCS#1 DER). */
  rsaIdentityDer: Uint8Array;
  /** SHA-1 of it (20 bytes): the relay id of EXTEND2 and ntor. */
  rsaIdentityDigest: Uint8Array;
  /** The same as 40 upper-case hex digits. */
  rsaFingerprint: string;
  /** The peer's Ed25519 master identity. */
  ed25519Identity: Uint8Array;
  /** The peer's Ed25519 signing key (type 4's certified key). */
  signingKey: Uint8Array;
  /** The type-6 certified key that must sign its AUTHENTICATE cell (initiator role only). */
  authKey?: Uint8Array;
}

function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(b).digest());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function at(t: number): Date {
  return new Date(t);
}

/** A C-tor-like random host name for X.509 names (`crypto_random_hostname(8, 20, "www.", suffix)`). */
function randomHostname(suffix: string): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const n = 8 + (crypto.getRandomValues(new Uint8Array(1))[0]! % 13);
  const r = crypto.getRandomValues(new Uint8Array(n));
  return "www." + Array.from(r, (x) => alphabet[x & 31]).join("") + suffix;
}

/** Midnight UTC of the day before `now`: the notBefore of our X.509 certificates. */
function x509Start(now: Date): Date {
  return at(Math.floor(now.getTime() / DAY) * DAY - DAY);
}

/** The expiry an Ed25519 certificate will carry for a wanted lapse time (rounded up to the hour). */
function edExpiry(t: number): Date {
  return at(expiryHours(at(t)) * HOUR);
}

function newIdentityCert(
  rsa: RsaKeyPair,
  now: Date,
  commonName?: string,
): TorRelayKeys["rsaIdentityCert"] {
  const cn = commonName ?? randomHostname(".com");
  const notBefore = x509Start(now);
  const notAfter = at(notBefore.getTime() + TOR_KEY_LIFETIME.rsaIdentityCert);
  const der = makeTorX509({
    subjectCn: cn,
    issuerCn: cn,
    subjectKeyDer: rsa.publicDer,
    signer: rsa,
    notBefore,
    notAfter,
  });
  return { der, commonName: cn, created: now, expires: notAfter };
}

function newSigning(identity: Ed25519Pair, now: Date): TorRelayKeys["signing"] {
  const key = ed25519KeyPair();
  const expires = edExpiry(now.getTime() + TOR_KEY_LIFETIME.signingCert);
  const cert = makeEdCert({
    type: CERT_TYPE.ED_SIGNING,
    certifiedKey: key.public,
    keyType: CERT_KEY_TYPE.ED25519,
    expires,
    signer: identity,
    includeSigner: true,
  });
  return { key, cert, created: now, expires };
}

function newLinkAuth(signing: Ed25519Pair, now: Date): TorRelayKeys["linkAuth"] {
  const key = ed25519KeyPair();
  const expires = edExpiry(now.getTime() + TOR_KEY_LIFETIME.linkAuthCert);
  // C tor: ed_key_new(…, INIT_ED_KEY_NEEDCERT, …, CERT_TYPE_SIGNING_AUTH) — no signer-key extension.
  const cert = makeEdCert({
    type: CERT_TYPE.ED_AUTH,
    certifiedKey: key.public,
    keyType: CERT_KEY_TYPE.ED25519,
    expires,
    signer: signing,
    includeSigner: false,
  });
  return { key, cert, created: now, expires };
}

function newTls(
  rsaIdentity: RsaKeyPair,
  identityCn: string,
  signing: Ed25519Pair,
  now: Date,
  reuse?: RsaKeyPair,
): TorRelayKeys["tls"] {
  // RSA-2048: OpenSSL's default security level 2 refuses smaller RSA. Keygen costs 0.05–0.5 s,
  // so a TLS renewal re-issues the X.509 and type 5 for the same key, and the key itself is
  // replaced with the signing key (C tor replaces it every 2 h: linkability, not validity).
  const key = reuse ?? generateRsa(2048);
  const notBefore = x509Start(now);
  const certDer = makeTorX509({
    subjectCn: randomHostname(".net"),
    issuerCn: identityCn,
    subjectKeyDer: key.publicDer,
    signer: rsaIdentity,
    notBefore,
    notAfter: at(notBefore.getTime() + TOR_KEY_LIFETIME.tlsX509),
  });
  const expires = edExpiry(now.getTime() + TOR_KEY_LIFETIME.tlsLinkCert);
  // C tor generate_ed_link_cert: SIGNED_KEY_TYPE_SHA256_OF_X509, flags 0.
  const linkCert = makeEdCert({
    type: CERT_TYPE.TLS_LINK,
    certifiedKey: sha256(certDer),
    keyType: CERT_KEY_TYPE.SHA256_X509,
    expires,
    signer: signing,
    includeSigner: false,
  });
  return { key, certDer, linkCert, created: now, expires };
}

function newCrossCert(
  edIdentity: Uint8Array,
  rsa: RsaKeyPair,
  now: Date,
): TorRelayKeys["rsaEdCrossCert"] {
  const expires = edExpiry(now.getTime() + TOR_KEY_LIFETIME.rsaEdCrossCert);
  return { cert: makeRsaEdCrossCert(edIdentity, expires, rsa), created: now, expires };
}

function newNtor(now: Date): TorRelayKeys["ntor"] {
  const secret = clampCurve25519(crypto.getRandomValues(new Uint8Array(32)));
  return {
    key: x25519KeyPair(secret),
    created: now,
    expires: at(now.getTime() + TOR_KEY_LIFETIME.onionKey),
  };
}

function newTap(now: Date): TorRelayKeys["tapOnion"] {
  return {
    key: generateRsa1024(),
    created: now,
    expires: at(now.getTime() + TOR_KEY_LIFETIME.onionKey),
  };
}

/** A fresh relay key set valid from `now` (default: the current time). Takes ≈ 0.1–0.5 s (RSA keygen). */
export function generateTorRelayKeys(now: Date = new Date()): TorRelayKeys {
  const rsaIdentity = generateRsa1024();
  const rsaIdentityCert = newIdentityCert(rsaIdentity, now);
  const ed25519Identity = ed25519KeyPair();
  const signing = newSigning(ed25519Identity, now);
  return {
    rsaIdentity,
    rsaIdentityCert,
    tapOnion: newTap(now),
    ed25519Identity,
    signing,
    linkAuth: newLinkAuth(signing.key, now),
    ntor: newNtor(now),
    tls: newTls(rsaIdentity, rsaIdentityCert.commonName, signing.key, now),
    rsaEdCrossCert: newCrossCert(ed25519Identity.public, rsaIdentity, now),
  };
}

/** Names `renewTorRelayKeys` reports; "signing", "ntor" and "tapOnion" change the descriptor. */
export type RenewedItem =
  | "rsaIdentityCert"
  | "tapOnion"
  | "signing"
  | "linkAuth"
  | "ntor"
  | "tls"
  | "rsaEdCrossCert";

/**
 * Renews each item due at `now` (see the module table) and drops previous onion keys past
 * their grace period. Returns a new key set (the input is not changed) and what was renewed,
 * in dependency order. A new signing key also renews the link-auth and TLS link certificates
 * it signs. Republish the descriptor when "signing", "ntor" or "tapOnion" is among them.
 */
export function renewTorRelayKeys(
  keys: TorRelayKeys,
  now: Date,
): { keys: TorRelayKeys; renewed: RenewedItem[] } {
  const t = now.getTime();
  const due = (l: Lifetime, before: number) => t >= l.expires.getTime() - before;
  const k: TorRelayKeys = { ...keys };
  const renewed: RenewedItem[] = [];
  if (due(k.rsaIdentityCert, TOR_KEY_RENEW_BEFORE.rsaIdentityCert)) {
    k.rsaIdentityCert = newIdentityCert(k.rsaIdentity, now, k.rsaIdentityCert.commonName);
    renewed.push("rsaIdentityCert");
  }
  if (k.previousTapOnion && t >= k.previousTapOnion.expires.getTime()) delete k.previousTapOnion;
  if (due(k.tapOnion, TOR_KEY_RENEW_BEFORE.onionKey)) {
    k.previousTapOnion = { ...k.tapOnion, expires: at(t + TOR_KEY_LIFETIME.onionKeyGrace) };
    k.tapOnion = newTap(now);
    renewed.push("tapOnion");
  }
  let signingChanged = false;
  if (due(k.signing, TOR_KEY_RENEW_BEFORE.signingCert)) {
    k.signing = newSigning(k.ed25519Identity, now);
    signingChanged = true;
    renewed.push("signing");
  }
  if (signingChanged || due(k.linkAuth, TOR_KEY_RENEW_BEFORE.linkAuthCert)) {
    k.linkAuth = newLinkAuth(k.signing.key, now);
    renewed.push("linkAuth");
  }
  if (k.previousNtor && t >= k.previousNtor.expires.getTime()) delete k.previousNtor;
  if (due(k.ntor, TOR_KEY_RENEW_BEFORE.onionKey)) {
    k.previousNtor = { ...k.ntor, expires: at(t + TOR_KEY_LIFETIME.onionKeyGrace) };
    k.ntor = newNtor(now);
    renewed.push("ntor");
  }
  if (signingChanged || due(k.tls, TOR_KEY_RENEW_BEFORE.tlsLinkCert)) {
    const reuse = signingChanged ? undefined : k.tls.key;
    k.tls = newTls(k.rsaIdentity, k.rsaIdentityCert.commonName, k.signing.key, now, reuse);
    renewed.push("tls");
  }
  if (due(k.rsaEdCrossCert, TOR_KEY_RENEW_BEFORE.rsaEdCrossCert)) {
    k.rsaEdCrossCert = newCrossCert(k.ed25519Identity.public, k.rsaIdentity, now);
    renewed.push("rsaEdCrossCert");
  }
  return { keys: k, renewed };
}

/** The earliest time at which `renewTorRelayKeys` will renew or drop something (for a timer). */
export function nextTorKeyRenewal(keys: TorRelayKeys): Date {
  const times = [
    keys.rsaIdentityCert.expires.getTime() - TOR_KEY_RENEW_BEFORE.rsaIdentityCert,
    keys.tapOnion.expires.getTime() - TOR_KEY_RENEW_BEFORE.onionKey,
    keys.signing.expires.getTime() - TOR_KEY_RENEW_BEFORE.signingCert,
    keys.linkAuth.expires.getTime() - TOR_KEY_RENEW_BEFORE.linkAuthCert,
    keys.ntor.expires.getTime() - TOR_KEY_RENEW_BEFORE.onionKey,
    keys.tls.expires.getTime() - TOR_KEY_RENEW_BEFORE.tlsLinkCert,
    keys.rsaEdCrossCert.expires.getTime() - TOR_KEY_RENEW_BEFORE.rsaEdCrossCert,
  ];
  if (keys.previousNtor) times.push(keys.previousNtor.expires.getTime());
  if (keys.previousTapOnion) times.push(keys.previousTapOnion.expires.getTime());
  return at(Math.min(...times));
}

/** The relay's fingerprint: 40 upper-case hex digits of SHA-1 of the RSA identity DER. */
export function torRelayFingerprint(keys: TorRelayKeys): string {
  return rsaFingerprintHex(keys.rsaIdentity.publicDer);
}

/** The responder's CERTS cell entries, in C tor's order: types 1, 2, 4, 5, 7 (tor-spec §4.2). */
export function responderCerts(keys: TorRelayKeys): CertsEntry[] {
  return [
    { type: CERT_TYPE.RSA_LINK, body: keys.tls.certDer },
    { type: CERT_TYPE.RSA_IDENTITY, body: keys.rsaIdentityCert.der },
    { type: CERT_TYPE.ED_SIGNING, body: keys.signing.cert },
    { type: CERT_TYPE.TLS_LINK, body: keys.tls.linkCert },
    { type: CERT_TYPE.RSA_ED_CROSS, body: keys.rsaEdCrossCert.cert },
  ];
}

/** An initiating relay's CERTS cell entries: types 2, 4, 6, 7 (tor-spec §4.2, AUTHENTICATE method 3). */
export function initiatorCerts(keys: TorRelayKeys): CertsEntry[] {
  return [
    { type: CERT_TYPE.RSA_IDENTITY, body: keys.rsaIdentityCert.der },
    { type: CERT_TYPE.ED_SIGNING, body: keys.signing.cert },
    { type: CERT_TYPE.ED_AUTH, body: keys.linkAuth.cert },
    { type: CERT_TYPE.RSA_ED_CROSS, body: keys.rsaEdCrossCert.cert },
  ];
}

/**
 * The TLS certificate and key: `certDer` is the X.509 DER (CERTS type 1), `keyDer` the RSA-2048
 * private key as PKCS#1 `RSAPrivateKey` DER (`d2i_AutoPrivateKey`, or
 * `SSL_CTX_use_PrivateKey_ASN1(EVP_PKEY_RSA, …)`).
 */
export function tlsCredentials(keys: TorRelayKeys): { certDer: Uint8Array; keyDer: Uint8Array } {
  return { certDer: keys.tls.certDer, keyDer: rsaPrivateDer(keys.tls.key) };
}

/** Ed25519 signature by the link-auth (type-6) key: AUTHENTICATE's SIG (tor-spec §4.4.2). */
export function signWithAuthKey(keys: TorRelayKeys, message: Uint8Array): Uint8Array {
  return ed25519Sign(keys.linkAuth.key.secret, message);
}

/** Ed25519 signature by the signing key (the descriptor's `router-sig-ed25519`). */
export function signWithSigningKey(keys: TorRelayKeys, message: Uint8Array): Uint8Array {
  return ed25519Sign(keys.signing.key.secret, message);
}

/**
 * What a server descriptor needs of the keys (the shape of lib/dirauth's `DescriptorKeys`):
 * RSA identity and TAP key pairs, the Ed25519 identity, the type-4 cert, signing by the signing
 * key, the ntor public key and its cross-certificate for a given expiry.
 */
export function descriptorKeys(keys: TorRelayKeys): {
  identity: RsaKeyPair;
  tapOnion: RsaKeyPair;
  edIdentity: Uint8Array;
  signingCert: Uint8Array;
  signWithSigningKey(message: Uint8Array): Uint8Array;
  ntorPublic: Uint8Array;
  ntorCrossCert(expires: Date): NtorCrossCert;
} {
  return {
    identity: keys.rsaIdentity,
    tapOnion: keys.tapOnion.key,
    edIdentity: keys.ed25519Identity.public,
    signingCert: keys.signing.cert,
    signWithSigningKey: (m) => signWithSigningKey(keys, m),
    ntorPublic: keys.ntor.key.public,
    ntorCrossCert: (expires) =>
      ntorCrossCert(
        keys.ntor.key.secret,
        keys.ntor.key.public,
        keys.ed25519Identity.public,
        expires,
      ),
  };
}

/** The descriptor's `onion-key-crosscert`: TAP-key RSA signature of SHA-1(identity DER) | Ed25519 identity. */
export function tapOnionCrossCert(keys: TorRelayKeys): Uint8Array {
  const data = new Uint8Array(52);
  data.set(rsaFingerprint(keys.rsaIdentity.publicDer));
  data.set(keys.ed25519Identity.public, 20);
  return torRsaSign(keys.tapOnion.key, data);
}

function parseEd(body: Uint8Array, slot: number): EdCert {
  let c: EdCert;
  try {
    c = parseEdCert(body);
  } catch (e) {
    throw new CertError(
      "malformed",
      `Unparseable type-${slot} certificate: ${(e as Error).message}`,
    );
  }
  if (c.type !== slot) {
    throw new CertError("wrong-type", `Certificate in CERTS slot ${slot} has type ${c.type}`);
  }
  if (slot !== CERT_TYPE.TLS_LINK && c.keyType !== CERT_KEY_TYPE.ED25519) {
    throw new CertError(
      "malformed",
      `Type-${slot} certificate certifies key type ${c.keyType}, want 1`,
    );
  }
  return c;
}

function checkX509Lifetime(c: X509Cert, what: string, now: Date): void {
  const t = now.getTime();
  if (t > c.notAfter.getTime() + X509_PAST_SLOP_MS) {
    throw new CertError(
      "expired",
      `${what} expired: ${c.notAfter.toISOString()} before ${now.toISOString()}`,
    );
  }
  if (t < c.notBefore.getTime() - X509_FUTURE_SLOP_MS) {
    throw new CertError("not-yet-valid", `${what} not valid until ${c.notBefore.toISOString()}`);
  }
}

/**
 * Checks a peer's CERTS cell (tor-spec §4.2; torcert.c `or_handshake_certs_ed25519_ok`).
 * `role` is the peer's: a "responder" must send 2, 4, 5, 7 (1 is ignored, as C tor does with
 * Ed25519 certificates) and type 5 must be the SHA-256 of `tlsCertDer`, the certificate its TLS
 * presented; an "initiator" must send 2, 4, 6, 7. Each known type (1–7) at most once; unknown
 * types are ignored. RSA identity exactly 1024 bits with e = 65537 and self-signed; 7 signed by
 * it and naming the Ed25519 identity that signed 4 (with the signer-key extension); 5 and 6
 * signed by 4's key; all unexpired at `now` (X.509 with C tor's slop). Throws CertError.
 */
export function verifyPeerCerts(
  certs: readonly CertsEntry[],
  o: { role: "responder" | "initiator"; tlsCertDer?: Uint8Array; now: Date },
): PeerIdentity {
  if (o.role === "responder" && !o.tlsCertDer) {
    throw new TypeError("Checking a responder's CERTS needs the TLS certificate it presented");
  }
  const byType = new Map<number, Uint8Array>();
  for (const { type, body } of certs) {
    if (type < 1 || type > 7) continue; // unknown types are ignored (channeltls.c)
    if (byType.has(type)) throw new CertError("duplicate", `CERTS cell has type ${type} twice`);
    byType.set(type, body);
  }
  const need = o.role === "responder" ? [2, 4, 5, 7] : [2, 4, 6, 7];
  const missing = need.filter((t) => !byType.has(t));
  if (missing.length > 0) {
    throw new CertError(
      "missing",
      `CERTS cell from the ${o.role} lacks type ${missing.join(", ")}`,
    );
  }
  const now = o.now;

  // Type 2: RSA identity, self-signed, 1024 bits, e = 65537 (tor_tls_cert_is_valid, check_rsa_1024).
  let idCert: X509Cert;
  try {
    idCert = parseX509(byType.get(2)!);
  } catch (e) {
    throw new CertError(
      "malformed",
      `Unparseable RSA identity certificate: ${(e as Error).message}`,
    );
  }
  if (idCert.subjectKeyAlgorithm !== OID.RSA_ENCRYPTION) {
    throw new CertError(
      "key-size",
      `RSA identity certificate holds a ${idCert.subjectKeyAlgorithm} key`,
    );
  }
  let info: { bits: number; exponent: bigint };
  try {
    info = rsaPublicInfo(idCert.subjectKeyDer);
  } catch (e) {
    throw new CertError("malformed", `Unreadable RSA identity key: ${(e as Error).message}`);
  }
  if (info.bits !== 1024 || info.exponent !== BigInt(TOR_RSA_EXPONENT)) {
    throw new CertError(
      "key-size",
      `RSA identity must be 1024 bits with exponent 65537: ${info.bits} bits, exponent ${info.exponent}`,
    );
  }
  if (!idCert.verify(idCert.subjectKeyDer)) {
    throw new CertError("bad-signature", "RSA identity certificate is not self-signed");
  }
  checkX509Lifetime(idCert, "RSA identity certificate", now);
  const rsaDer = idCert.subjectKeyDer;

  // Type 4: signing key, signed by the Ed25519 identity named in its extension.
  const c4 = parseEd(byType.get(4)!, CERT_TYPE.ED_SIGNING);
  if (!c4.signerKey) {
    throw new CertError("missing-signer", "Type-4 certificate lacks the signer-key extension");
  }
  verifyEdCert(c4, undefined, now);
  const edIdentity = c4.signerKey;

  // Type 7: the RSA identity cross-certifies that Ed25519 identity.
  const crossEd = verifyRsaEdCrossCert(byType.get(7)!, rsaDer, now);
  if (!sameBytes(crossEd, edIdentity)) {
    throw new CertError(
      "key-mismatch",
      "RSA cross-certificate names another Ed25519 identity than type 4's signer",
    );
  }

  const id: PeerIdentity = {
    rsaIdentityDer: rsaDer,
    rsaIdentityDigest: rsaFingerprint(rsaDer),
    rsaFingerprint: rsaFingerprintHex(rsaDer),
    ed25519Identity: edIdentity,
    signingKey: c4.certifiedKey,
  };
  if (o.role === "responder") {
    const c5 = parseEd(byType.get(5)!, CERT_TYPE.TLS_LINK);
    if (c5.keyType !== CERT_KEY_TYPE.SHA256_X509) {
      throw new CertError(
        "malformed",
        `Type-5 certificate certifies key type ${c5.keyType}, want 3`,
      );
    }
    verifyEdCert(c5, c4.certifiedKey, now);
    if (!sameBytes(c5.certifiedKey, sha256(o.tlsCertDer!))) {
      throw new CertError(
        "tls-mismatch",
        "Type-5 certificate is not for the TLS certificate presented",
      );
    }
  } else {
    const c6 = parseEd(byType.get(6)!, CERT_TYPE.ED_AUTH);
    verifyEdCert(c6, c4.certifiedKey, now);
    id.authKey = c6.certifiedKey;
  }
  return id;
}

// ---- the key file ----

const FILE_TYPE = "pctcp-tor-relay-keys";

function b64(b: Uint8Array): string {
  return Buffer.from(b).toString("base64");
}

class Reader {
  constructor(readonly path: string, readonly v: unknown) {}
  obj(key: string): Reader {
    const o = this.v as Record<string, unknown>;
    const x = o?.[key];
    if (typeof x !== "object" || x === null) {
      throw new TypeError(`Tor relay keys: ${this.path}${key} must be an object`);
    }
    return new Reader(`${this.path}${key}.`, x);
  }
  has(key: string): boolean {
    return (this.v as Record<string, unknown>)?.[key] !== undefined;
  }
  str(key: string): string {
    const x = (this.v as Record<string, unknown>)?.[key];
    if (typeof x !== "string") {
      throw new TypeError(`Tor relay keys: ${this.path}${key} must be a string`);
    }
    return x;
  }
  bytes(key: string, len?: number): Uint8Array {
    const s = this.str(key);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      throw new SyntaxError(`Tor relay keys: ${this.path}${key} is not base64`);
    }
    const b = new Uint8Array(Buffer.from(s, "base64"));
    if (len !== undefined && b.length !== len) {
      throw new TypeError(`Tor relay keys: ${this.path}${key} must be ${len} bytes: ${b.length}`);
    }
    return b;
  }
  date(key: string): Date {
    const d = new Date(this.str(key));
    if (Number.isNaN(d.getTime())) {
      throw new SyntaxError(`Tor relay keys: ${this.path}${key} is not a date`);
    }
    return d;
  }
  rsa(key: string): RsaKeyPair {
    try {
      return rsaKeyFromPem(this.str(key));
    } catch (e) {
      throw new SyntaxError(`Tor relay keys: ${this.path}${key}: ${(e as Error).message}`);
    }
  }
  life(): Lifetime {
    return { created: this.date("created"), expires: this.date("expires") };
  }
}

function lifeJson(l: Lifetime): { created: string; expires: string } {
  return { created: l.created.toISOString(), expires: l.expires.toISOString() };
}

/** Serializes the key set (secret keys included: write the file with mode 0600). */
export function torRelayKeysToJson(keys: TorRelayKeys): string {
  const ed = (p: Ed25519Pair | X25519Pair) => ({ secret: b64(p.secret), public: b64(p.public) });
  const out: Record<string, unknown> = {
    type: FILE_TYPE,
    v: 1,
    fingerprint: torRelayFingerprint(keys),
    rsaIdentity: { pem: rsaKeyToPem(keys.rsaIdentity) },
    rsaIdentityCert: {
      der: b64(keys.rsaIdentityCert.der),
      commonName: keys.rsaIdentityCert.commonName,
      ...lifeJson(keys.rsaIdentityCert),
    },
    tapOnion: { pem: rsaKeyToPem(keys.tapOnion.key), ...lifeJson(keys.tapOnion) },
    ed25519Identity: ed(keys.ed25519Identity),
    signing: { ...ed(keys.signing.key), cert: b64(keys.signing.cert), ...lifeJson(keys.signing) },
    linkAuth: {
      ...ed(keys.linkAuth.key),
      cert: b64(keys.linkAuth.cert),
      ...lifeJson(keys.linkAuth),
    },
    ntor: { ...ed(keys.ntor.key), ...lifeJson(keys.ntor) },
    tls: {
      pem: rsaKeyToPem(keys.tls.key),
      certDer: b64(keys.tls.certDer),
      linkCert: b64(keys.tls.linkCert),
      ...lifeJson(keys.tls),
    },
    rsaEdCrossCert: { cert: b64(keys.rsaEdCrossCert.cert), ...lifeJson(keys.rsaEdCrossCert) },
  };
  if (keys.previousTapOnion) {
    out.previousTapOnion = {
      pem: rsaKeyToPem(keys.previousTapOnion.key),
      ...lifeJson(keys.previousTapOnion),
    };
  }
  if (keys.previousNtor) {
    out.previousNtor = { ...ed(keys.previousNtor.key), ...lifeJson(keys.previousNtor) };
  }
  return JSON.stringify(out, null, 2) + "\n";
}

/**
 * Reads a key file written by `torRelayKeysToJson`. SyntaxError for unparseable text, TypeError
 * naming the field for a wrong shape or keys and certificates that do not belong together.
 */
export function torRelayKeysFromJson(text: string): TorRelayKeys {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Tor relay keys: not JSON: ${(e as Error).message}`);
  }
  const r = new Reader("", v);
  if (typeof v !== "object" || v === null || r.str("type") !== FILE_TYPE) {
    throw new TypeError(`Tor relay keys: not a ${FILE_TYPE} file`);
  }
  if ((v as { v?: unknown }).v !== 1) {
    throw new TypeError(`Tor relay keys: unknown version: ${(v as { v?: unknown }).v}`);
  }
  const ed = (x: Reader): Ed25519Pair => {
    const secret = x.bytes("secret", 32);
    const pair = ed25519KeyPair(secret);
    if (!sameBytes(pair.public, x.bytes("public", 32))) {
      throw new TypeError(`Tor relay keys: ${x.path}public does not match its secret`);
    }
    return pair;
  };
  const xk = (x: Reader): X25519Pair => {
    const secret = x.bytes("secret", 32);
    if (!sameBytes(x25519Public(secret), x.bytes("public", 32))) {
      throw new TypeError(`Tor relay keys: ${x.path}public does not match its secret`);
    }
    return { secret, public: x25519Public(secret) };
  };
  const idc = r.obj("rsaIdentityCert");
  const tap = r.obj("tapOnion");
  const sg = r.obj("signing");
  const la = r.obj("linkAuth");
  const nt = r.obj("ntor");
  const tl = r.obj("tls");
  const cc = r.obj("rsaEdCrossCert");
  const keys: TorRelayKeys = {
    rsaIdentity: r.obj("rsaIdentity").rsa("pem"),
    rsaIdentityCert: { der: idc.bytes("der"), commonName: idc.str("commonName"), ...idc.life() },
    tapOnion: { key: tap.rsa("pem"), ...tap.life() },
    ed25519Identity: ed(r.obj("ed25519Identity")),
    signing: { key: ed(sg), cert: sg.bytes("cert"), ...sg.life() },
    linkAuth: { key: ed(la), cert: la.bytes("cert"), ...la.life() },
    ntor: { key: xk(nt), ...nt.life() },
    tls: {
      key: tl.rsa("pem"),
      certDer: tl.bytes("certDer"),
      linkCert: tl.bytes("linkCert"),
      ...tl.life(),
    },
    rsaEdCrossCert: { cert: cc.bytes("cert"), ...cc.life() },
  };
  if (r.has("previousTapOnion")) {
    const p = r.obj("previousTapOnion");
    keys.previousTapOnion = { key: p.rsa("pem"), ...p.life() };
  }
  if (r.has("previousNtor")) {
    const p = r.obj("previousNtor");
    keys.previousNtor = { key: xk(p), ...p.life() };
  }
  checkTorRelayKeys(keys);
  if (r.has("fingerprint") && r.str("fingerprint") !== torRelayFingerprint(keys)) {
    throw new TypeError(
      `Tor relay keys: fingerprint ${r.str("fingerprint")} is not the identity's ${
        torRelayFingerprint(keys)
      }`,
    );
  }
  return keys;
}

/**
 * Checks that the keys and certificates of a set belong together (ignoring expiry): each
 * certificate certifies its key and is signed by the key that must sign it. TypeError naming
 * the first that does not.
 */
export function checkTorRelayKeys(keys: TorRelayKeys): void {
  const fail = (what: string) => {
    throw new TypeError(`Tor relay keys: ${what}`);
  };
  const info = rsaPublicInfo(keys.rsaIdentity.publicDer);
  if (info.bits !== 1024) fail(`RSA identity must be 1024 bits: ${info.bits}`);
  if (rsaPublicInfo(keys.tapOnion.key.publicDer).bits !== 1024) {
    fail("TAP onion key must be 1024 bits");
  }
  const id = parseX509(keys.rsaIdentityCert.der);
  if (
    !sameBytes(id.subjectKeyDer, keys.rsaIdentity.publicDer) ||
    !id.verify(keys.rsaIdentity.publicDer)
  ) {
    fail("rsaIdentityCert is not the identity's self-signed certificate");
  }
  const edOk = (
    bytes: Uint8Array,
    type: number,
    certified: Uint8Array,
    signer: Uint8Array,
    what: string,
  ) => {
    let c: EdCert;
    try {
      c = parseEdCert(bytes);
      verifyEdCert(c, signer, at(0));
    } catch (e) {
      return fail(`${what} certificate: ${(e as Error).message}`);
    }
    if (c.type !== type || !sameBytes(c.certifiedKey, certified)) {
      fail(`${what} certificate does not certify its key`);
    }
  };
  edOk(
    keys.signing.cert,
    CERT_TYPE.ED_SIGNING,
    keys.signing.key.public,
    keys.ed25519Identity.public,
    "signing",
  );
  if (
    !sameBytes(
      parseEdCert(keys.signing.cert).signerKey ?? new Uint8Array(),
      keys.ed25519Identity.public,
    )
  ) {
    fail("signing certificate lacks the identity as signer-key extension");
  }
  edOk(
    keys.linkAuth.cert,
    CERT_TYPE.ED_AUTH,
    keys.linkAuth.key.public,
    keys.signing.key.public,
    "linkAuth",
  );
  edOk(
    keys.tls.linkCert,
    CERT_TYPE.TLS_LINK,
    sha256(keys.tls.certDer),
    keys.signing.key.public,
    "tls link",
  );
  const tls = parseX509(keys.tls.certDer);
  if (
    !sameBytes(tls.subjectKeyDer, keys.tls.key.publicDer) || !tls.verify(keys.rsaIdentity.publicDer)
  ) {
    fail("tls certificate is not for the TLS key or not signed by the RSA identity");
  }
  try {
    verifyRsaEdCrossCert(keys.rsaEdCrossCert.cert, keys.rsaIdentity.publicDer, at(0));
  } catch (e) {
    fail(`rsaEdCrossCert: ${(e as Error).message}`);
  }
  if (
    !sameBytes(
      parseRsaEdCrossCert(keys.rsaEdCrossCert.cert).edIdentity,
      keys.ed25519Identity.public,
    )
  ) {
    fail("rsaEdCrossCert names another Ed25519 identity");
  }
}
