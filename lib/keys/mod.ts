/**
 * Tor's relay keys and certificates: RSA-1024 identity and TAP keys, Ed25519 identity,
 * signing and link-auth keys with Tor's certificates (cert-spec), X.509 link and identity
 * certificates, the ntor onion key and its cross-certificate, and the CERTS-cell checks of
 * tor-spec §4.2. Pure: no I/O (the key file is text; callers write it with mode 0600).
 *
 * @example A relay's responder CERTS cell proves its identity
 * ```ts
 * import {
 *   generateTorRelayKeys,
 *   renewTorRelayKeys,
 *   responderCerts,
 *   torRelayFingerprint,
 *   verifyPeerCerts,
 * } from "./mod.ts";
 *
 * const t0 = new Date("2026-12-04T00:00:00Z");
 * const keys = generateTorRelayKeys(t0);
 * const peer = verifyPeerCerts(responderCerts(keys), {
 *   role: "responder",
 *   tlsCertDer: keys.tls.certDer,
 *   now: t0,
 * });
 * if (peer.rsaFingerprint !== torRelayFingerprint(keys)) throw new Error("wrong fingerprint");
 *
 * // 29 days on, the signing certificate (30 days) has been renewed, the identity kept
 * const { keys: later, renewed } = renewTorRelayKeys(keys, new Date("2027-01-02T00:00:00Z"));
 * if (!renewed.includes("signing")) throw new Error("signing cert not renewed");
 * if (torRelayFingerprint(later) !== torRelayFingerprint(keys)) throw new Error("identity changed");
 * ```
 * @module
 */

export * from "./cert_error.ts";
export * from "./rsa.ts";
export * from "./x509.ts";
export * from "./ed_cert.ts";
export * from "./ntor_crosscert.ts";
export * from "./relay_keys.ts";
export * from "./tor_key_files.ts";
