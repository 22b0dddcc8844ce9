/**
 * Codecs of the link-handshake cells (tor-spec §4 "Negotiating and initializing
 * connections"): VERSIONS, CERTS, AUTH_CHALLENGE, AUTHENTICATE (and its method-3 body),
 * NETINFO, PADDING / VPADDING (the VERSIONS payload itself: messages.ts). Pure functions on payload bytes, no I/O; a decoder throws
 * SyntaxError on a payload it cannot read. Checked both ways against arti's
 * `tor-cell/tests/testvec_chanmsg.rs` (tests/link_cells_test.ts).
 * @module
 */

import { CELL_LEN, CellCommand, PAYLOAD_LEN } from "./cell.ts";
import { encodeVersions } from "./messages.ts";

/** Link protocol versions we speak (tor-spec §4.1; v4 = 4-byte CircIDs, v5 adds padding). */
export const LINK_VERSIONS: readonly number[] = [4, 5];

/**
 * A VERSIONS cell whole, in the form every peer can read before versions are agreed: a
 * 2-byte CircID (0), command 7, length u16, then the versions u16 each (tor-spec §3, §4.1).
 */
export function encodeVersionsCell(versions: readonly number[]): Uint8Array {
  const payload = encodeVersions([...versions]);
  const out = new Uint8Array(5 + payload.length);
  out[2] = CellCommand.VERSIONS;
  out[3] = payload.length >> 8, out[4] = payload.length & 0xff;
  out.set(payload, 5);
  return out;
}

/** The highest version both lists hold, or undefined (tor-spec §4.1). */
export function chooseLinkVersion(
  ours: readonly number[],
  theirs: readonly number[],
): number | undefined {
  let best: number | undefined;
  for (const v of theirs) if (ours.includes(v) && (best === undefined || v > best)) best = v;
  return best;
}

/** One certificate of a CERTS cell. */
export interface CertsCellEntry {
  /** Certificate type (tor-spec §4.2: 1 link X.509, 2 identity X.509, 4–7 Ed25519 / cross). */
  type: number;
  /** The certificate's bytes. */
  body: Uint8Array;
}

/** CERTS payload: `N u8 | (type u8, len u16, body)×N` (tor-spec §4.2). */
export function encodeCerts(entries: readonly CertsCellEntry[]): Uint8Array {
  if (entries.length > 255) throw new RangeError(`too many certificates: ${entries.length}`);
  let n = 1;
  for (const e of entries) {
    if (e.body.length > 0xffff) throw new RangeError(`certificate too long: ${e.body.length}`);
    n += 3 + e.body.length;
  }
  const out = new Uint8Array(n);
  out[0] = entries.length;
  let at = 1;
  for (const e of entries) {
    out[at] = e.type, out[at + 1] = e.body.length >> 8, out[at + 2] = e.body.length & 0xff;
    out.set(e.body, at + 3);
    at += 3 + e.body.length;
  }
  return out;
}

/** Reads a CERTS payload; the bodies are copies. Truncation and trailing bytes are malformed. */
export function decodeCerts(payload: Uint8Array): CertsCellEntry[] {
  if (payload.length < 1) throw new SyntaxError("CERTS payload empty");
  const n = payload[0]!;
  const out: CertsCellEntry[] = [];
  let at = 1;
  for (let i = 0; i < n; i++) {
    if (at + 3 > payload.length) throw new SyntaxError(`CERTS truncated at certificate ${i + 1}`);
    const type = payload[at]!, len = (payload[at + 1]! << 8) | payload[at + 2]!;
    if (at + 3 + len > payload.length) {
      throw new SyntaxError(`CERTS truncated in certificate ${i + 1}: type ${type}, ${len} bytes`);
    }
    out.push({ type, body: payload.slice(at + 3, at + 3 + len) });
    at += 3 + len;
  }
  if (at !== payload.length) {
    throw new SyntaxError(`CERTS has ${payload.length - at} bytes after its certificates`);
  }
  return out;
}

/** An AUTH_CHALLENGE (tor-spec §4.3). */
export interface AuthChallenge {
  /** 32 random bytes. */
  challenge: Uint8Array;
  /** Authentication methods offered (C tor 0.4.9 offers [3]). */
  methods: number[];
}

/** AUTH_CHALLENGE payload: `challenge 32 | N u16 | methods u16×N` (tor-spec §4.3). */
export function encodeAuthChallenge(m: AuthChallenge): Uint8Array {
  if (m.challenge.length !== 32) {
    throw new RangeError(`AUTH_CHALLENGE challenge must be 32 bytes: ${m.challenge.length}`);
  }
  const out = new Uint8Array(34 + 2 * m.methods.length);
  out.set(m.challenge);
  out[32] = m.methods.length >> 8, out[33] = m.methods.length & 0xff;
  m.methods.forEach((v, i) => (out[34 + 2 * i] = v >> 8, out[35 + 2 * i] = v & 0xff));
  return out;
}

/** Reads an AUTH_CHALLENGE payload (trailing bytes are allowed, as tor does). */
export function decodeAuthChallenge(payload: Uint8Array): AuthChallenge {
  if (payload.length < 34) throw new SyntaxError(`AUTH_CHALLENGE too short: ${payload.length}`);
  const n = (payload[32]! << 8) | payload[33]!;
  if (payload.length < 34 + 2 * n) {
    throw new SyntaxError(`AUTH_CHALLENGE truncated: ${n} methods in ${payload.length} bytes`);
  }
  const methods: number[] = [];
  for (let i = 0; i < n; i++) methods.push((payload[34 + 2 * i]! << 8) | payload[35 + 2 * i]!);
  return { challenge: payload.slice(0, 32), methods };
}

/** An AUTHENTICATE (tor-spec §4.4). */
export interface Authenticate {
  /** Authentication method (3: Ed25519-SHA256-RFC5705). */
  authType: number;
  /** The method's authentication bytes. */
  authentication: Uint8Array;
}

/** AUTHENTICATE payload: `type u16 | len u16 | authentication` (tor-spec §4.4). */
export function encodeAuthenticate(m: Authenticate): Uint8Array {
  if (m.authentication.length > 0xffff) {
    throw new RangeError(`authentication too long: ${m.authentication.length}`);
  }
  const out = new Uint8Array(4 + m.authentication.length);
  out[0] = m.authType >> 8, out[1] = m.authType & 0xff;
  out[2] = m.authentication.length >> 8, out[3] = m.authentication.length & 0xff;
  out.set(m.authentication, 4);
  return out;
}

/** Reads an AUTHENTICATE payload. */
export function decodeAuthenticate(payload: Uint8Array): Authenticate {
  if (payload.length < 4) throw new SyntaxError(`AUTHENTICATE too short: ${payload.length}`);
  const authType = (payload[0]! << 8) | payload[1]!, len = (payload[2]! << 8) | payload[3]!;
  if (payload.length < 4 + len) {
    throw new SyntaxError(`AUTHENTICATE truncated: ${len} bytes announced, ${payload.length - 4}`);
  }
  return { authType, authentication: payload.slice(4, 4 + len) };
}

/** The type string that opens an AUTHENTICATE method-3 body. */
export const AUTH0003_TYPE: Uint8Array = new TextEncoder().encode("AUTH0003");
/** Length of a method-3 body: 8 + 8×32 + 24 + 64. */
export const AUTH0003_LEN = 352;

/**
 * The fields of an AUTHENTICATE method-3 body (tor-spec §4.4.2 "Link authentication type 3:
 * Ed25519-SHA256-RFC5705"; TOR-INTEROP.md "Link handshake"), each 32 bytes but RAND.
 */
export interface Auth0003Fields {
  /** SHA-256 of the initiator's RSA identity key (PKCS#1 DER). */
  cid: Uint8Array;
  /** SHA-256 of the responder's RSA identity key. */
  sid: Uint8Array;
  /** The initiator's Ed25519 identity. */
  cidEd: Uint8Array;
  /** The responder's Ed25519 identity. */
  sidEd: Uint8Array;
  /** SHA-256 of every byte the responder sent before AUTHENTICATE (VERSIONS onwards). */
  slog: Uint8Array;
  /** SHA-256 of every byte the initiator sent before AUTHENTICATE. */
  clog: Uint8Array;
  /** SHA-256 of the responder's TLS certificate (DER). */
  scert: Uint8Array;
  /** RFC 5705 exporter, label "EXPORTER FOR TOR TLS CLIENT BINDING AUTH0003", context CID. */
  tlssecrets: Uint8Array;
  /** 24 random bytes. */
  rand: Uint8Array;
}

const AUTH0003_FIELDS = [
  "cid",
  "sid",
  "cidEd",
  "sidEd",
  "slog",
  "clog",
  "scert",
  "tlssecrets",
] as const;

/** The signed part of a method-3 body: `"AUTH0003" | CID … TLSSECRETS | RAND` (288 bytes). */
export function encodeAuth0003Signed(f: Auth0003Fields): Uint8Array {
  const out = new Uint8Array(AUTH0003_LEN - 64);
  out.set(AUTH0003_TYPE);
  let at = 8;
  for (const k of AUTH0003_FIELDS) {
    if (f[k].length !== 32) throw new RangeError(`AUTH0003 ${k} must be 32 bytes: ${f[k].length}`);
    out.set(f[k], at);
    at += 32;
  }
  if (f.rand.length !== 24) {
    throw new RangeError(`AUTH0003 rand must be 24 bytes: ${f.rand.length}`);
  }
  out.set(f.rand, at);
  return out;
}

/** Reads a method-3 body into its fields and the signature over the rest. */
export function decodeAuth0003(body: Uint8Array): Auth0003Fields & {
  /** The bytes the signature covers. */
  signed: Uint8Array;
  /** Ed25519 signature by the initiator's link-auth key (type-6 certificate). */
  signature: Uint8Array;
} {
  if (body.length !== AUTH0003_LEN) {
    throw new SyntaxError(`AUTH0003 body must be ${AUTH0003_LEN} bytes: ${body.length}`);
  }
  for (let i = 0; i < 8; i++) {
    if (body[i] !== AUTH0003_TYPE[i]) throw new SyntaxError("AUTH0003 body has another type");
  }
  const part = (i: number) => body.slice(8 + 32 * i, 8 + 32 * (i + 1));
  return {
    cid: part(0),
    sid: part(1),
    cidEd: part(2),
    sidEd: part(3),
    slog: part(4),
    clog: part(5),
    scert: part(6),
    tlssecrets: part(7),
    rand: body.slice(264, 288),
    signed: body.slice(0, 288),
    signature: body.slice(288, 352),
  };
}

/** A NETINFO (tor-spec §4.5). Addresses as text ("127.0.0.1", "::1"). */
export interface Netinfo {
  /** Seconds since the epoch (a relay's clock; 0 from clients). */
  time: number;
  /** The address of the other side as the sender sees it; undefined when unknown. */
  otherAddress?: string | undefined;
  /** The sender's own addresses. */
  myAddresses: string[];
}

/** NETINFO payload: `TIME u32 | OTHERADDR | NMYADDR u8 | MYADDR×N`, each address
 * `type u8 (4|6) | len u8 | bytes` (tor-spec §4.5); unpadded (a fixed cell pads it). */
export function encodeNetinfo(m: Netinfo): Uint8Array {
  const addr = (a: string | undefined): number[] => {
    if (a === undefined) return [4, 4, 0, 0, 0, 0];
    const b = parseAddress(a);
    return [b.length === 4 ? 4 : 6, b.length, ...b];
  };
  if (m.myAddresses.length > 255) throw new RangeError("too many NETINFO addresses");
  const parts = [
    m.time >>> 24,
    (m.time >>> 16) & 0xff,
    (m.time >>> 8) & 0xff,
    m.time & 0xff,
    ...addr(m.otherAddress),
    m.myAddresses.length,
    ...m.myAddresses.flatMap(addr),
  ];
  if (parts.length > PAYLOAD_LEN) throw new RangeError("NETINFO does not fit a cell");
  return Uint8Array.from(parts);
}

/**
 * Reads a NETINFO payload. Addresses of an unknown type or wrong length are skipped, a zero
 * IPv4 other address is "unknown" (as arti and tor read them); truncation is malformed.
 */
export function decodeNetinfo(payload: Uint8Array): Netinfo {
  let at = 0;
  const need = (n: number) => {
    if (at + n > payload.length) throw new SyntaxError("NETINFO truncated");
  };
  need(4);
  const time = ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>>
    0;
  at = 4;
  const readAddr = (): string | undefined => {
    need(2);
    const type = payload[at]!, len = payload[at + 1]!;
    at += 2;
    need(len);
    const b = payload.subarray(at, at + len);
    at += len;
    if (type === 4 && len === 4) return b.every((x) => x === 0) ? undefined : b.join(".");
    if (type === 6 && len === 16) return formatIpv6(b);
    return undefined;
  };
  const otherAddress = readAddr();
  need(1);
  const n = payload[at++]!;
  const myAddresses: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = readAddr();
    if (a !== undefined) myAddresses.push(a);
  }
  return { time, otherAddress, myAddresses };
}

/** IPv4 dotted or IPv6 text → 4 or 16 bytes (RangeError if neither). */
function parseAddress(a: string): number[] {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.some((x) => x > 255)) throw new RangeError(`bad IPv4 address: ${a}`);
    return b;
  }
  const s = a.replace(/^\[|\]$/g, "");
  if (!/^[0-9a-fA-F:]+$/.test(s) || !s.includes(":")) throw new RangeError(`bad address: ${a}`);
  const halves = s.split("::");
  if (halves.length > 2) throw new RangeError(`bad IPv6 address: ${a}`);
  const words = (h: string) => (h === "" ? [] : h.split(":").map((w) => parseInt(w, 16)));
  const head = words(halves[0]!), tail = halves.length === 2 ? words(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) {
    throw new RangeError(`bad IPv6 address: ${a}`);
  }
  const all = [...head, ...new Array(fill).fill(0), ...tail];
  if (all.some((w) => !(w >= 0 && w <= 0xffff))) throw new RangeError(`bad IPv6 address: ${a}`);
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

/** 16 bytes → RFC 5952 text (longest run of ≥ 2 zero words as "::"). */
function formatIpv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i]! << 8) | b[i + 1]!);
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) best = i, bestLen = j - i;
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** A VPADDING payload of `length` zero bytes (tor-spec §3: its content is ignored). */
export function encodeVpadding(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 0xffff) {
    throw new RangeError(`bad VPADDING length: ${length}`);
  }
  return new Uint8Array(length);
}

/** A PADDING cell whole (4-byte CircID 0, command 0, zero payload: tor-spec §3). */
export function encodePaddingCell(): Uint8Array {
  return new Uint8Array(CELL_LEN);
}
