/**
 * How two of our relays find out, in band, that both speak PCTCP (DESIGN.md "PCTCP
 * specifics"): right after its side of Tor's link handshake each sends one VPADDING cell
 * (command 128) whose payload starts with a marker. C tor ignores a VPADDING cell's content
 * (tor-spec §4 "Link protocol padding"; channeltls.c reads none of it, also before the
 * handshake is over), so a C tor peer sees nothing but padding, and nothing of it is public.
 *
 * Payload: `"PCTCP-HELLO\x01"` (12 bytes) | link key (X25519, 32) | IPv4 of the OR port (4) |
 * OR port (u16) | flags (u8: bit 0 = per-circuit connections accepted). 51 bytes.
 *
 * The hello is authenticated by the link it arrives on: a responder's CERTS bind the TLS
 * session to its identities (type 5 certifies the TLS certificate), an initiator's
 * AUTHENTICATE signs the session's exporter; so the link key learned is the key of the relay
 * whose RSA and Ed25519 identities the link proved. A hello from an unauthenticated initiator
 * (a client) is ignored. The per-circuit connections then run PCTCP's LINK2 handshake (ntor on
 * that link key, the initiator's Ed25519 signature, the bound CircID) — see link.ts.
 * @module
 */

/** The VPADDING command (tor-spec §3). */
export const VPADDING = 128;

const MAGIC = new TextEncoder().encode("PCTCP-HELLO\x01");
/** Bytes of a hello payload. */
export const HELLO_BYTES: number = MAGIC.length + 32 + 4 + 2 + 1;

/** What a relay says of itself in its hello. */
export interface PctcpHello {
  /** Its LINK2 link key (X25519 public). */
  linkKey: Uint8Array;
  /** Address of its OR port. */
  address: string;
  /** Its OR port. */
  orPort: number;
  /** Whether it accepts per-circuit connections. */
  perCircuit: boolean;
}

/** The VPADDING payload of a hello. */
export function encodePctcpHello(h: PctcpHello): Uint8Array {
  const ip = h.address.split(".").map(Number);
  if (ip.length !== 4 || ip.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new TypeError(`hello needs an IPv4 address: ${h.address}`);
  }
  if (h.linkKey.length !== 32) throw new RangeError("link key must be 32 bytes");
  const out = new Uint8Array(HELLO_BYTES);
  out.set(MAGIC);
  out.set(h.linkKey, MAGIC.length);
  out.set(ip, MAGIC.length + 32);
  out[MAGIC.length + 36] = (h.orPort >>> 8) & 0xff;
  out[MAGIC.length + 37] = h.orPort & 0xff;
  out[MAGIC.length + 38] = h.perCircuit ? 1 : 0;
  return out;
}

/** The hello in a VPADDING payload, or undefined when it is padding or anything else. */
export function decodePctcpHello(payload: Uint8Array): PctcpHello | undefined {
  if (payload.length < HELLO_BYTES) return undefined;
  for (let i = 0; i < MAGIC.length; i++) if (payload[i] !== MAGIC[i]) return undefined;
  const o = MAGIC.length;
  return {
    linkKey: payload.slice(o, o + 32),
    address: [...payload.subarray(o + 32, o + 36)].join("."),
    orPort: (payload[o + 36]! << 8) | payload[o + 37]!,
    perCircuit: (payload[o + 38]! & 1) === 1,
  };
}
