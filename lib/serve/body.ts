/**
 * Deterministic response bodies: the bytes of `/bytes/SIZE` are a fixed pseudo-random 64 KiB
 * block repeated and cut to SIZE, so any client can know the SHA-256 in advance.
 * @module
 */

import { createHash } from "node:crypto";

/** Length of the repeated block. */
export const BLOCK_LEN = 65536;

function makeBlock(): Uint8Array {
  const b = new Uint8Array(BLOCK_LEN);
  let s = 0x9e3779b9;
  for (let i = 0; i < BLOCK_LEN; i++) {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    b[i] = s & 0xff;
  }
  return b;
}

/** The block every body is made of. */
export const BLOCK: Uint8Array = makeBlock();

/** Bytes [offset, offset+length) of every body. */
export function bodySlice(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  while (o < length) {
    const at = (offset + o) % BLOCK_LEN;
    const n = Math.min(BLOCK_LEN - at, length - o);
    out.set(BLOCK.subarray(at, at + n), o);
    o += n;
  }
  return out;
}

const cache = new Map<number, string>();

/** Hex SHA-256 of the body of `size` bytes (cached). */
export function bodySha256(size: number): string {
  let h = cache.get(size);
  if (h) return h;
  const hash = createHash("sha256");
  for (let off = 0; off < size; off += BLOCK_LEN) {
    hash.update(BLOCK.subarray(0, Math.min(BLOCK_LEN, size - off)));
  }
  h = hash.digest("hex");
  cache.set(size, h);
  return h;
}

/** A stream of the body, in 64 KiB chunks. */
export function bodyStream(size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(ctl) {
      if (off >= size) return ctl.close();
      const n = Math.min(BLOCK_LEN, size - off);
      ctl.enqueue(n === BLOCK_LEN ? BLOCK.slice() : BLOCK.slice(0, n));
      off += n;
    },
  });
}
