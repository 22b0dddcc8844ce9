/**
 * CREATE_FAST / CREATED_FAST (tor-spec §5.1.3 "The CREATE_FAST/CREATED_FAST cells"): the
 * first hop's handshake a client may use when it does not know the relay's onion key (C tor
 * clients without a consensus, bridges). No public-key step: the link's TLS already
 * authenticates the relay. CREATE_FAST's payload is X (20 random bytes); CREATED_FAST's is
 * Y (20 random bytes) | KH (20 bytes, the derivative key proving the relay derived the same
 * keys). Keys: KDF-TOR(X | Y) (tor-spec §5.2.1) = KH [0..20) Df [20..40) Db [40..60)
 * Kf [60..76) Kb [76..92).
 * @module
 */

import { bytesEqual, concatBytes, kdfTor } from "./kdf.ts";

/** Length of X and Y (tor-spec §0.3 HASH_LEN). */
export const FAST_LEN = 20;

/** A CREATE_FAST that cannot be answered. */
export class CreateFastError extends Error {
  /** Error name. */
  override name = "CreateFastError";
}

/**
 * The relay's side: from CREATE_FAST's payload (X in its first 20 bytes) and 20 random bytes
 * Y, the 72 bytes of relay-crypto keys (Df Db Kf Kb, as ntor gives them) and CREATED_FAST's
 * payload Y | KH.
 */
export function createFastServer(
  payload: Uint8Array,
  y: Uint8Array = crypto.getRandomValues(new Uint8Array(FAST_LEN)),
): { keys: Uint8Array; reply: Uint8Array } {
  if (payload.length < FAST_LEN) throw new CreateFastError("CREATE_FAST payload too short");
  if (y.length !== FAST_LEN) throw new RangeError(`Y must be ${FAST_LEN} bytes`);
  const x = payload.subarray(0, FAST_LEN);
  const k = kdfTor(concatBytes(x, y), 92);
  return { keys: k.slice(20, 92), reply: concatBytes(y, k.subarray(0, 20)) };
}

/**
 * The client's side: from X and CREATED_FAST's payload, the 72 bytes of keys; throws when KH
 * does not match (the relay did not derive the same keys).
 */
export function createFastClient(x: Uint8Array, reply: Uint8Array): Uint8Array {
  if (reply.length < 2 * FAST_LEN) throw new CreateFastError("CREATED_FAST payload too short");
  const y = reply.subarray(0, FAST_LEN);
  const k = kdfTor(concatBytes(x, y), 92);
  if (!bytesEqual(k.subarray(0, 20), reply.subarray(FAST_LEN, 2 * FAST_LEN))) {
    throw new CreateFastError("CREATED_FAST derivative key does not match");
  }
  return k.slice(20, 92);
}
