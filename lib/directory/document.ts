/**
 * The signed network document: every relay's address, ports, keys, flags, bandwidth and the
 * transports it speaks, signed by the network's authority key (Ed25519) over its canonical
 * JSON. Relays and clients refuse a document with a bad signature or outside its validity.
 * @module
 */

import { ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import { fromBase64, toBase64 } from "../util/bytes.ts";
import { rsaKeyFingerprint } from "./keys.ts";

/**
 * A link transport a relay speaks: a name of the transport registry
 * (lib/transport/registry.ts `TRANSPORT_NAMES`; "tor" and "pctcp" today). A name a peer does
 * not know is one it does not speak.
 */
export type Transport = string;

/** One relay's entry. */
export interface RelayEntry {
  /** Nickname, unique in the network. */
  nickname: string;
  /** IPv4 address the relay listens on. */
  address: string;
  /** OR port. */
  orPort: number;
  /** Ed25519 master identity key, base64. */
  identity: string;
  /** 40-hex fingerprint (SHA-1 of the RSA identity key, tor-spec §0.3): the relay's id. */
  fingerprint: string;
  /** RSA-1024 identity key (PKCS#1 DER), base64. */
  rsaIdentity: string;
  /** ntor onion key, base64. */
  onionKey: string;
  /** Link key, base64. */
  linkKey: string;
  /** Flags: "guard", "exit". */
  flags: string[];
  /** Bandwidth weight in bytes per second. */
  bandwidth: number;
  /** Transports spoken. */
  transports: Transport[];
}

/** The document body (everything but the signature). */
export interface NetworkDocument {
  /** Format marker. */
  type: "pctcp-directory";
  /** Format version. */
  v: 1;
  /** Network name. */
  network: string;
  /** Validity start, ISO 8601. */
  validAfter: string;
  /** Validity end, ISO 8601. */
  validUntil: string;
  /** The authority's Ed25519 public key, base64. */
  authority: string;
  /** Destinations exits of this network may connect to besides public ones (CIDR:port). */
  exitAllow: string[];
  /** The relays. */
  relays: RelayEntry[];
}

/** A document with its signature. */
export interface SignedDocument extends NetworkDocument {
  /** Ed25519 signature of the canonical JSON of the body, base64. */
  signature: string;
}

/** A document that cannot be trusted (bad signature, wrong authority, expired). */
export class DirectoryError extends Error {
  /** Error name. */
  override name = "DirectoryError";
}

/** JSON with object keys sorted at every level: the bytes that are signed. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${
      keys.map((k) =>
        `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`
      )
        .join(",")
    }}`;
  }
  return JSON.stringify(value);
}

function body(doc: NetworkDocument | SignedDocument): NetworkDocument {
  const { signature: _s, ...rest } = doc as SignedDocument;
  return rest;
}

/** Signs a document with the authority's Ed25519 seed. */
export function signDocument(doc: NetworkDocument, authoritySecret: Uint8Array): SignedDocument {
  const sig = ed25519Sign(authoritySecret, new TextEncoder().encode(canonicalJson(body(doc))));
  return { ...body(doc), signature: toBase64(sig) };
}

/**
 * Parses and verifies a document: the signature must verify under `authority` (base64; when
 * omitted, the key in the document — trust on first use), and `now` must lie in its validity.
 */
export function verifyDocument(
  text: string,
  options: { authority?: string; now?: Date } = {},
): SignedDocument {
  let doc: SignedDocument;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DirectoryError(`directory is not JSON: ${(e as Error).message}`);
  }
  if (doc?.type !== "pctcp-directory" || doc.v !== 1 || !Array.isArray(doc.relays)) {
    throw new DirectoryError("not a pctcp directory document (v1)");
  }
  const authority = options.authority ?? doc.authority;
  if (authority !== doc.authority) {
    throw new DirectoryError("directory signed by another authority");
  }
  let ok = false;
  try {
    ok = ed25519Verify(
      fromBase64(authority),
      new TextEncoder().encode(canonicalJson(body(doc))),
      fromBase64(String(doc.signature)),
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new DirectoryError("directory signature does not verify");
  const now = (options.now ?? new Date()).getTime();
  if (!(now >= Date.parse(doc.validAfter) && now <= Date.parse(doc.validUntil))) {
    throw new DirectoryError(`directory is not valid now: ${doc.validAfter} .. ${doc.validUntil}`);
  }
  for (const r of doc.relays) {
    let fp = "";
    try {
      fp = rsaKeyFingerprint(fromBase64(String(r.rsaIdentity)));
    } catch { /* not a key: refused below */ }
    if (fp !== r.fingerprint) {
      throw new DirectoryError(`relay ${r.nickname}: fingerprint does not match its identity`);
    }
  }
  return doc;
}
