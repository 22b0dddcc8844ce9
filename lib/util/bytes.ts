/**
 * Byte helpers: hex and base64 (no padding tricks), shared by codecs and files.
 * @module
 */

import { Buffer } from "node:buffer";

/** Bytes → lower-case hex. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Hex → bytes; a SyntaxError on odd length or non-hex digits. */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new SyntaxError(`not hex: ${s}`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

/** Bytes → standard base64. */
export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

/** Base64 → bytes; a SyntaxError on characters outside the alphabet. */
export function fromBase64(s: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new SyntaxError("not base64");
  return new Uint8Array(Buffer.from(s, "base64"));
}
