/**
 * C tor's key directory format (`DataDirectory/keys/`), so a C tor can be run with one of our
 * key sets (or its keys read) in interop tests. Pure: returns and takes bytes, no I/O.
 *
 * Files (C tor `src/feature/relay/routerkeys.c`, `router.c`; tagged files are written by
 * `crypto_write_tagged_contents_to_file`: a 32-byte NUL-padded header `== TYPE: TAG ==`, then
 * the contents):
 *
 * | file | contents |
 * | --- | --- |
 * | `secret_id_key` | RSA identity, PKCS#1 PEM |
 * | `secret_onion_key` | TAP onion key, PKCS#1 PEM |
 * | `ed25519_master_id_secret_key` | `ed25519v1-secret` / `type0`: 64-byte expanded secret |
 * | `ed25519_master_id_public_key` | `ed25519v1-public` / `type0`: 32-byte public key |
 * | `ed25519_signing_secret_key` | `ed25519v1-secret` / `type4`: 64-byte expanded secret |
 * | `ed25519_signing_cert` | `ed25519v1-cert` / `type4`: the type-4 certificate |
 * | `secret_onion_key_ntor` | `c25519v1` / `onion`: 32-byte secret, 32-byte public |
 * @module
 */

import { createHash } from "node:crypto";
import { rsaKeyToPem } from "./rsa.ts";
import type { TorRelayKeys } from "./relay_keys.ts";

const HEADER_LEN = 32;

/** A C tor tagged file: header `== type: tag ==` padded with NULs to 32 bytes, then `body`. */
export function torTaggedFile(type: string, tag: string, body: Uint8Array): Uint8Array {
  const header = new TextEncoder().encode(`== ${type}: ${tag} ==`);
  if (header.length >= HEADER_LEN) {
    throw new RangeError(`Tagged file header too long: ${type}: ${tag}`);
  }
  const out = new Uint8Array(HEADER_LEN + body.length);
  out.set(header);
  out.set(body, HEADER_LEN);
  return out;
}

/** Reads a C tor tagged file; SyntaxError if the header is not `== type: tag ==`. */
export function readTorTaggedFile(
  bytes: Uint8Array,
): { type: string; tag: string; body: Uint8Array } {
  if (bytes.length < HEADER_LEN) {
    throw new SyntaxError(`Tagged file shorter than its header: ${bytes.length}`);
  }
  const h = bytes.subarray(0, HEADER_LEN);
  const end = h.indexOf(0);
  if (end < 0 || h.subarray(end).some((b) => b !== 0)) {
    throw new SyntaxError("Tagged file header is not NUL-padded");
  }
  const m = new TextDecoder().decode(h.subarray(0, end)).match(/^== ([^:]+): (.+) ==$/);
  if (!m) throw new SyntaxError("Tagged file header is not '== type: tag =='");
  return { type: m[1]!, tag: m[2]!, body: bytes.slice(HEADER_LEN) };
}

/** The 64-byte expanded Ed25519 secret of a 32-byte seed (RFC 8032 §5.1.5: clamped SHA-512). */
export function expandEd25519Seed(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new RangeError(`Ed25519 seed must be 32 bytes: ${seed.length}`);
  const h = new Uint8Array(createHash("sha512").update(seed).digest());
  h[0] = h[0]! & 248;
  h[31] = (h[31]! & 63) | 64;
  return h;
}

/** The files of a C tor `keys/` directory holding this key set (write them with mode 0600). */
export function torKeyFiles(keys: TorRelayKeys): Record<string, Uint8Array> {
  const pem = (s: string) => new TextEncoder().encode(s);
  const ntor = new Uint8Array(64);
  ntor.set(keys.ntor.key.secret);
  ntor.set(keys.ntor.key.public, 32);
  return {
    secret_id_key: pem(rsaKeyToPem(keys.rsaIdentity)),
    secret_onion_key: pem(rsaKeyToPem(keys.tapOnion.key)),
    ed25519_master_id_secret_key: torTaggedFile(
      "ed25519v1-secret",
      "type0",
      expandEd25519Seed(keys.ed25519Identity.secret),
    ),
    ed25519_master_id_public_key: torTaggedFile(
      "ed25519v1-public",
      "type0",
      keys.ed25519Identity.public,
    ),
    ed25519_signing_secret_key: torTaggedFile(
      "ed25519v1-secret",
      "type4",
      expandEd25519Seed(keys.signing.key.secret),
    ),
    ed25519_signing_cert: torTaggedFile("ed25519v1-cert", "type4", keys.signing.cert),
    secret_onion_key_ntor: torTaggedFile("c25519v1", "onion", ntor),
  };
}
