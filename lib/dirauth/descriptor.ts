/**
 * A relay's server descriptor (dir-spec §2.1.1 "Server descriptor format"), written in the
 * order and with the signatures Tor 0.4.9's authorities accept, and a checker for it.
 *
 * The order follows C tor's own writer (src/feature/relay/router.c
 * `router_dump_router_to_string`) and the positions its parser enforces
 * (src/feature/dirparse/routerparse.c `router_parse_entry_from_string`):
 *
 * | line | rule (dir-spec §2.1.1 / routerparse.c) |
 * | --- | --- |
 * | `router NICK ADDR ORPORT 0 0` | first ("at start, exactly once"); SOCKSPort and DirPort 0 |
 * | `identity-ed25519` + ED25519 CERT | right after `router` ("Ed25519 certificate in wrong position"): the type-4 signing-key cert, with the signer-key extension |
 * | `master-key-ed25519` | base64 of the Ed25519 identity without `=`; must equal the cert's signer |
 * | `platform`, `proto`, `published`, `fingerprint`, `uptime`, `bandwidth` | `proto` is required (no `proto` = "obsolete, rejected quietly"); `fingerprint` in groups of 4 |
 * | `onion-key`, `signing-key` | TAP onion key and RSA identity, PKCS#1 PEM; authorities still demand TAP (process_descs.c, "Missing TAP key in descriptor.") |
 * | `onion-key-crosscert` + CROSSCERT | RSA-sign by the TAP key of SHA-1(identity DER) ‖ Ed25519 identity (torcert.c `check_tap_onion_key_crosscert`) |
 * | `ntor-onion-key-crosscert S` + ED25519 CERT | type 0x0A certifying the Ed25519 identity, signed by the key derived from the ntor key; S its sign bit (dir-spec appendix C) |
 * | `contact`, `ntor-onion-key` | ntor key base64 without `=` (as `curve25519_public_to_base64(…, false)`) |
 * | `accept`/`reject` lines | the relay's own exit policy; at least one ("No exit policy tokens") |
 * | `router-sig-ed25519 SIG` | second to last: Ed25519 by the signing key over SHA-256("Tor router descriptor signature v1" ‖ text from `router ` through the space after `router-sig-ed25519`) |
 * | `router-signature` + SIGNATURE | last: Tor's RSA signature by the identity key over SHA-1 of the text from `router ` through "router-signature\n" |
 *
 * Base64 objects are in 64-column lines (tor's `BASE64_ENCODE_MULTILINE`).
 * @module
 */

import { Buffer } from "node:buffer";
import { constants, createHash, createPublicKey, publicDecrypt, verify } from "node:crypto";
import { VERSION } from "../version.ts";
import { type RsaKeyPair, torRsaSign } from "../keys/rsa.ts";
import { descriptorKeys, type TorRelayKeys } from "../keys/relay_keys.ts";
import { ed25519FromCurve25519Public } from "../keys/ntor_crosscert.ts";

/** The `proto` line our relays claim by default: only what is implemented (TOR-INTEROP.md). */
export const DEFAULT_PROTO =
  "Cons=1-2 Desc=1-2 FlowCtrl=1 Link=4-5 LinkAuth=3 Microdesc=1-2 Relay=2";

/** The exit policy of a relay that is not an exit. */
export const DEFAULT_EXIT_POLICY: readonly string[] = ["reject *:*"];

/** Our honest `platform` line: never "Tor …" (versions.c applies Tor's version gate to those). */
export function defaultPlatform(): string {
  return `pctcp ${VERSION} on Deno ${Deno.version.deno}`;
}

/** Prefix of the Ed25519 descriptor signature (routerparse.c `ED_DESC_SIGNATURE_PREFIX`). */
export const ED_DESC_SIGNATURE_PREFIX = "Tor router descriptor signature v1";

/** How long the ntor cross-certificate is valid from `published` (tor: the onion key lifetime, 28 days). */
export const NTOR_CROSSCERT_LIFETIME_MS = 28 * 24 * 3600_000;

/**
 * The keys and certificates a descriptor is made with: what {@linkcode makeServerDescriptor}
 * needs of a relay's key set (lib/keys `descriptorKeys(TorRelayKeys)` gives it).
 */
export interface DescriptorKeys {
  /** RSA-1024 identity: the private key and the PKCS#1 public DER. */
  identity: RsaKeyPair;
  /** RSA-1024 TAP onion key. */
  tapOnion: RsaKeyPair;
  /** Ed25519 master identity public key (32 bytes). */
  edIdentity: Uint8Array;
  /** The type-4 certificate of the signing key, signed by the identity, with the signer key. */
  signingCert: Uint8Array;
  /** Ed25519 signature (64 bytes) of `message` by the signing key. */
  signWithSigningKey(message: Uint8Array): Uint8Array;
  /** The X25519 ntor onion public key (32 bytes). */
  ntorPublic: Uint8Array;
  /** The ntor-onion-key cross-certificate (type 0x0A) expiring at `expires`, and its sign bit. */
  ntorCrossCert(expires: Date): { cert: Uint8Array; signBit: 0 | 1 };
}

/** What a descriptor says besides its keys. */
export interface ServerDescriptorOptions {
  /** Nickname: 1–19 letters and digits. */
  nickname: string;
  /** IPv4 address of the ORPort. */
  address: string;
  /** ORPort. */
  orPort: number;
  /** Bytes per second: token-bucket rate and burst, and the observed bandwidth. */
  bandwidth: { rate: number; burst: number; observed: number };
  /** Exit policy lines (`accept|reject ADDR[/MASK]:PORT[-PORT]`), default `reject *:*`. */
  exitPolicy?: readonly string[];
  /** `platform` (default {@linkcode defaultPlatform}); must not start with "Tor ". */
  platform?: string;
  /** `proto` (default {@linkcode DEFAULT_PROTO}). */
  proto?: string;
  /** `contact`, if any (one line). */
  contact?: string;
  /** Publication time (whole seconds are written). */
  published: Date;
  /** Seconds the relay has been running (default 0). */
  uptime?: number;
}

const NICKNAME = /^[A-Za-z0-9]{1,19}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** dir-spec §2.1.3 exitpattern: accept/reject, `*` or an IPv4 address with mask, a port range. */
const POLICY =
  /^(accept|reject) (\*|\*4|(\d{1,3}\.){3}\d{1,3}(\/(\d{1,2}|(\d{1,3}\.){3}\d{1,3}))?):(\*|\d{1,5}(-\d{1,5})?)$/;

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

/** Base64 without `=` padding (tor's `ed25519_public_to_base64`, `digest256_to_base64`, …). */
function b64NoPad(bytes: Uint8Array): string {
  return b64(bytes).replace(/=+$/, "");
}

/** A PEM-style object: BEGIN line, base64 in 64-column lines, END line. */
function pemObject(type: string, bytes: Uint8Array): string {
  const lines = b64(bytes).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
}

function isoTime(d: Date): string {
  return d.toISOString().slice(0, 19).replace("T", " ");
}

function sha1(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

function sha256(...parts: (Uint8Array | string)[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function fingerprintSpaced(identityDer: Uint8Array): string {
  const hex = Buffer.from(sha1(identityDer)).toString("hex").toUpperCase();
  return hex.match(/.{4}/g)!.join(" ");
}

function oneLine(what: string, v: string): string {
  if (/[\r\n\0]/.test(v)) throw new TypeError(`${what} must be one line: ${JSON.stringify(v)}`);
  return v;
}

function uint(what: string, v: number, min = 0): number {
  if (!Number.isSafeInteger(v) || v < min || v > 0x7fffffff) {
    throw new RangeError(`${what} must be an integer ${min}..2147483647: ${v}`);
  }
  return v;
}

/**
 * Writes and signs a server descriptor (dir-spec §2.1.1) in the order described in the module
 * doc, from a relay's TorRelayKeys (lib/keys) or the parts of them in {@linkcode DescriptorKeys}.
 * Throws TypeError/RangeError/SyntaxError on options tor would refuse.
 */
export function makeServerDescriptor(
  relayKeys: TorRelayKeys | DescriptorKeys,
  o: ServerDescriptorOptions,
): string {
  const keys = "rsaIdentity" in relayKeys ? descriptorKeys(relayKeys) : relayKeys;
  if (!NICKNAME.test(o.nickname)) {
    throw new TypeError(`Nickname must be 1-19 letters or digits: ${JSON.stringify(o.nickname)}`);
  }
  if (!IPV4.test(o.address)) throw new TypeError(`Address must be IPv4: ${o.address}`);
  uint("orPort", o.orPort, 1);
  if (o.orPort > 65535) throw new RangeError(`orPort must be 1..65535: ${o.orPort}`);
  const platform = oneLine("platform", o.platform ?? defaultPlatform());
  if (platform.startsWith("Tor ")) {
    throw new RangeError(`platform must not claim to be Tor: ${platform}`);
  }
  const proto = oneLine("proto", o.proto ?? DEFAULT_PROTO);
  if (!/^([A-Za-z0-9-]+=(\d+(-\d+)?(,\d+(-\d+)?)*)?( |$))+$/.test(proto)) {
    throw new SyntaxError(`Malformed proto line: ${proto}`);
  }
  const policy = o.exitPolicy ?? DEFAULT_EXIT_POLICY;
  if (policy.length === 0) throw new RangeError("Exit policy must have at least one line");
  for (const p of policy) {
    if (!POLICY.test(p)) throw new SyntaxError(`Malformed exit policy line: ${p}`);
  }
  const bw = o.bandwidth;
  uint("bandwidth rate", bw.rate, 1);
  uint("bandwidth burst", bw.burst);
  uint("bandwidth observed", bw.observed);
  const uptime = uint("uptime", Math.floor(o.uptime ?? 0));
  if (Number.isNaN(o.published.getTime())) throw new RangeError("published is not a valid date");
  const published = new Date(Math.floor(o.published.getTime() / 1000) * 1000);
  if (keys.edIdentity.length !== 32 || keys.ntorPublic.length !== 32) {
    throw new TypeError("Ed25519 identity and ntor key must be 32 bytes");
  }

  // torcert.c check_tap_onion_key_crosscert: RSA-sign (no DigestInfo) by the TAP key.
  const tapCross = torRsaSign(
    keys.tapOnion,
    concat(sha1(keys.identity.publicDer), keys.edIdentity),
  );
  const ntorCross = keys.ntorCrossCert(new Date(published.getTime() + NTOR_CROSSCERT_LIFETIME_MS));

  const text = `router ${o.nickname} ${o.address} ${o.orPort} 0 0\n` +
    "identity-ed25519\n" + pemObject("ED25519 CERT", keys.signingCert) +
    `master-key-ed25519 ${b64NoPad(keys.edIdentity)}\n` +
    `platform ${platform}\n` +
    `proto ${proto}\n` +
    `published ${isoTime(published)}\n` +
    `fingerprint ${fingerprintSpaced(keys.identity.publicDer)}\n` +
    `uptime ${uptime}\n` +
    `bandwidth ${bw.rate} ${bw.burst} ${bw.observed}\n` +
    "onion-key\n" + pemObject("RSA PUBLIC KEY", keys.tapOnion.publicDer) +
    "signing-key\n" + pemObject("RSA PUBLIC KEY", keys.identity.publicDer) +
    "onion-key-crosscert\n" + pemObject("CROSSCERT", tapCross) +
    `ntor-onion-key-crosscert ${ntorCross.signBit}\n` + pemObject("ED25519 CERT", ntorCross.cert) +
    (o.contact !== undefined ? `contact ${oneLine("contact", o.contact)}\n` : "") +
    `ntor-onion-key ${b64NoPad(keys.ntorPublic)}\n` +
    policy.map((p) => p + "\n").join("");
  return signServerDescriptor(text, keys);
}

/**
 * Appends the two signatures to an unsigned descriptor body (everything from `router ` through
 * the exit policy, ending in a newline): `router-sig-ed25519` by the signing key over
 * SHA-256("Tor router descriptor signature v1" ‖ body ‖ "router-sig-ed25519 "), then
 * `router-signature` by the RSA identity over SHA-1 of everything through "router-signature\n"
 * (dir-spec §2.1.1; router.c `router_dump_router_to_string`). RangeError over 20 000 bytes.
 */
export function signServerDescriptor(
  body: string,
  keys: Pick<DescriptorKeys, "identity" | "signWithSigningKey">,
): string {
  if (!body.startsWith("router ") || !body.endsWith("\n")) {
    throw new SyntaxError("A descriptor body starts with 'router ' and ends with a newline");
  }
  let text = body + "router-sig-ed25519 ";
  const edSig = keys.signWithSigningKey(sha256(ED_DESC_SIGNATURE_PREFIX, text));
  text += `${b64NoPad(edSig)}\nrouter-signature\n`;
  const rsaSig = torRsaSign(keys.identity, sha1(text));
  text += pemObject("SIGNATURE", rsaSig);
  // dirserv_add_descriptor: "Router descriptor was too large." (MAX_DESCRIPTOR_UPLOAD_SIZE)
  if (text.length > 20_000) {
    throw new RangeError(`Descriptor is ${text.length} bytes, over tor's 20000`);
  }
  return text;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading a descriptor back (enough to check our own output; tests use it).

/** One item of a directory document (dir-spec §1.2): a keyword line and an optional object. */
export interface DescriptorItem {
  /** The keyword. */
  keyword: string;
  /** The arguments after the keyword (split at spaces). */
  args: string[];
  /** The whole keyword line. */
  line: string;
  /** The object after the line (`-----BEGIN TYPE-----` … `-----END TYPE-----`), if any. */
  object?: { type: string; bytes: Uint8Array };
}

/** A descriptor that does not check out (bad signature, wrong order, mismatched keys). */
export class DescriptorError extends Error {
  /** A descriptor error with `message` as the reason. */
  constructor(message: string) {
    super(message);
    this.name = "DescriptorError";
  }
}

/** Splits a document into items (dir-spec §1.2); SyntaxError on a malformed line or object. */
export function tokenizeDescriptor(text: string): DescriptorItem[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const items: DescriptorItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "" && i === lines.length - 1) break;
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)(?: (.*))?$/.exec(line);
    if (!m) throw new SyntaxError(`Malformed keyword line ${i + 1}: ${JSON.stringify(line)}`);
    const item: DescriptorItem = {
      keyword: m[1]!,
      args: m[2] === undefined ? [] : m[2].split(" ").filter((x) => x !== ""),
      line,
    };
    const begin = /^-----BEGIN ([A-Z0-9 ]+)-----$/.exec(lines[i + 1] ?? "");
    if (begin) {
      const type = begin[1]!;
      const body: string[] = [];
      let j = i + 2;
      for (; j < lines.length && lines[j] !== `-----END ${type}-----`; j++) {
        if (!/^[A-Za-z0-9+/=]{1,64}$/.test(lines[j]!)) {
          throw new SyntaxError(`Malformed object line ${j + 1} in ${type}`);
        }
        body.push(lines[j]!);
      }
      if (j >= lines.length) {
        throw new SyntaxError(`Object ${type} after line ${i + 1} is not closed`);
      }
      item.object = { type, bytes: new Uint8Array(Buffer.from(body.join(""), "base64")) };
      i = j;
    }
    items.push(item);
  }
  return items;
}

/** What {@linkcode verifyServerDescriptor} read from a descriptor. */
export interface ParsedServerDescriptor {
  /** Every item in order. */
  items: DescriptorItem[];
  /** The keywords in order. */
  keywords: string[];
  /** `router` fields. */
  nickname: string;
  /** `router` address. */
  address: string;
  /** `router` ORPort. */
  orPort: number;
  /** SHA-1 of the RSA identity, 40 upper-case hex. */
  fingerprint: string;
  /** The Ed25519 master identity (32 bytes). */
  edIdentity: Uint8Array;
  /** The Ed25519 signing key certified by `identity-ed25519`. */
  signingKey: Uint8Array;
  /** The ntor onion key (32 bytes). */
  ntorOnionKey: Uint8Array;
  /** `platform`. */
  platform: string;
  /** `proto`. */
  proto: string;
  /** `published`. */
  published: Date;
  /** The accept/reject lines in order. */
  exitPolicy: string[];
  /** `contact`, if present. */
  contact?: string;
}

/** A parsed Tor Ed25519 certificate (cert-spec §2.1). */
interface EdCertFields {
  type: number;
  expiresHours: number;
  certifiedKey: Uint8Array;
  signerKey?: Uint8Array;
  signed: Uint8Array;
  signature: Uint8Array;
}

/** cert-spec §2.1: VERSION 1 | TYPE | EXPIRATION hours u32 | KEY_TYPE | KEY 32 | N_EXT | exts | SIG 64. */
function readEdCert(b: Uint8Array, what: string): EdCertFields {
  const bad = (why: string) => new DescriptorError(`${what}: ${why}`);
  if (b.length < 104 || b[0] !== 1) throw bad("not a version-1 Ed25519 certificate");
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const cert: EdCertFields = {
    type: b[1]!,
    expiresHours: dv.getUint32(2),
    certifiedKey: b.slice(7, 39),
    signed: b.slice(0, b.length - 64),
    signature: b.slice(b.length - 64),
  };
  let at = 40;
  for (let n = b[39]!; n > 0; n--) {
    if (at + 4 > b.length - 64) throw bad("truncated extension");
    const len = dv.getUint16(at), type = b[at + 2]!, flags = b[at + 3]!;
    if (at + 4 + len > b.length - 64) throw bad("truncated extension");
    if (type === 4 && len === 32) cert.signerKey = b.slice(at + 4, at + 36);
    else if (flags & 1) throw bad(`unknown extension ${type} that affects validation`);
    at += 4 + len;
  }
  if (at !== b.length - 64) throw bad("trailing bytes before the signature");
  return cert;
}

const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");

function edVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI, publicKey]),
      format: "der",
      type: "spki",
    });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

function rsaRecover(publicDer: Uint8Array, signature: Uint8Array): Uint8Array | undefined {
  try {
    const key = createPublicKey({ key: Buffer.from(publicDer), format: "der", type: "pkcs1" });
    return new Uint8Array(publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature));
  } catch {
    return undefined;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function b64Decode(s: string, len: number, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+=*$/.test(s)) throw new DescriptorError(`${what} is not base64`);
  const b = new Uint8Array(Buffer.from(s, "base64"));
  if (b.length !== len) throw new DescriptorError(`${what} is ${b.length} bytes, not ${len}`);
  return b;
}

/** Keywords a server descriptor must have exactly once (routerparse.c `T1`). */
const REQUIRED_ONCE = [
  "router",
  "identity-ed25519",
  "master-key-ed25519",
  "proto",
  "published",
  "bandwidth",
  "onion-key",
  "signing-key",
  "onion-key-crosscert",
  "ntor-onion-key-crosscert",
  "ntor-onion-key",
  "router-sig-ed25519",
  "router-signature",
];

/**
 * Checks a server descriptor as a 0.4.9 authority's parser does (routerparse.c
 * `router_parse_entry_from_string`, torcert.c): positions (router first, identity-ed25519
 * right after it, router-sig-ed25519 second to last, router-signature last), required keywords,
 * the identity-ed25519 certificate (type 4, signer key = master-key-ed25519), the ntor and TAP
 * cross-certificates, both descriptor signatures and the fingerprint; with `now`, also that no
 * certificate has expired and `published` is not in the future. Throws SyntaxError when it does
 * not parse and DescriptorError when it does not check out.
 */
export function verifyServerDescriptor(
  text: string,
  o: { now?: Date } = {},
): ParsedServerDescriptor {
  const items = tokenizeDescriptor(text);
  const keywords = items.map((x) => x.keyword);
  for (const k of REQUIRED_ONCE) {
    const n = keywords.filter((x) => x === k).length;
    if (n !== 1) throw new DescriptorError(`${k} appears ${n} times, not once`);
  }
  const get = (k: string) => items.find((x) => x.keyword === k)!;
  if (keywords[0] !== "router") throw new DescriptorError("router is not the first line");
  if (keywords[1] !== "identity-ed25519") {
    throw new DescriptorError("Ed25519 certificate in wrong position");
  }
  if (keywords[keywords.length - 2] !== "router-sig-ed25519") {
    throw new DescriptorError("Ed25519 signature in wrong position");
  }
  if (keywords[keywords.length - 1] !== "router-signature") {
    throw new DescriptorError("router-signature is not the last item");
  }
  const router = get("router");
  if (router.args.length < 5) throw new SyntaxError(`router line too short: ${router.line}`);
  const [nickname, address, orPortText] = router.args as [string, string, string];
  const exitPolicy = items.filter((x) => x.keyword === "accept" || x.keyword === "reject")
    .map((x) => x.line);
  if (exitPolicy.length === 0) throw new DescriptorError("No exit policy tokens in descriptor");
  const need = (k: string, type: string) => {
    const obj = get(k).object;
    if (obj?.type !== type) throw new DescriptorError(`Wrong object type on ${k}`);
    return obj.bytes;
  };
  const identityDer = need("signing-key", "RSA PUBLIC KEY");
  const tapDer = need("onion-key", "RSA PUBLIC KEY");
  const fingerprint = Buffer.from(sha1(identityDer)).toString("hex").toUpperCase();
  const fpItem = items.find((x) => x.keyword === "fingerprint");
  if (fpItem && fpItem.args.join("") !== fingerprint) {
    throw new DescriptorError("Fingerprint does not match identity digest");
  }

  // identity-ed25519: the signing key's type-4 cert, signed by (and naming) the master key.
  const idCert = readEdCert(need("identity-ed25519", "ED25519 CERT"), "identity-ed25519");
  if (idCert.type !== 4 || !idCert.signerKey) {
    throw new DescriptorError("Invalid form for ed25519 cert");
  }
  const master = b64Decode(get("master-key-ed25519").args[0] ?? "", 32, "master-key-ed25519");
  if (!equalBytes(master, idCert.signerKey)) {
    throw new DescriptorError("Ed25519 master key does not match key in certificate");
  }
  if (!edVerify(master, idCert.signed, idCert.signature)) {
    throw new DescriptorError("identity-ed25519 certificate is not signed by the master key");
  }
  // ntor-onion-key-crosscert: type 0x0A naming the master key, signed by the ntor-derived key.
  const ntorItem = get("ntor-onion-key-crosscert");
  const signBit = ntorItem.args[0];
  if (signBit !== "0" && signBit !== "1") {
    throw new DescriptorError("Bad sign bit on ntor-onion-key-crosscert");
  }
  const ntorKey = b64Decode(get("ntor-onion-key").args[0] ?? "", 32, "ntor-onion-key");
  const ntorCert = readEdCert(
    need("ntor-onion-key-crosscert", "ED25519 CERT"),
    "ntor-onion-key-crosscert",
  );
  if (ntorCert.type !== 0x0a || !equalBytes(ntorCert.certifiedKey, master)) {
    throw new DescriptorError("Invalid contents for ntor-onion-key-crosscert cert");
  }
  const ntorEd = ed25519FromCurve25519Public(ntorKey, signBit === "1" ? 1 : 0);
  if (!edVerify(ntorEd, ntorCert.signed, ntorCert.signature)) {
    throw new DescriptorError("ntor-onion-key-crosscert is not signed by the ntor onion key");
  }
  // onion-key-crosscert: TAP key's signature of SHA-1(identity DER) | master key.
  const tapCross = rsaRecover(tapDer, need("onion-key-crosscert", "CROSSCERT"));
  if (!tapCross || !equalBytes(tapCross, concat(sha1(identityDer), master))) {
    throw new DescriptorError("Incorrect TAP cross-verification");
  }
  // router-sig-ed25519 over SHA-256(prefix | "router " … "router-sig-ed25519 ").
  const start = text.indexOf("router ");
  if (start !== 0) throw new DescriptorError("Descriptor does not start with router");
  const edAt = text.indexOf("\nrouter-sig-ed25519 ");
  const edSigned = text.slice(0, edAt + "\nrouter-sig-ed25519 ".length);
  const edSig = b64Decode(get("router-sig-ed25519").args[0] ?? "", 64, "router-sig-ed25519");
  if (!edVerify(idCert.certifiedKey, sha256(ED_DESC_SIGNATURE_PREFIX, edSigned), edSig)) {
    throw new DescriptorError("router-sig-ed25519 does not verify");
  }
  // router-signature over SHA-1("router " … "\nrouter-signature\n").
  const rsaAt = text.indexOf("\nrouter-signature\n");
  const rsaSigned = text.slice(0, rsaAt + "\nrouter-signature\n".length);
  const rsaDigest = rsaRecover(identityDer, need("router-signature", "SIGNATURE"));
  if (!rsaDigest || !equalBytes(rsaDigest, sha1(rsaSigned))) {
    throw new DescriptorError("router-signature does not verify");
  }
  const publishedText = get("published").args.join(" ");
  const published = new Date(publishedText.replace(" ", "T") + "Z");
  if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(publishedText) || isNaN(published.getTime())) {
    throw new SyntaxError(`Bad published time: ${publishedText}`);
  }
  if (o.now) {
    const hours = o.now.getTime() / 3600_000;
    if (idCert.expiresHours <= hours) throw new DescriptorError("identity-ed25519 has expired");
    if (ntorCert.expiresHours <= hours) {
      throw new DescriptorError("ntor-onion-key-crosscert has expired");
    }
    if (published.getTime() > o.now.getTime() + 12 * 3600_000) {
      throw new DescriptorError("published is in the future");
    }
  }
  const platformItem = items.find((x) => x.keyword === "platform");
  const contactItem = items.find((x) => x.keyword === "contact");
  const parsed: ParsedServerDescriptor = {
    items,
    keywords,
    nickname,
    address,
    orPort: Number(orPortText),
    fingerprint,
    edIdentity: master,
    signingKey: idCert.certifiedKey,
    ntorOnionKey: ntorKey,
    platform: platformItem ? platformItem.line.slice("platform ".length) : "",
    proto: get("proto").line.slice("proto ".length),
    published,
    exitPolicy,
  };
  if (contactItem) parsed.contact = contactItem.line.slice("contact ".length);
  return parsed;
}

/**
 * What a descriptor says, without what changes at every rebuild (`published`, `uptime`, the
 * ntor cross-certificate whose expiry follows `published`, and both signatures): two
 * descriptors with equal keys need no republishing for a change. Unparseable text is its own key.
 */
export function descriptorContentKey(text: string): string {
  let items: DescriptorItem[];
  try {
    items = tokenizeDescriptor(text);
  } catch {
    return text;
  }
  const skip = new Set(["published", "uptime", "router-sig-ed25519", "router-signature"]);
  return items.filter((x) => !skip.has(x.keyword)).map((x) =>
    x.keyword === "ntor-onion-key-crosscert" || !x.object
      ? x.line
      : `${x.line}\n${x.object.type} ${b64(x.object.bytes)}`
  ).join("\n");
}

/**
 * A descriptor's digest, 40 upper-case hex: SHA-1 of the text from `router ` through
 * "\nrouter-signature\n" (routerparse.c `router_get_router_hash`); what the consensus and
 * `/tor/server/d/` name it by (dir-spec §4.2). SyntaxError without a router-signature line.
 */
export function descriptorDigestHex(text: string): string {
  const at = text.indexOf("\nrouter-signature\n");
  const start = text.startsWith("router ") ? 0 : text.indexOf("\nrouter ") + 1;
  if (at < 0 || start < 0 || start > at) {
    throw new SyntaxError("Not a server descriptor: no router line before router-signature");
  }
  return Buffer.from(sha1(text.slice(start, at + "\nrouter-signature\n".length))).toString("hex")
    .toUpperCase();
}
