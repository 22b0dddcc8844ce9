/**
 * A small DER (X.690) writer and reader: just what Tor's X.509 certificates need
 * (SEQUENCE, SET, INTEGER, OID, NULL, BIT STRING, UTF8String/PrintableString, UTCTime /
 * GeneralizedTime, explicit context tags). Internal to lib/keys.
 * @module
 */

/** DER tags used here. */
export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const b: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) b.unshift(x & 0xff);
  return Uint8Array.of(0x80 | b.length, ...b);
}

/** One TLV: `tag`, DER length, the concatenated contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const body = concat(contents);
  return concat([Uint8Array.of(tag), lengthBytes(body.length), body]);
}

/** SEQUENCE of the given encoded elements. */
export function seq(...elements: Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, ...elements);
}

/** SET of the given encoded elements (callers give one element or DER order). */
export function set(...elements: Uint8Array[]): Uint8Array {
  return tlv(TAG.SET, ...elements);
}

/** Explicit context tag [n] (constructed) around `inner`. */
export function explicit(n: number, inner: Uint8Array): Uint8Array {
  return tlv(0xa0 | n, inner);
}

/** INTEGER from unsigned big-endian bytes (minimal: leading zeros dropped, 0x00 added if the high bit is set). */
export function integer(unsigned: Uint8Array): Uint8Array {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const v = unsigned.subarray(i);
  const body = v.length === 0 ? Uint8Array.of(0) : v;
  return (body[0]! & 0x80) ? tlv(TAG.INTEGER, Uint8Array.of(0), body) : tlv(TAG.INTEGER, body);
}

/** INTEGER of a small non-negative number. */
export function smallInteger(n: number): Uint8Array {
  const b: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) b.unshift(x & 0xff);
  return integer(Uint8Array.from(b));
}

/** OBJECT IDENTIFIER from dotted text ("1.2.840.113549.1.1.11"). */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map((s) => Number(s));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) {
    throw new SyntaxError(`Bad object identifier: ${dotted}`);
  }
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const b: number[] = [a & 0x7f];
    for (let x = Math.floor(a / 128); x > 0; x = Math.floor(x / 128)) b.unshift(0x80 | (x & 0x7f));
    out.push(...b);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** NULL. */
export function nullValue(): Uint8Array {
  return Uint8Array.of(TAG.NULL, 0);
}

/** BIT STRING with no unused bits around `bytes`. */
export function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.BIT_STRING, Uint8Array.of(0), bytes);
}

/** UTF8String. */
export function utf8String(text: string): Uint8Array {
  return tlv(TAG.UTF8_STRING, new TextEncoder().encode(text));
}

/**
 * A certificate time (RFC 5280 §4.1.2.5): UTCTime "YYMMDDHHMMSSZ" for 1950–2049,
 * GeneralizedTime "YYYYMMDDHHMMSSZ" otherwise. Sub-second parts are dropped.
 */
export function time(date: Date): Uint8Array {
  const t = date.getTime();
  if (!Number.isFinite(t)) throw new RangeError("Certificate time is not a valid date");
  const iso = new Date(Math.floor(t / 1000) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const y = date.getUTCFullYear();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "");
  if (y < 0 || y > 9999) throw new RangeError(`Certificate year out of range: ${y}`);
  const text = y >= 1950 && y < 2050 ? digits.slice(2) + "Z" : digits + "Z";
  return tlv(
    y >= 1950 && y < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME,
    new TextEncoder().encode(text),
  );
}

/** A decoded TLV. */
export interface DerNode {
  /** The tag byte. */
  tag: number;
  /** The contents (a view into the input). */
  content: Uint8Array;
  /** The whole TLV, header included (a view into the input). */
  raw: Uint8Array;
}

/**
 * Reads one TLV at `offset` of `bytes`; returns it and the offset after it. SyntaxError on
 * truncation, indefinite or non-minimal lengths, and multi-byte tags.
 */
export function readTlv(bytes: Uint8Array, offset = 0): { node: DerNode; next: number } {
  if (offset + 2 > bytes.length) throw new SyntaxError(`DER truncated: header at ${offset}`);
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new SyntaxError(`DER multi-byte tag unsupported: at ${offset}`);
  const first = bytes[offset + 1]!;
  let len: number;
  let header = 2;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new SyntaxError(`DER indefinite length: at ${offset}`);
    if (n > 4) throw new SyntaxError(`DER length too long: ${n} bytes at ${offset}`);
    if (offset + 2 + n > bytes.length) throw new SyntaxError(`DER truncated: length at ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[offset + 2 + i]!;
    if (len < 0x80 || bytes[offset + 2] === 0) {
      throw new SyntaxError(`DER non-minimal length: at ${offset}`);
    }
    header += n;
  }
  const start = offset + header;
  if (start + len > bytes.length) {
    throw new SyntaxError(
      `DER truncated: ${len} content bytes at ${offset}, ${bytes.length - start} left`,
    );
  }
  return {
    node: {
      tag,
      content: bytes.subarray(start, start + len),
      raw: bytes.subarray(offset, start + len),
    },
    next: start + len,
  };
}

/** Reads exactly one TLV filling `bytes`; SyntaxError on trailing bytes. */
export function readOne(bytes: Uint8Array): DerNode {
  const { node, next } = readTlv(bytes, 0);
  if (next !== bytes.length) throw new SyntaxError(`DER trailing bytes: ${bytes.length - next}`);
  return node;
}

/** The elements of a constructed node (SEQUENCE, SET, explicit tag). */
export function children(node: DerNode): DerNode[] {
  if ((node.tag & 0x20) === 0) {
    throw new SyntaxError(`DER tag 0x${node.tag.toString(16)} is not constructed`);
  }
  const out: DerNode[] = [];
  for (let o = 0; o < node.content.length;) {
    const { node: c, next } = readTlv(node.content, o);
    out.push(c);
    o = next;
  }
  return out;
}

/** Throws SyntaxError unless `node` has tag `tag`. */
export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined) throw new SyntaxError(`DER missing: ${what}`);
  if (node.tag !== tag) {
    throw new SyntaxError(
      `DER unexpected tag for ${what}: 0x${node.tag.toString(16)}, want 0x${tag.toString(16)}`,
    );
  }
  return node;
}

/** Dotted text of an OBJECT IDENTIFIER node. */
export function readOid(node: DerNode): string {
  expectTag(node, TAG.OID, "object identifier");
  const c = node.content;
  if (c.length === 0) throw new SyntaxError("DER empty object identifier");
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    v = v * 128 + (c[i]! & 0x7f);
    if (!(c[i]! & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === c.length - 1) throw new SyntaxError("DER truncated object identifier");
  }
  const f = arcs[0]!;
  const head = f < 40 ? [0, f] : f < 80 ? [1, f - 40] : [2, f - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/** A UTCTime or GeneralizedTime node as a Date (only the "…Z" forms DER allows). */
export function readTime(node: DerNode): Date {
  const text = new TextDecoder().decode(node.content);
  let m: RegExpMatchArray | null;
  let year: number;
  if (node.tag === TAG.UTC_TIME) {
    m = text.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/);
    if (!m) throw new SyntaxError(`DER bad UTCTime: ${text}`);
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else if (node.tag === TAG.GENERALIZED_TIME) {
    m = text.match(/^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/);
    if (!m) throw new SyntaxError(`DER bad GeneralizedTime: ${text}`);
    year = Number(m[1]);
  } else {
    throw new SyntaxError(`DER tag 0x${node.tag.toString(16)} is not a time`);
  }
  const [mo, d, h, mi, s] = [2, 3, 4, 5, 6].map((i) => Number(m![i]));
  const t = Date.UTC(year, mo! - 1, d!, h!, mi!, s!);
  const back = new Date(t);
  if (
    back.getUTCMonth() !== mo! - 1 || back.getUTCDate() !== d! || h! > 23 || mi! > 59 || s! > 59
  ) {
    throw new SyntaxError(`DER time out of range: ${text}`);
  }
  return back;
}

/** Contents of an INTEGER node as unsigned big-endian bytes (SyntaxError if negative). */
export function readUnsigned(node: DerNode): Uint8Array {
  expectTag(node, TAG.INTEGER, "integer");
  const c = node.content;
  if (c.length === 0) throw new SyntaxError("DER empty integer");
  if (c[0]! & 0x80) throw new SyntaxError("DER negative integer");
  return c[0] === 0 && c.length > 1 ? c.subarray(1) : c;
}

/** Contents of a BIT STRING node with no unused bits. */
export function readBitString(node: DerNode): Uint8Array {
  expectTag(node, TAG.BIT_STRING, "bit string");
  if (node.content.length === 0 || node.content[0] !== 0) {
    throw new SyntaxError("DER bit string with unused bits");
  }
  return node.content.subarray(1);
}
