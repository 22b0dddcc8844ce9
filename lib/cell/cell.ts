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
 */
export class CellReader {
  #buf = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #maxVar: number;

  /** `maxVarPayload` bounds variable cells (default {@link MAX_VAR_PAYLOAD}). */
  constructor(options: { maxVarPayload?: number } = {}) {
    this.#maxVar = options.maxVarPayload ?? MAX_VAR_PAYLOAD;
  }

  /** Bytes buffered and not yet returned as cells. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Appends received bytes. */
  push(bytes: Uint8Array): void {
    const have = this.#end - this.#start;
    if (this.#end + bytes.length > this.#buf.length) {
      const next = new Uint8Array(Math.max(have + bytes.length, this.#buf.length * 2, 8192));
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = have;
    }
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /** The next whole cell, or undefined when more bytes are needed. Payloads are copies. */
  next(): Cell | undefined {
    const have = this.#end - this.#start;
    if (have < 5) return undefined;
    const b = this.#buf, s = this.#start;
    const circId = ((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0;
    const command = b[s + 4]!;
    if (isVariableCommand(command)) {
      if (have < 7) return undefined;
      const len = (b[s + 5]! << 8) | b[s + 6]!;
      if (len > this.#maxVar) {
        throw new CellProtocolError(`variable cell too long: ${len} > ${this.#maxVar}`);
      }
      if (have < 7 + len) return undefined;
      const payload = b.slice(s + 7, s + 7 + len);
      this.#start += 7 + len;
      return { circId, command, payload };
    }
    if (have < CELL_LEN) return undefined;
    const payload = b.slice(s + 5, s + CELL_LEN);
    this.#start += CELL_LEN;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return { circId, command, payload };
  }
}
