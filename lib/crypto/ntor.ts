/**
 * The ntor circuit handshake (tor-spec §5.1.4), as pure steps in arti's style:
 * `ntorClient1(keys, x?) → [state, message]`, `ntorServer(keys, message, y?) → [keys, reply]`,
 * `ntorClient2(state, reply) → keys`. The ephemeral secrets may be passed in (test vectors).
 * @module
 */

import { bytesEqual, concatBytes, hkdfSha256, hmacSha256 } from "./kdf.ts";
import { x25519, x25519KeyPair } from "./x25519.ts";

const enc = new TextEncoder();
/** PROTOID of ntor. */
export const NTOR_PROTOID: Uint8Array = enc.encode("ntor-curve25519-sha256-1");
const T_MAC = enc.encode("ntor-curve25519-sha256-1:mac");
const T_KEY = enc.encode("ntor-curve25519-sha256-1:key_extract");
const T_VERIFY = enc.encode("ntor-curve25519-sha256-1:verify");
const M_EXPAND = enc.encode("ntor-curve25519-sha256-1:key_expand");
const SERVER = enc.encode("Server");

/** Length of the client's handshake: ID(20) | B(32) | X(32). */
export const NTOR_ONIONSKIN_LEN = 84;
/** Length of the server's reply: Y(32) | AUTH(32). */
export const NTOR_REPLY_LEN = 64;
/** Bytes of key material a relay-crypto layer needs: Df Db Kf Kb (20+20+16+16) + KH 20. */
export const NTOR_KEY_LEN = 92;

/** A relay's public ntor keys: its identity digest and onion key. */
export interface NtorPublicKeys {
  /** 20-byte relay identity (Tor's RSA identity digest; ours is derived from Ed25519). */
  id: Uint8Array;
  /** 32-byte ntor onion key B. */
  onionKey: Uint8Array;
}

/** A relay's secret ntor keys. */
export interface NtorSecretKeys extends NtorPublicKeys {
  /** 32-byte secret b of the onion key. */
  onionSecret: Uint8Array;
}

/** Client state kept between the two client steps. */
export interface NtorClientState {
  /** The relay's public keys. */
  relay: NtorPublicKeys;
  /** The ephemeral secret x. */
  x: Uint8Array;
  /** The ephemeral public X. */
  publicX: Uint8Array;
}

/** Raised when a handshake is malformed or does not authenticate. */
export class HandshakeError extends Error {
  /** Error name. */
  override name = "HandshakeError";
}

function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

function derive(secretInput: Uint8Array, length: number): Uint8Array {
  return hkdfSha256(secretInput, T_KEY, M_EXPAND, length);
}

/** Client step 1: returns the state and the 84-byte onion skin. */
export function ntorClient1(
  relay: NtorPublicKeys,
  x?: Uint8Array,
): [NtorClientState, Uint8Array] {
  if (relay.id.length !== 20 || relay.onionKey.length !== 32) {
    throw new TypeError("ntor relay keys must be a 20-byte id and a 32-byte onion key");
  }
  const kp = x25519KeyPair(x);
  const msg = concatBytes(relay.id, relay.onionKey, kp.public);
  return [{ relay, x: kp.secret, publicX: kp.public }, msg];
}

/**
 * Server step: checks the onion skin is for these keys, and returns the key material
 * (`keyLength` bytes) and the 64-byte reply.
 */
export function ntorServer(
  keys: NtorSecretKeys,
  message: Uint8Array,
  options: { y?: Uint8Array; keyLength?: number } = {},
): [Uint8Array, Uint8Array] {
  if (message.length < NTOR_ONIONSKIN_LEN) throw new HandshakeError("ntor onion skin too short");
  const id = message.subarray(0, 20);
  const b = message.subarray(20, 52);
  const publicX = message.subarray(52, 84);
  if (!bytesEqual(id, keys.id) || !bytesEqual(b, keys.onionKey)) {
    throw new HandshakeError("ntor onion skin is for another relay or key");
  }
  const yk = x25519KeyPair(options.y);
  const xy = x25519(yk.secret, publicX);
  const xb = x25519(keys.onionSecret, publicX);
  if (isZero(xy) || isZero(xb)) throw new HandshakeError("ntor: degenerate public key X");
  const secretInput = concatBytes(xy, xb, keys.id, keys.onionKey, publicX, yk.public, NTOR_PROTOID);
  const verify = hmacSha256(T_VERIFY, secretInput);
  const authInput = concatBytes(
    verify,
    keys.id,
    keys.onionKey,
    yk.public,
    publicX,
    NTOR_PROTOID,
    SERVER,
  );
  const auth = hmacSha256(T_MAC, authInput);
  return [derive(secretInput, options.keyLength ?? NTOR_KEY_LEN), concatBytes(yk.public, auth)];
}

/** Client step 2: checks the server's reply and returns `keyLength` bytes of key material. */
export function ntorClient2(
  state: NtorClientState,
  reply: Uint8Array,
  keyLength = NTOR_KEY_LEN,
): Uint8Array {
  if (reply.length < NTOR_REPLY_LEN) throw new HandshakeError("ntor reply too short");
  const publicY = reply.subarray(0, 32);
  const auth = reply.subarray(32, 64);
  const xy = x25519(state.x, publicY);
  const xb = x25519(state.x, state.relay.onionKey);
  if (isZero(xy) || isZero(xb)) throw new HandshakeError("ntor: degenerate public key Y");
  const { id, onionKey } = state.relay;
  const secretInput = concatBytes(xy, xb, id, onionKey, state.publicX, publicY, NTOR_PROTOID);
  const verify = hmacSha256(T_VERIFY, secretInput);
  const authInput = concatBytes(verify, id, onionKey, publicY, state.publicX, NTOR_PROTOID, SERVER);
  if (!bytesEqual(hmacSha256(T_MAC, authInput), auth)) {
    throw new HandshakeError("ntor: server AUTH does not verify");
  }
  return derive(secretInput, keyLength);
}
