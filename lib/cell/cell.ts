/**
 * Link-protocol v4+ cells (tor-spec §3 "Cell packet format"): fixed 514-byte cells and
 * variable-length cells, and an incremental reader that returns "need more bytes" on a
 * truncated frame and throws {@link CellProtocolError} on a definite violation.
 * @module
 */

/** Fixed cell length on link protocol ≥ 4: CircID 4 | Command 1 | Payload 509. */
export const CELL_LEN = 514;
/** Payload length of a fixed cell. */
export const PAYLOAD_LEN = 509;
/** Largest variable-cell payload we accept (the u16 allows 65535; Tor's largest is far less). */
export const MAX_VAR_PAYLOAD = 16384;

/** Cell commands (tor-spec §3). */
export const CellCommand = {
  PADDING: 0,
  CREATE: 1,
  CREATED: 2,
  RELAY: 3,
  DESTROY: 4,
  CREATE_FAST: 5,
  CREATED_FAST: 6,
  VERSIONS: 7,
  NETINFO: 8,
  RELAY_EARLY: 9,
  CREATE2: 10,
  CREATED2: 11,
  PADDING_NEGOTIATE: 12,
  VPADDING: 128,
  CERTS: 129,
  AUTH_CHALLENGE: 130,
  AUTHENTICATE: 131,
} as const;

/** DESTROY / TRUNCATED reasons (tor-spec §5.4). */
export const DestroyReason = {
  NONE: 0,
  PROTOCOL: 1,
  INTERNAL: 2,
  REQUESTED: 3,
  HIBERNATING: 4,
  RESOURCELIMIT: 5,
  CONNECTFAILED: 6,
  OR_IDENTITY: 7,
  CHANNEL_CLOSED: 8,
  FINISHED: 9,
  TIMEOUT: 10,
  DESTROYED: 11,
  NOSUCHSERVICE: 12,
} as const;

/** A cell command byte named in {@link CellCommand}. */
export type CellCommandCode = typeof CellCommand[keyof typeof CellCommand];

/** A DESTROY / TRUNCATED reason named in {@link DestroyReason}. */
export type DestroyReasonCode = typeof DestroyReason[keyof typeof DestroyReason];

/** A cell: circuit id, command and payload (509 bytes for fixed cells). */
export interface Cell {
  /** Circuit id; 0 is the link itself. */
  circId: number;
  /** Command byte. */
  command: number;
  /** Payload bytes. */
  payload: Uint8Array;
}

/** A definite violation of the cell framing; the link that sent it is closed. */
export class CellProtocolError extends Error {
  /** Error name. */
  override name = "CellProtocolError";
}

/** True for variable-length commands: VERSIONS (7) and ≥ 128 (tor-spec §3). */
export function isVariableCommand(command: number): boolean {
  return command === CellCommand.VERSIONS || command >= 128;
}

/**
 * Encodes a cell with a 4-byte CircID. Fixed-cell payloads shorter than 509 bytes are
 * padded with zeros; longer ones are a RangeError.
 */
export function encodeCell(cell: Cell): Uint8Array {
  const { circId, command, payload } = cell;
  if (isVariableCommand(command)) {
    if (payload.length > 0xffff) throw new RangeError(`variable cell too long: ${payload.length}`);
    const out = new Uint8Array(7 + payload.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, circId >>> 0);
    out[4] = command;
    dv.setUint16(5, payload.length);
    out.set(payload, 7);
    return out;
  }
  if (payload.length > PAYLOAD_LEN) {
    throw new RangeError(`fixed cell payload too long: ${payload.length}`);
  }
  const out = new Uint8Array(CELL_LEN);
  new DataView(out.buffer).setUint32(0, circId >>> 0);
  out[4] = command;
  out.set(payload, 5);
  return out;
}

/** Writes a fixed cell into `out` at `offset` (no allocation; for batched writes). */
export function writeFixedCell(
  out: Uint8Array,
  offset: number,
  circId: number,
  command: number,
  payload: Uint8Array,
): void {
  out[offset] = circId >>> 24;
  out[offset + 1] = (circId >>> 16) & 0xff;
  out[offset + 2] = (circId >>> 8) & 0xff;
  out[offset + 3] = circId & 0xff;
  out[offset + 4] = command;
  out.set(payload.subarray(0, PAYLOAD_LEN), offset + 5);
  if (payload.length < PAYLOAD_LEN) out.fill(0, offset + 5 + payload.length, offset + CELL_LEN);
}

/**
 * Reads cells from a byte stream. `push` bytes as they arrive, then call `next` until it
 * returns undefined (need more bytes).
 *
 * No copies on the way: a cell that lies within one pushed chunk has its payload as a view
 * into that chunk (so in-place relay crypto works on the received bytes), and only a cell
 * split across chunks is assembled into a fresh buffer of its own size. The caller must not
 * reuse a pushed buffer while cells read from it are in use (a link hands over a fresh
 * buffer per frame).
 */
export class CellReader {
  #chunks: Uint8Array[] = [];
  /** Offset of the first unread byte in `#chunks[0]`. */
  #off = 0;
  #buffered = 0;
  #maxVar: number;

  /** `maxVarPayload` bounds variable cells (default {@link MAX_VAR_PAYLOAD}). */
  constructor(options: { maxVarPayload?: number } = {}) {
    this.#maxVar = options.maxVarPayload ?? MAX_VAR_PAYLOAD;
  }

  /** Bytes buffered and not yet returned as cells. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Appends received bytes (kept by reference, not copied). */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
  }

  /** Byte `i` of the unread stream (i < buffered), across chunks. */
  #at(i: number): number {
    let k = 0, j = this.#off + i;
    while (j >= this.#chunks[k]!.length) j -= this.#chunks[k++]!.length;
    return this.#chunks[k]![j]!;
  }

  /** Consumes `n` bytes; returns them as a view when they lie in one chunk, else a copy. */
  #take(n: number): Uint8Array {
    const c = this.#chunks[0]!, o = this.#off;
    this.#buffered -= n;
    if (o + n <= c.length) {
      this.#off = o + n;
      if (this.#off === c.length) this.#chunks.shift(), this.#off = 0;
      return c.subarray(o, o + n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const h = this.#chunks[0]!;
      const m = Math.min(n - filled, h.length - this.#off);
      out.set(h.subarray(this.#off, this.#off + m), filled);
      filled += m;
      this.#off += m;
      if (this.#off === h.length) this.#chunks.shift(), this.#off = 0;
    }
    return out;
  }

  /**
   * The owner is about to wait for bytes: when nothing is buffered, the chunk list is made
   * anew, as V8 keeps a shifted array's storage and an idle reader (one per channel, so per
   * circuit under PCTCP) should hold none. Called per socket read, not per chunk.
   */
  release(): void {
    if (this.#chunks.length === 0) this.#chunks = [];
  }

  /**
   * The next whole cell, or undefined when more bytes are needed. The payload is a view into
   * the pushed bytes (see the class notes).
   */
  next(): Cell | undefined {
    const have = this.#buffered;
    if (have < 5) return undefined;
    const c = this.#chunks[0]!, o = this.#off;
    let circId: number, command: number, len: number;
    if (o + 7 <= c.length) {
      circId = ((c[o]! << 24) | (c[o + 1]! << 16) | (c[o + 2]! << 8) | c[o + 3]!) >>> 0;
      command = c[o + 4]!;
      len = (c[o + 5]! << 8) | c[o + 6]!;
    } else {
      const at = (i: number) => i < have ? this.#at(i) : 0;
      circId = ((at(0) << 24) | (at(1) << 16) | (at(2) << 8) | at(3)) >>> 0;
      command = at(4);
      len = (at(5) << 8) | at(6);
    }
    let head = 5, size = CELL_LEN;
    if (isVariableCommand(command)) {
      if (have < 7) return undefined;
      if (len > this.#maxVar) {
        throw new CellProtocolError(`variable cell too long: ${len} > ${this.#maxVar}`);
      }
      head = 7, size = 7 + len;
    }
    if (have < size) return undefined;
    const cell = this.#take(size);
    return { circId, command, payload: cell.subarray(head) };
  }
}
