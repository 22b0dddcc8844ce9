/**
 * A relay's long-term keys: Tor's key set (lib/keys: RSA-1024 identity — its fingerprint is
 * the relay's id everywhere —, TAP onion key, Ed25519 identity, signing and link-auth keys with
 * their certificates, X25519 ntor key, TLS key and certificate) and the X25519 link key of
 * PCTCP's per-circuit connections (announced in band on the authenticated Tor link, never in
 * a descriptor). Stored as one JSON file (mode 0600) by `pctcp keygen`.
 * @module
 */

import { createHash } from "node:crypto";
import { x25519KeyPair } from "../crypto/x25519.ts";
import {
  generateTorRelayKeys,
  rsaFingerprint,
  torRelayFingerprint,
  type TorRelayKeys,
  torRelayKeysFromJson,
  torRelayKeysToJson,
} from "../keys/mod.ts";
import { fromBase64, fromHex, toBase64, toHex } from "../util/bytes.ts";

/** A relay's secret keys. */
export interface RelayKeys {
  /** Tor's key set (the RSA identity names the relay). */
  tor: TorRelayKeys;
  /** Ed25519 master identity (the same pair as `tor.ed25519Identity`). */
  identity: { secret: Uint8Array; public: Uint8Array };
  /** ntor onion key for CREATE2 (the same pair as `tor.ntor.key`; follows its rotation). */
  onion: { secret: Uint8Array; public: Uint8Array };
  /** Link key (X25519) of PCTCP's per-circuit connections (the LINK2 handshake). */
  link: { secret: Uint8Array; public: Uint8Array };
}

/** Relay keys around a Tor key set and a link key. */
export function relayKeysFrom(
  tor: TorRelayKeys,
  link: { secret: Uint8Array; public: Uint8Array },
): RelayKeys {
  return { tor, identity: tor.ed25519Identity, onion: tor.ntor.key, link };
}

/** Makes fresh relay keys (RSA keygen: ≈ 0.1–0.5 s). */
export function generateRelayKeys(now?: Date): RelayKeys {
  return relayKeysFrom(generateTorRelayKeys(now), x25519KeyPair());
}

/** The relay's fingerprint: 40 upper-case hex of SHA-1 of its RSA identity key (tor-spec §0.3). */
export function relayFingerprint(keys: RelayKeys): string {
  return torRelayFingerprint(keys.tor);
}

/** The 20-byte RSA identity digest (ntor's ID, EXTEND2's legacy id) of a 40-hex fingerprint. */
export function fingerprintDigest(fp: string): Uint8Array {
  if (!/^[0-9A-Fa-f]{40}$/.test(fp)) throw new TypeError(`not a 40-hex fingerprint: ${fp}`);
  return fromHex(fp);
}

/** The fingerprint of an RSA identity key (PKCS#1 DER). */
export function rsaKeyFingerprint(rsaIdentityDer: Uint8Array): string {
  return toHex(rsaFingerprint(rsaIdentityDer)).toUpperCase();
}

/**
 * The 20-byte id that PCTCP's per-circuit LINK2 handshake binds (its ntor's ID): SHA-1 of the
 * Ed25519 identity. Internal to that handshake; the relay's id is {@link relayFingerprint}.
 */
export function identityDigest(ed25519Public: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(ed25519Public).digest());
}

/** Serializes secret keys to JSON text. */
export function relayKeysToJson(keys: RelayKeys): string {
  return JSON.stringify(
    {
      type: "pctcp-relay-keys",
      v: 2,
      fingerprint: relayFingerprint(keys),
      tor: JSON.parse(torRelayKeysToJson(keys.tor)),
      link: { secret: toBase64(keys.link.secret), public: toBase64(keys.link.public) },
    },
    null,
    2,
  );
}

/** Parses a keys file; a TypeError or SyntaxError says what is wrong. */
export function relayKeysFromJson(text: string): RelayKeys {
  let j: { type?: string; v?: number; tor?: unknown; link?: { secret?: string; public?: string } };
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`keys file is not JSON: ${(e as Error).message}`);
  }
  if (j?.type !== "pctcp-relay-keys") throw new TypeError("not a pctcp keys file");
  if (j.v !== 2) {
    throw new TypeError(
      `keys file version ${j.v} is not supported (v1 files had no Tor keys: make new ones with \`pctcp keygen\`)`,
    );
  }
  const tor = torRelayKeysFromJson(JSON.stringify(j.tor));
  const l = j.link;
  if (!l?.secret || !l.public) throw new TypeError("keys file lacks the link key");
  const link = { secret: fromBase64(l.secret), public: fromBase64(l.public) };
  if (link.secret.length !== 32 || link.public.length !== 32) {
    throw new TypeError("keys file has a malformed link key");
  }
  return relayKeysFrom(tor, link);
}

export { fromHex };
