/**
 * Relay cells (tor-spec §6.1): the 509-byte payload of a RELAY or RELAY_EARLY cell.
 * command [0] | recognized [1..3) | StreamID [3..5) | Digest [5..9) | Length [9..11) | Data.
 * @module
 */

import { PAYLOAD_LEN } from "./cell.ts";

/** Largest Data of one relay cell. */
export const RELAY_DATA_LEN = 498;
/** Offset of Data in the payload. */
export const RELAY_HEADER_LEN = 11;

/** Relay commands (tor-spec §6.1). */
export const RelayCommand = {
  BEGIN: 1,
  DATA: 2,
  END: 3,
  CONNECTED: 4,
  SENDME: 5,
  EXTEND: 6,
  EXTENDED: 7,
  TRUNCATE: 8,
  TRUNCATED: 9,
  DROP: 10,
  RESOLVE: 11,
  RESOLVED: 12,
  BEGIN_DIR: 13,
  EXTEND2: 14,
  EXTENDED2: 15,
} as const;

/** RELAY_END reasons (tor-spec §6.3). */
export const EndReason = {
  MISC: 1,
  RESOLVEFAILED: 2,
  CONNECTREFUSED: 3,
  EXITPOLICY: 4,
  DESTROY: 5,
  DONE: 6,
  TIMEOUT: 7,
  NOROUTE: 8,
  HIBERNATING: 9,
  INTERNAL: 10,
  RESOURCELIMIT: 11,
  CONNRESET: 12,
  TORPROTOCOL: 13,
  NOTDIRECTORY: 14,
} as const;

/** A relay command byte named in {@link RelayCommand}. */
export type RelayCommandCode = typeof RelayCommand[keyof typeof RelayCommand];

/** A RELAY_END reason named in {@link EndReason}. */
export type EndReasonCode = typeof EndReason[keyof typeof EndReason];

/** A decoded relay cell. */
export interface RelayCell {
  /** Relay command. */
  command: number;
  /** Stream id; 0 for circuit-level commands. */
  streamId: number;
  /** The data (at most 498 bytes). */
  data: Uint8Array;
}

/** A relay cell whose header is impossible (length > 498); the circuit is closed. */
export class RelayProtocolError extends Error {
  /** Error name. */
  override name = "RelayProtocolError";
}

/**
 * Encodes a relay payload with recognized and digest zero; after Data come 4 zero bytes and
 * then random padding (tor-spec §6.1, proposal 289). `random` fills the padding.
 */
export function encodeRelayCell(
  cell: RelayCell,
  random: (b: Uint8Array) => void = (b) => crypto.getRandomValues(b),
): Uint8Array {
  const { command, streamId, data } = cell;
  if (data.length > RELAY_DATA_LEN) throw new RangeError(`relay data too long: ${data.length}`);
  const p = new Uint8Array(PAYLOAD_LEN);
  p[0] = command;
  p[3] = streamId >>> 8;
  p[4] = streamId & 0xff;
  p[9] = data.length >>> 8;
  p[10] = data.length & 0xff;
  p.set(data, RELAY_HEADER_LEN);
  const padStart = RELAY_HEADER_LEN + data.length + 4;
  if (padStart < PAYLOAD_LEN) random(p.subarray(padStart));
  return p;
}

/**
 * Decodes a recognized relay payload (already decrypted and digest-checked). `data` is a
 * view into `payload`, not a copy: an edge stream queues it for its socket as it is.
 */
export function decodeRelayCell(payload: Uint8Array): RelayCell {
  if (payload.length !== PAYLOAD_LEN) {
    throw new RelayProtocolError(`relay payload must be ${PAYLOAD_LEN} bytes: ${payload.length}`);
  }
  const length = (payload[9]! << 8) | payload[10]!;
  if (length > RELAY_DATA_LEN) throw new RelayProtocolError(`relay length too large: ${length}`);
  return {
    command: payload[0]!,
    streamId: (payload[3]! << 8) | payload[4]!,
    data: payload.subarray(RELAY_HEADER_LEN, RELAY_HEADER_LEN + length),
  };
}
