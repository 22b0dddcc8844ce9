/**
 * Tor's relay keys and certificates: RSA-1024 identity and TAP keys, Ed25519 identity,
 * signing and link-auth keys with Tor's certificates (cert-spec), X.509 link and identity
 * certificates, the ntor onion key and its cross-certificate, and the CERTS-cell checks of
 * tor-spec §4.2.
 * @module
 */

export * from "./cert_error.ts";
export * from "./rsa.ts";
export * from "./x509.ts";
export * from "./ed_cert.ts";
export * from "./ntor_crosscert.ts";
export * from "./relay_keys.ts";
