/**
 * What a relay checks of an EXTEND2 before it opens anything (tor-spec §5.1.2; C tor
 * circuitbuild_relay.c circuit_extend_lspec_valid_helper and circuit_extend_add_ed25519):
 * no extension to ourselves or back to the previous hop (loops, such as a 9-hop circuit
 * bouncing between two relays, multiply one client's traffic), and an Ed25519 identity, when
 * the EXTEND2 names one, must be the target's. Repeated identity specifiers are refused by
 * the codec (lib/cell/messages.ts decodeExtend2).
 * @module
 */

import type { RelayEntry } from "../directory/document.ts";
import { bytesEqual } from "../crypto/kdf.ts";
import { fromBase64 } from "../util/bytes.ts";

/**
 * Why extending to the relay with fingerprint `target` is a loop, or undefined: `self` is
 * ours, `previous` the previous hop's (undefined for a client).
 */
export function extendLoop(
  target: string,
  self: string,
  previous: string | undefined,
): string | undefined {
  if (target === self) return "client asked me to extend to myself";
  if (previous !== undefined && target === previous) {
    return "client asked me to extend back to the previous hop";
  }
  return undefined;
}

/** True when no Ed25519 identity was named, or it is `target`'s (its directory identity). */
export function ed25519Matches(ed25519: Uint8Array | undefined, target: RelayEntry): boolean {
  return ed25519 === undefined || bytesEqual(ed25519, fromBase64(target.identity));
}
