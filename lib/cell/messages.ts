/**
 * Bodies of the cells and relay cells we speak, each with an encoder and a decoder that
 * throws {@link MessageError} (a definite violation) on malformed input.
 * @module
 */

/** A malformed message body; the circuit (or stream) it came on is closed. */
export class MessageError extends Error {
  /** Error name. */
  override name = "MessageError";
}

/** Handshake types of CREATE2 (tor-spec §5.1). */
export const HandshakeType = { TAP: 0, FAST: 1, NTOR: 2, NTOR_V3: 3 } as const;

/** CREATE2 body (tor-spec §5.1): HTYPE u16 | HLEN u16 | HDATA. */
export interface Create2 {
  /** Handshake type. */
  htype: number;
  /** Handshake data. */
  hdata: Uint8Array;
}

/** Encodes CREATE2 (also the handshake part of EXTEND2). */
export function encodeCreate2(m: Create2): Uint8Array {
  const out = new Uint8Array(4 + m.hdata.length);
  out[0] = m.htype >>> 8;
  out[1] = m.htype & 0xff;
  out[2] = m.hdata.length >>> 8;
  out[3] = m.hdata.length & 0xff;
  out.set(m.hdata, 4);
  return out;
}

/** Decodes CREATE2 from a cell payload. */
export function decodeCreate2(p: Uint8Array): Create2 {
  if (p.length < 4) throw new MessageError("CREATE2 too short");
  const htype = (p[0]! << 8) | p[1]!;
  const hlen = (p[2]! << 8) | p[3]!;
  if (4 + hlen > p.length) throw new MessageError(`CREATE2 HLEN ${hlen} exceeds the cell`);
  return { htype, hdata: p.slice(4, 4 + hlen) };
}

/** Encodes CREATED2 / EXTENDED2 (tor-spec §5.1): HLEN u16 | HDATA. */
export function encodeCreated2(hdata: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + hdata.length);
  out[0] = hdata.length >>> 8;
  out[1] = hdata.length & 0xff;
  out.set(hdata, 2);
  return out;
}

/** Decodes CREATED2 / EXTENDED2. */
export function decodeCreated2(p: Uint8Array): Uint8Array {
  if (p.length < 2) throw new MessageError("CREATED2 too short");
  const hlen = (p[0]! << 8) | p[1]!;
  if (2 + hlen > p.length) throw new MessageError(`CREATED2 HLEN ${hlen} exceeds the cell`);
  return p.slice(2, 2 + hlen);
}

/** Link specifier types (tor-spec §5.1.2). */
export const LinkSpecType = { IPV4: 0, IPV6: 1, LEGACY_ID: 2, ED25519_ID: 3 } as const;

/** EXTEND2 (tor-spec §5.1.2): where to extend and the CREATE2 to send there. */
export interface Extend2 {
  /** IPv4 address (dotted) of the next hop. */
  address: string;
  /** OR port of the next hop. */
  port: number;
  /** 20-byte identity digest of the next hop. */
  id: Uint8Array;
  /** 32-byte Ed25519 identity, when known. */
  ed25519?: Uint8Array;
  /** The handshake for the next hop. */
  create: Create2;
}

/** Encodes EXTEND2: NSPEC | specs | HTYPE | HLEN | HDATA. */
export function encodeExtend2(m: Extend2): Uint8Array {
  const parts: number[] = [];
  const specs: [number, Uint8Array][] = [];
  const ip = m.address.split(".").map(Number);
  if (ip.length !== 4 || ip.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`EXTEND2 needs an IPv4 address: ${m.address}`);
  }
  specs.push([LinkSpecType.IPV4, new Uint8Array([...ip, m.port >>> 8, m.port & 0xff])]);
  specs.push([LinkSpecType.LEGACY_ID, m.id]);
  if (m.ed25519) specs.push([LinkSpecType.ED25519_ID, m.ed25519]);
  parts.push(specs.length);
  for (const [t, b] of specs) parts.push(t, b.length, ...b);
  const create = encodeCreate2(m.create);
  const out = new Uint8Array(parts.length + create.length);
  out.set(parts);
  out.set(create, parts.length);
  return out;
}

/** Decodes EXTEND2; needs an IPv4 specifier and a legacy identity. */
export function decodeExtend2(p: Uint8Array): Extend2 {
  if (p.length < 1) throw new MessageError("EXTEND2 empty");
  const n = p[0]!;
  let off = 1;
  let address: string | undefined, port = 0, id: Uint8Array | undefined;
  let ed25519: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    if (off + 2 > p.length) throw new MessageError("EXTEND2 link specifier truncated");
    const t = p[off]!, len = p[off + 1]!;
    off += 2;
    if (off + len > p.length) throw new MessageError("EXTEND2 link specifier truncated");
    const b = p.subarray(off, off + len);
    off += len;
    if (t === LinkSpecType.IPV4) {
      if (len !== 6) throw new MessageError("EXTEND2 IPv4 specifier must be 6 bytes");
      address = `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
      port = (b[4]! << 8) | b[5]!;
    } else if (t === LinkSpecType.LEGACY_ID) {
      if (len !== 20) throw new MessageError("EXTEND2 legacy id must be 20 bytes");
      // tor-spec §5.1.2: nodes MUST reject more than one legacy or Ed25519 identity.
      if (id) throw new MessageError("EXTEND2 names more than one legacy identity");
      id = b.slice();
    } else if (t === LinkSpecType.ED25519_ID) {
      if (len !== 32) throw new MessageError("EXTEND2 Ed25519 id must be 32 bytes");
      if (ed25519) throw new MessageError("EXTEND2 names more than one Ed25519 identity");
      ed25519 = b.slice();
    } // other specifier types are skipped (tor-spec §5.1.2: unrecognized are ignored)
  }
  if (address === undefined || id === undefined) {
    throw new MessageError("EXTEND2 lacks an IPv4 address or identity");
  }
  const create = decodeCreate2(p.subarray(off));
  return ed25519 ? { address, port, id, ed25519, create } : { address, port, id, create };
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** RELAY_BEGIN (tor-spec §6.2): "host:port\0" [| FLAGS u32]. */
export interface Begin {
  /** Host name or address (IPv6 in brackets on the wire). */
  host: string;
  /** TCP port. */
  port: number;
  /** BEGIN flags (tor-spec §6.2: bit 1 IPv6 okay, 2 IPv4 not okay, 3 IPv6 preferred). */
  flags?: number;
}

/**
 * Encodes RELAY_BEGIN. FLAGS is left out when zero, as C tor does (tor-spec §6.2: a missing
 * FLAGS field means 0); arti's tor-cell vector `3132372E302E302E313A3730303300` is
 * "127.0.0.1:7003\0" with no flags.
 */
export function encodeBegin(m: Begin): Uint8Array {
  const host = m.host.includes(":") ? `[${m.host}]` : m.host;
  const s = enc.encode(`${host}:${m.port}\0`);
  const flags = m.flags ?? 0;
  if (flags === 0) return s;
  const out = new Uint8Array(s.length + 4);
  out.set(s);
  new DataView(out.buffer).setUint32(s.length, flags >>> 0);
  return out;
}

/** Decodes RELAY_BEGIN; the address must be ASCII (tor-spec §6.2). */
export function decodeBegin(data: Uint8Array): Begin {
  const nul = data.indexOf(0);
  if (nul < 0) throw new MessageError("BEGIN address not NUL-terminated");
  for (let i = 0; i < nul; i++) {
    if (data[i]! > 0x7e || data[i]! < 0x20) throw new MessageError("BEGIN address is not ASCII");
  }
  const text = dec.decode(data.subarray(0, nul));
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new MessageError(`BEGIN address malformed: ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new MessageError(`BEGIN port out of range: ${port}`);
  const host = (m[1] ?? m[2])!;
  if (data.length >= nul + 5) {
    const flags = new DataView(data.buffer, data.byteOffset + nul + 1, 4).getUint32(0);
    if (flags !== 0) return { host, port, flags };
  }
  return { host, port };
}

/** Encodes RELAY_CONNECTED for an IPv4 address with a TTL (tor-spec §6.2). */
export function encodeConnected(ipv4?: string, ttl = 300): Uint8Array {
  if (!ipv4) return new Uint8Array(0);
  const ip = ipv4.split(".").map(Number);
  if (ip.length !== 4) return new Uint8Array(0);
  return new Uint8Array([...ip, ttl >>> 24, (ttl >>> 16) & 0xff, (ttl >>> 8) & 0xff, ttl & 0xff]);
}

/** A RELAY_CONNECTED body: the address the exit connected to and its TTL, when given. */
export interface Connected {
  /** IPv4 address (dotted) or IPv6 address (colon hex), when the exit said. */
  address?: string;
  /** Seconds the address may be cached. */
  ttl?: number;
}

/**
 * Decodes RELAY_CONNECTED (tor-spec §6.2): empty, IPv4(4) TTL(4), or 0x00000000 | 6 |
 * IPv6(16) | TTL(4).
 */
export function decodeConnected(data: Uint8Array): Connected {
  if (data.length === 0) return {};
  const dv = new DataView(data.buffer, data.byteOffset, data.length);
  if (data.length >= 8 && dv.getUint32(0) !== 0) {
    return { address: `${data[0]}.${data[1]}.${data[2]}.${data[3]}`, ttl: dv.getUint32(4) };
  }
  if (data.length >= 25 && dv.getUint32(0) === 0 && data[4] === 6) {
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(dv.getUint16(5 + 2 * i).toString(16));
    return { address: parts.join(":"), ttl: dv.getUint32(21) };
  }
  throw new MessageError("CONNECTED body malformed");
}

/** Encodes RELAY_END with a reason. */
export function encodeEnd(reason: number): Uint8Array {
  return new Uint8Array([reason]);
}

/** Decodes RELAY_END's reason (an empty body means MISC, tor-spec §6.3). */
export function decodeEnd(data: Uint8Array): number {
  return data.length > 0 ? data[0]! : 1;
}

/** Encodes a SENDME v1 body (tor-spec §7.4, proposal 289): VERSION 1 | LEN 20 | DIGEST. */
export function encodeSendme(digest?: Uint8Array): Uint8Array {
  if (!digest) return new Uint8Array(0);
  const out = new Uint8Array(3 + 20);
  out[0] = 1;
  out[2] = 20;
  out.set(digest.subarray(0, 20), 3);
  return out;
}

/** Decodes a SENDME body: the v1 digest, or undefined for v0 (empty). */
export function decodeSendme(data: Uint8Array): Uint8Array | undefined {
  if (data.length === 0 || data[0] === 0) return undefined;
  if (data[0] !== 1) throw new MessageError(`SENDME version unknown: ${data[0]}`);
  const len = (data[1]! << 8) | data[2]!;
  if (len !== 20 || data.length < 23) throw new MessageError("SENDME v1 digest malformed");
  return data.slice(3, 23);
}

/** Encodes a VERSIONS body (tor-spec §4.1): a list of u16. */
export function encodeVersions(versions: number[]): Uint8Array {
  const out = new Uint8Array(versions.length * 2);
  versions.forEach((v, i) => {
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** Decodes a VERSIONS body. */
export function decodeVersions(p: Uint8Array): number[] {
  if (p.length % 2 !== 0) throw new MessageError("VERSIONS body has odd length");
  const out: number[] = [];
  for (let i = 0; i < p.length; i += 2) out.push((p[i]! << 8) | p[i + 1]!);
  return out;
}

/** RESOLVED answer types (tor-spec §6.4). */
export const ResolvedType = {
  HOSTNAME: 0,
  IPV4: 4,
  IPV6: 6,
  ERROR_TRANSIENT: 0xf0,
  ERROR: 0xf1,
} as const;

/** Decodes a RESOLVE body: a NUL-terminated host name (tor-spec §6.4). */
export function decodeResolve(data: Uint8Array): string {
  const nul = data.indexOf(0);
  if (nul < 1) throw new MessageError("RESOLVE is not a NUL-terminated name");
  try {
    return dec.decode(data.subarray(0, nul));
  } catch {
    throw new MessageError("RESOLVE name is not UTF-8");
  }
}

/**
 * Encodes a RESOLVED body (tor-spec §6.4: TYPE u8 | LEN u8 | VALUE | TTL u32 per answer):
 * one IPv4 answer, or a non-transient error when `ipv4` is undefined.
 */
export function encodeResolved(ipv4: string | undefined, ttl = 300): Uint8Array {
  if (ipv4 === undefined) return Uint8Array.of(ResolvedType.ERROR, 0, 0, 0, 0, 0);
  const ip = ipv4.split(".").map(Number);
  if (ip.length !== 4 || ip.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`RESOLVED needs an IPv4 address: ${ipv4}`);
  }
  return Uint8Array.of(
    ResolvedType.IPV4,
    4,
    ...ip,
    ttl >>> 24,
    (ttl >>> 16) & 0xff,
    (ttl >>> 8) & 0xff,
    ttl & 0xff,
  );
}

/** Decodes a RESOLVED body into its answers (tor-spec §6.4). */
export function decodeResolved(
  data: Uint8Array,
): { type: number; value: Uint8Array; ttl: number }[] {
  const out = [];
  let off = 0;
  while (off < data.length) {
    if (off + 2 > data.length) throw new MessageError("RESOLVED answer truncated");
    const type = data[off]!, len = data[off + 1]!;
    if (off + 2 + len + 4 > data.length) throw new MessageError("RESOLVED answer truncated");
    const value = data.slice(off + 2, off + 2 + len);
    const t = off + 2 + len;
    const ttl = ((data[t]! << 24) | (data[t + 1]! << 16) | (data[t + 2]! << 8) | data[t + 3]!) >>>
      0;
    out.push({ type, value, ttl });
    off = t + 4;
  }
  return out;
}
