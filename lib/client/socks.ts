/**
 * SOCKS5 codec (RFC 1928, RFC 1929 username/password): pure functions over bytes. Each parser
 * returns `undefined` when more bytes are needed and throws {@link SocksError} with the reply
 * code to send on a definite violation.
 * @module
 */

import { EndReason } from "../cell/relay_cell.ts";

/** SOCKS5 reply codes (RFC 1928 §6). */
export const SocksReply = {
  SUCCEEDED: 0,
  GENERAL_FAILURE: 1,
  NOT_ALLOWED: 2,
  NETWORK_UNREACHABLE: 3,
  HOST_UNREACHABLE: 4,
  CONNECTION_REFUSED: 5,
  TTL_EXPIRED: 6,
  COMMAND_NOT_SUPPORTED: 7,
  ADDRESS_TYPE_NOT_SUPPORTED: 8,
} as const;

/** A protocol violation, with the reply code to answer it. */
export class SocksError extends Error {
  /** Error name. */
  override name = "SocksError";
  /** The SOCKS5 reply code to answer with (RFC 1928 §6). */
  readonly reply: number;
  /** `reply` defaults to general failure. */
  constructor(message: string, reply: number = SocksReply.GENERAL_FAILURE) {
    super(message);
    this.reply = reply;
  }
}

/** The client's greeting: the methods it offers. */
export interface SocksGreeting {
  /** Offered methods (0 no auth, 2 username/password). */
  methods: number[];
  /** Bytes consumed. */
  length: number;
}

/** Parses the greeting `VER NMETHODS METHODS…`. */
export function parseGreeting(b: Uint8Array): SocksGreeting | undefined {
  if (b.length < 2) return undefined;
  if (b[0] !== 5) throw new SocksError(`not SOCKS5 (version ${b[0]})`);
  const n = b[1]!;
  if (n === 0) throw new SocksError("no authentication methods offered");
  if (b.length < 2 + n) return undefined;
  return { methods: Array.from(b.subarray(2, 2 + n)), length: 2 + n };
}

/** Username/password sub-negotiation (RFC 1929). */
export interface SocksUserPass {
  /** User name. */
  username: string;
  /** Password. */
  password: string;
  /** Bytes consumed. */
  length: number;
}

const dec = new TextDecoder();

/** Parses `VER(1) ULEN UNAME PLEN PASSWD`. */
export function parseUserPass(b: Uint8Array): SocksUserPass | undefined {
  if (b.length < 2) return undefined;
  if (b[0] !== 1) throw new SocksError(`bad username/password version ${b[0]}`);
  const ulen = b[1]!;
  if (b.length < 2 + ulen + 1) return undefined;
  const plen = b[2 + ulen]!;
  if (b.length < 3 + ulen + plen) return undefined;
  return {
    username: dec.decode(b.subarray(2, 2 + ulen)),
    password: dec.decode(b.subarray(3 + ulen, 3 + ulen + plen)),
    length: 3 + ulen + plen,
  };
}

/** A CONNECT request. */
export interface SocksRequest {
  /** Host name, IPv4 or IPv6 address. */
  host: string;
  /** Port. */
  port: number;
  /** Bytes consumed. */
  length: number;
}

/** Parses `VER CMD RSV ATYP DST.ADDR DST.PORT`; only CONNECT is supported. */
export function parseRequest(b: Uint8Array): SocksRequest | undefined {
  if (b.length < 5) return undefined;
  if (b[0] !== 5) throw new SocksError(`not SOCKS5 (version ${b[0]})`);
  if (b[1] !== 1) {
    throw new SocksError(`command ${b[1]} not supported`, SocksReply.COMMAND_NOT_SUPPORTED);
  }
  const atyp = b[3]!;
  let host: string, off: number;
  if (atyp === 1) {
    if (b.length < 10) return undefined;
    host = Array.from(b.subarray(4, 8)).join(".");
    off = 8;
  } else if (atyp === 3) {
    const len = b[4]!;
    if (len === 0) throw new SocksError("empty host name", SocksReply.HOST_UNREACHABLE);
    if (b.length < 5 + len + 2) return undefined;
    host = dec.decode(b.subarray(5, 5 + len));
    off = 5 + len;
  } else if (atyp === 4) {
    if (b.length < 22) return undefined;
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(((b[4 + i]! << 8) | b[5 + i]!).toString(16));
    host = parts.join(":");
    off = 20;
  } else {
    throw new SocksError(
      `address type ${atyp} not supported`,
      SocksReply.ADDRESS_TYPE_NOT_SUPPORTED,
    );
  }
  const port = (b[off]! << 8) | b[off + 1]!;
  if (port === 0) throw new SocksError("port 0", SocksReply.HOST_UNREACHABLE);
  return { host, port, length: off + 2 };
}

/** A reply `VER REP RSV ATYP(IPv4) 0.0.0.0:0`. */
export function encodeReply(code: number): Uint8Array {
  return Uint8Array.of(5, code, 0, 1, 0, 0, 0, 0, 0, 0);
}

/** Maps a RELAY_END reason (tor-spec §6.3) to a SOCKS5 reply code, as Tor does. */
export function endReasonToReply(reason: number): number {
  switch (reason) {
    case EndReason.RESOLVEFAILED:
      return SocksReply.HOST_UNREACHABLE;
    case EndReason.CONNECTREFUSED:
      return SocksReply.CONNECTION_REFUSED;
    case EndReason.EXITPOLICY:
      return SocksReply.NOT_ALLOWED;
    case EndReason.TIMEOUT:
      return SocksReply.TTL_EXPIRED;
    case EndReason.NOROUTE:
      return SocksReply.NETWORK_UNREACHABLE;
    default:
      return SocksReply.GENERAL_FAILURE;
  }
}
