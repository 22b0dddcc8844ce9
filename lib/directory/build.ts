/**
 * Makes a network document from relay keys and addresses, for private networks.
 * @module
 */

import { ed25519KeyPair } from "../crypto/ed25519.ts";
import { toBase64 } from "../util/bytes.ts";
import {
  type NetworkDocument,
  type RelayEntry,
  signDocument,
  type SignedDocument,
  type Transport,
} from "./document.ts";
import { relayFingerprint, type RelayKeys } from "./keys.ts";

/** What the document says of one relay. */
export interface RelaySpec {
  /** Nickname. */
  nickname: string;
  /** Keys (only the public halves are published). */
  keys: RelayKeys;
  /** Address. */
  address: string;
  /** OR port. */
  orPort: number;
  /** Flags. */
  flags: string[];
  /** Bandwidth weight (bytes/s). */
  bandwidth: number;
  /** Transports spoken. */
  transports: Transport[];
}

/** Describes a relay for the document. */
export function relayEntry(spec: RelaySpec): RelayEntry {
  return {
    nickname: spec.nickname,
    address: spec.address,
    orPort: spec.orPort,
    identity: toBase64(spec.keys.identity.public),
    fingerprint: relayFingerprint(spec.keys),
    rsaIdentity: toBase64(spec.keys.tor.rsaIdentity.publicDer),
    onionKey: toBase64(spec.keys.onion.public),
    linkKey: toBase64(spec.keys.link.public),
    flags: spec.flags,
    bandwidth: spec.bandwidth,
    transports: spec.transports,
  };
}

/** Signs a document for `relays`, valid from now for `validHours` (default 24 × 30). */
export function makeDocument(
  relays: RelaySpec[],
  options: {
    authoritySecret?: Uint8Array;
    network?: string;
    exitAllow?: string[];
    validHours?: number;
  } = {},
): { document: SignedDocument; authoritySecret: Uint8Array } {
  const authority = ed25519KeyPair(options.authoritySecret);
  const now = Date.now();
  const doc: NetworkDocument = {
    type: "pctcp-directory",
    v: 1,
    network: options.network ?? "pctcp-private",
    validAfter: new Date(now - 60_000).toISOString(),
    validUntil: new Date(now + (options.validHours ?? 720) * 3600_000).toISOString(),
    authority: toBase64(authority.public),
    exitAllow: options.exitAllow ?? [],
    relays: relays.map(relayEntry),
  };
  return { document: signDocument(doc, authority.secret), authoritySecret: authority.secret };
}
