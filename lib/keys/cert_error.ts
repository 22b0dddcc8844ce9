/**
 * The error a link handshake catches when a peer's certificates do not prove its identity.
 * @module
 */

/**
 * Why a set of certificates was refused (tor-spec §4.2 "CERTS cells", C tor
 * `src/feature/nodelist/torcert.c` `or_handshake_certs_check_both`).
 */
export type CertErrorReason =
  | "malformed" // a certificate does not parse
  | "missing" // a required certificate type is absent
  | "duplicate" // a certificate type appears twice
  | "unexpected" // a type that does not belong in this role's CERTS cell
  | "wrong-type" // a certificate's own type field is not the one its CERTS slot says
  | "key-size" // the RSA identity is not exactly 1024 bits with exponent 65537
  | "key-mismatch" // the signer named in a certificate is not the key that must sign it
  | "missing-signer" // no signing key is named nor given
  | "bad-signature" // a signature does not verify
  | "expired" // past its expiry
  | "not-yet-valid" // before its start of validity
  | "tls-mismatch"; // type 5 is not the SHA-256 of the TLS certificate presented

/** A certificate check failed; `reason` says which rule, the message the details. */
export class CertError extends Error {
  /** Which rule failed. */
  readonly reason: CertErrorReason;

  /** An error for rule `reason`, with `message` saying what was wrong. */
  constructor(reason: CertErrorReason, message: string) {
    super(message);
    this.name = "CertError";
    this.reason = reason;
  }
}
