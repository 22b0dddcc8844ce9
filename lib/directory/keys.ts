/**
 * A relay's long-term keys: Ed25519 identity, ntor onion key and link key (both X25519),
 * stored as one JSON file (mode 0600) by `pctcp keygen`.
 * @module
 */

import { createHash } from "node:crypto";
import { ed25519KeyPair } from "../crypto/ed25519.ts";
import { x25519KeyPair } from "../crypto/x25519.ts";
import { fromBase64, fromHex, toBase64, toHex } from "../util/bytes.ts";

/** A relay's secret keys. */
export interface RelayKeys {
  /** Ed25519 identity seed and public key. */
  identity: { secret: Uint8Array; public: Uint8Array };
  /** ntor onion key (X25519) for CREATE2. */
  onion: { secret: Uint8Array; public: Uint8Array };
  /** Link key (X25519) that authenticates the relay's end of every link. */
  link: { secret: Uint8Array; public: Uint8Array };
}

/** Makes fresh relay keys. */
export function generateRelayKeys(): RelayKeys {
  return { identity: ed25519KeyPair(), onion: x25519KeyPair(), link: x25519KeyPair() };
}

/**
 * The 20-byte relay identity digest used where Tor uses the RSA identity digest (ntor ID,
 * EXTEND2 legacy id): SHA-1 of the Ed25519 identity key.
 */
export function identityDigest(ed25519Public: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(ed25519Public).digest());
}

/** Upper-case hex fingerprint of a relay (40 hex digits), as Tor prints fingerprints. */
export function fingerprint(ed25519Public: Uint8Array): string {
  return toHex(identityDigest(ed25519Public)).toUpperCase();
}

/** Serializes secret keys to JSON text. */
export function relayKeysToJson(keys: RelayKeys): string {
  const pair = (k: { secret: Uint8Array; public: Uint8Array }) => ({
    secret: toBase64(k.secret),
    public: toBase64(k.public),
  });
  return JSON.stringify(
    {
      type: "pctcp-relay-keys",
      v: 1,
      fingerprint: fingerprint(keys.identity.public),
      identity: pair(keys.identity),
      onion: pair(keys.onion),
      link: pair(keys.link),
    },
    null,
    2,
  );
}

/** Parses a keys file; a TypeError says what is wrong. */
export function relayKeysFromJson(text: string): RelayKeys {
  let j: Record<string, { secret?: string; public?: string }>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`keys file is not JSON: ${(e as Error).message}`);
  }
  const pair = (name: string) => {
    const k = j[name];
    if (!k?.secret || !k.public) throw new TypeError(`keys file lacks ${name} key`);
    const out = { secret: fromBase64(k.secret), public: fromBase64(k.public) };
    if (out.secret.length !== 32 || out.public.length !== 32) {
      throw new TypeError(`keys file has a malformed ${name} key`);
    }
    return out;
  };
  return { identity: pair("identity"), onion: pair("onion"), link: pair("link") };
}

export { fromHex };
