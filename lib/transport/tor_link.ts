/**
 * Tor's link: TLS (lib/transport/tls.ts) and the v3 link handshake (tor-spec §4 "Negotiating
 * and initializing connections"), in both roles, then the OPEN state as a `ChannelLink`.
 *
 * | step | responder (`torLinkAccept`) | initiator relay (`torLinkConnect` with keys) | initiator client (no keys) |
 * | --- | --- | --- | --- |
 * | 1 | | VERSIONS (2-byte CircID) | VERSIONS |
 * | 2 | VERSIONS, CERTS 1 2 4 5 7, AUTH_CHALLENGE [3], NETINFO | | |
 * | 3 | | checks CERTS (and the expected identity), CERTS 2 4 6 7, AUTHENTICATE 3, NETINFO | checks CERTS, NETINFO |
 * | 4 | checks CERTS and AUTHENTICATE (or sees a client: NETINFO alone) | | |
 *
 * Link versions 4 and 5 (4-byte CircIDs after VERSIONS, tor-spec §4.1). AUTHENTICATE method 3
 * ("Ed25519-SHA256-RFC5705", tor-spec §4.4.2; C tor `src/feature/relay/relay_handshake.c`):
 * `"AUTH0003" | CID | SID | CID_ED | SID_ED | SLOG | CLOG | SCERT | TLSSECRETS | RAND | SIG`,
 * SLOG / CLOG the SHA-256 of every byte each side sent before AUTHENTICATE (C tor stops the
 * digests at NETINFO: `connection_or_send_netinfo` clears `digest_sent_data`), TLSSECRETS the
 * RFC 5705 exporter with context CID. Every failure is a {@link TorLinkError} with a reason,
 * logged, and the connection is closed.
 *
 * OPEN: the pieces {@link TorLink.tryRead} hands out are whole 514-byte cells (up to 8 at a
 * time). PADDING, PADDING_NEGOTIATE, a late NETINFO and every variable cell stay inside the
 * link (tor-spec §3; C tor `channeltls.c` ignores unknown variable commands when open);
 * VPADDING and unknown variable cells go to {@link TorLink.onVariableCell}. Writes are merged
 * into one TLS write per turn of the event loop (a write per cell is 15× slower).
 * @module
 */

import { createHash, randomBytes } from "node:crypto";
import { setImmediate } from "node:timers";
import { CELL_LEN, CellCommand, encodeCell, isVariableCommand } from "../cell/cell.ts";
import { decodeVersions, MessageError } from "../cell/messages.ts";
import {
  AUTH0003_LEN,
  chooseLinkVersion,
  decodeAuth0003,
  decodeAuthChallenge,
  decodeAuthenticate,
  decodeCerts,
  decodeNetinfo,
  encodeAuth0003Signed,
  encodeAuthChallenge,
  encodeAuthenticate,
  encodeCerts,
  encodeNetinfo,
  encodeVersionsCell,
  LINK_VERSIONS,
  type Netinfo,
} from "../cell/link_cells.ts";
import { bytesEqual, concatBytes } from "../crypto/kdf.ts";
import { ed25519Verify } from "../crypto/ed25519.ts";
import {
  CertError,
  initiatorCerts,
  type PeerIdentity,
  responderCerts,
  signWithAuthKey,
  tlsCredentials,
  type TorRelayKeys,
  verifyPeerCerts,
} from "../keys/mod.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import { tlsAccept, tlsConnect, type TlsConnection, TlsError } from "./tls.ts";

/** RFC 5705 label of AUTHENTICATE method 3 (tor-spec §4.4.2). */
export const AUTH0003_EXPORTER_LABEL = "EXPORTER FOR TOR TLS CLIENT BINDING AUTH0003";
/** The only AUTHENTICATE method we offer and use (C tor 0.4.9 offers only it). */
const AUTH_METHOD_ED25519_SHA256_RFC5705 = 3;
/** A handshake not done by then fails (C tor's is 60 s; a loopback one takes ≈ 6 ms). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest VERSIONS payload we read (tor sends 3 versions). */
const MAX_VERSIONS_PAYLOAD = 512;
/** Largest other handshake cell we read (a C tor CERTS cell is ≈ 1.5 KiB). */
const MAX_HANDSHAKE_PAYLOAD = 8192;
/** Largest variable cell read once open (VPADDING; the u16 allows 65535). */
const MAX_OPEN_VAR_PAYLOAD = 65535;
/** The link's outbuf high-water mark (Tor's connection outbuf: 32 KiB). */
export const TOR_LINK_OUTBUF_HIGH = 32768;
/** Cells per read piece (Tor clamps one bucket-limited read to 4–32 cells). */
const PIECE_CELLS = 8;
/**
 * The read buffer: small while idle (PCTCP keeps a link per circuit), doubled while reads
 * fill it, up to 128 KiB for bulk (32 → 128 KiB took one pair from 118 to 165 MB/s of cells,
 * bench/tls_link.ts), given back once it is empty after a small read.
 */
const READ_BUF_MIN = 4096;
const READ_BUF_MAX = 131072;
/** The write buffer while idle (grown for a burst, given back after it). */
const OUT_BUF_MIN = 4096;

/** Why a link failed. */
export type TorLinkFailure =
  | "tls" // TLS refused, or failed under the link
  | "timeout" // the handshake did not finish in time
  | "closed" // the peer closed the connection
  | "protocol" // an unexpected, malformed or truncated cell
  | "oversized" // a cell longer than we read
  | "versions" // no link version in common
  | "certs" // the peer's certificates do not prove an identity
  | "identity" // the peer is not the relay we expected
  | "authenticate"; // AUTHENTICATE does not prove the initiator's identity for this link

/** A link handshake or framing failure; the connection has been closed. */
export class TorLinkError extends Error {
  /** Error name. */
  override name = "TorLinkError";
  /** Which kind of failure. */
  readonly reason: TorLinkFailure;
  /** An error for `reason` with `message` saying what was wrong. */
  constructor(reason: TorLinkFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Who is at the other end, as the handshake proved it. */
export interface TorLinkPeer {
  /** "relay" when it proved an identity (responder always; initiator by AUTHENTICATE). */
  role: "relay" | "client";
  /** RSA identity fingerprint, 40 upper-case hex (relays). */
  rsaFingerprint?: string;
  /** Ed25519 identity (relays). */
  ed25519Identity?: Uint8Array;
  /** RSA identity key, PKCS#1 DER (relays). */
  rsaIdentityDer?: Uint8Array;
  /** The peer's NETINFO (its clock and addresses). */
  netinfo?: Netinfo;
}

/** Options of {@link torLinkConnect}. */
export interface TorLinkConnectOptions {
  /** Our relay keys; absent: we are a client (no CERTS, no AUTHENTICATE). */
  keys?: TorRelayKeys;
  /** The identity the responder must prove (from EXTEND2's link specifiers, or a descriptor). */
  expect?: { rsaFingerprint?: string; ed25519Identity?: Uint8Array };
  /** The time certificates are checked at (default now). */
  now?: Date;
  /** Handshake timeout (default 10 s). */
  timeoutMs?: number;
  /** Our addresses for NETINFO (relays; default: the socket's local address). */
  myAddresses?: string[];
  /** Where handshake failures are logged (warn). */
  log?: Logger;
}

/** Options of {@link torLinkAccept}. */
export interface TorLinkAcceptOptions {
  /** Our relay keys. */
  keys: TorRelayKeys;
  /** The time certificates are checked at (default now). */
  now?: Date;
  /** Handshake timeout (default 10 s). */
  timeoutMs?: number;
  /** Our addresses for NETINFO (default: the socket's local address). */
  myAddresses?: string[];
  /** Where handshake failures are logged (warn). */
  log?: Logger;
}

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** Our own identity, read back from our certificates once per key set. */
const selfIdentity = new WeakMap<TorRelayKeys, PeerIdentity>();
function ourIdentity(keys: TorRelayKeys, now: Date): PeerIdentity {
  let id = selfIdentity.get(keys);
  if (!id) {
    try {
      id = verifyPeerCerts(responderCerts(keys), {
        role: "responder",
        tlsCertDer: tlsCredentials(keys).certDer,
        now,
      });
    } catch (e) {
      throw new TorLinkError(
        "certs",
        `our own certificates do not verify (renew the keys): ${(e as Error).message}`,
      );
    }
    selfIdentity.set(keys, id);
  }
  return id;
}

/** The inputs of an AUTHENTICATE method-3 body, from the initiator's side. */
export interface Auth0003Inputs {
  /** The initiator's RSA identity DER and Ed25519 identity. */
  initiator: { rsaIdentityDer: Uint8Array; ed25519Identity: Uint8Array };
  /** The responder's. */
  responder: { rsaIdentityDer: Uint8Array; ed25519Identity: Uint8Array };
  /** Every byte the responder sent before AUTHENTICATE. */
  responderLog: Uint8Array;
  /** Every byte the initiator sent before AUTHENTICATE. */
  initiatorLog: Uint8Array;
  /** The responder's TLS certificate, DER. */
  responderTlsCertDer: Uint8Array;
  /** The TLS connection (its exporter gives TLSSECRETS). */
  tls: { exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array };
  /** RAND (24 bytes; random when absent). */
  rand?: Uint8Array;
}

/**
 * The signed part of AUTHENTICATE method 3 (tor-spec §4.4.2), as both sides compute it; the
 * initiator appends its type-6 key's signature over it.
 */
export function auth0003Signed(i: Auth0003Inputs): Uint8Array {
  const cid = sha256(i.initiator.rsaIdentityDer);
  return encodeAuth0003Signed({
    cid,
    sid: sha256(i.responder.rsaIdentityDer),
    cidEd: i.initiator.ed25519Identity,
    sidEd: i.responder.ed25519Identity,
    slog: sha256(i.responderLog),
    clog: sha256(i.initiatorLog),
    scert: sha256(i.responderTlsCertDer),
    // Context CID (C tor `connection_or_compute_authenticate_cell_body`).
    tlssecrets: i.tls.exportKeyingMaterial(AUTH0003_EXPORTER_LABEL, cid, 32),
    rand: i.rand ?? new Uint8Array(randomBytes(24)),
  });
}

/** A cell read during the handshake, with its exact bytes (for SLOG / CLOG). */
interface RawCell {
  circId: number;
  command: number;
  payload: Uint8Array;
  raw: Uint8Array;
}

/** Buffered reads of handshake cells from the TLS connection; the rest goes to the TorLink. */
class HandshakeReader {
  buf = new Uint8Array(READ_BUF_MIN);
  start = 0;
  end = 0;
  #tls: TlsConnection;
  constructor(tls: TlsConnection) {
    this.#tls = tls;
  }

  async #need(n: number, what: string): Promise<void> {
    while (this.end - this.start < n) {
      if (this.buf.length - this.start < n) {
        const next = new Uint8Array(Math.max(n, this.buf.length * 2));
        next.set(this.buf.subarray(this.start, this.end));
        this.end -= this.start, this.start = 0, this.buf = next;
      } else if (this.buf.length - this.end < 1024) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start, this.start = 0;
      }
      const got = await this.#tls.read(this.buf.subarray(this.end));
      if (got === null) {
        throw new TorLinkError(
          "closed",
          `peer closed the connection during the link handshake${
            this.end > this.start ? ` in the middle of ${what}` : ` before ${what}`
          }`,
        );
      }
      this.end += got;
    }
  }

  #take(n: number): Uint8Array {
    const raw = this.buf.slice(this.start, this.start + n);
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
    return raw;
  }

  /** The first cell: VERSIONS with a 2-byte CircID (tor-spec §3, §4.1). */
  async versions(): Promise<RawCell> {
    await this.#need(5, "VERSIONS");
    const b = this.buf, s = this.start;
    const command = b[s + 2]!, len = (b[s + 3]! << 8) | b[s + 4]!;
    if (command !== CellCommand.VERSIONS) {
      throw new TorLinkError("protocol", `expected a VERSIONS cell first: command ${command}`);
    }
    if (len > MAX_VERSIONS_PAYLOAD) {
      throw new TorLinkError(
        "oversized",
        `VERSIONS cell too long: ${len} > ${MAX_VERSIONS_PAYLOAD}`,
      );
    }
    await this.#need(5 + len, "VERSIONS");
    const raw = this.#take(5 + len);
    return { circId: (raw[0]! << 8) | raw[1]!, command, payload: raw.subarray(5), raw };
  }

  /** The next cell with a 4-byte CircID (link ≥ 4). */
  async cell(): Promise<RawCell> {
    await this.#need(5, "a cell");
    const b = this.buf, s = this.start;
    const command = b[s + 4]!;
    let head = 5, size = CELL_LEN;
    if (isVariableCommand(command)) {
      await this.#need(7, "a cell header");
      const len = (this.buf[this.start + 5]! << 8) | this.buf[this.start + 6]!;
      if (len > MAX_HANDSHAKE_PAYLOAD) {
        throw new TorLinkError(
          "oversized",
          `handshake cell (command ${command}) too long: ${len} > ${MAX_HANDSHAKE_PAYLOAD}`,
        );
      }
      head = 7, size = 7 + len;
    }
    await this.#need(size, `a cell (command ${command})`);
    const raw = this.#take(size);
    const circId = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
    if (circId !== 0) {
      throw new TorLinkError(
        "protocol",
        `handshake cell (command ${command}) on circuit ${circId}`,
      );
    }
    return { circId, command, payload: raw.subarray(head), raw };
  }
}

/** A cell with a 4-byte CircID 0 (variable or fixed by its command). */
function linkCell(command: number, payload: Uint8Array): Uint8Array {
  return encodeCell({ circId: 0, command, payload });
}

function netinfoCell(now: Date, other: string | undefined, mine: string[], client: boolean) {
  return linkCell(
    CellCommand.NETINFO,
    // A client sends no clock and no addresses of its own (tor-spec §4.5).
    encodeNetinfo({
      time: client ? 0 : Math.floor(now.getTime() / 1000),
      otherAddress: other,
      myAddresses: client ? [] : mine,
    }),
  );
}

function addrOf(a: Deno.Addr | undefined): string | undefined {
  if (!a || (a.transport !== "tcp" && a.transport !== "udp")) return undefined;
  return /^[0-9.]+$/.test(a.hostname) || a.hostname.includes(":") ? a.hostname : undefined;
}

function safeAddr(conn: Deno.Conn, which: "remoteAddr" | "localAddr"): string | undefined {
  try {
    return addrOf(conn[which]);
  } catch {
    return undefined;
  }
}

/** Maps any failure to a TorLinkError with a reason. */
function asLinkError(e: unknown): TorLinkError {
  if (e instanceof TorLinkError) return e;
  if (e instanceof CertError) return new TorLinkError("certs", `${e.reason}: ${e.message}`);
  if (e instanceof TlsError) return new TorLinkError("tls", e.message);
  if (e instanceof SyntaxError || e instanceof MessageError || e instanceof RangeError) {
    return new TorLinkError("protocol", `malformed handshake cell: ${e.message}`);
  }
  return new TorLinkError("protocol", (e as Error)?.message ?? String(e));
}

/** Runs `body` under the handshake timeout; on any failure closes everything and logs. */
async function guarded(
  conn: Deno.Conn,
  role: string,
  o: { timeoutMs?: number; log?: Logger },
  body: (state: { tls?: TlsConnection }) => Promise<TorLink>,
): Promise<TorLink> {
  const state: { tls?: TlsConnection } = {};
  const ms = o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TorLinkError("timeout", `link handshake not done after ${ms} ms`)),
      ms,
    );
  });
  const work = body(state);
  try {
    return await Promise.race([work, late]);
  } catch (e) {
    const err = asLinkError(e);
    if (state.tls) state.tls.close();
    else {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    work.then((l) => l.close(), () => {}); // a link finished after the timeout is closed too
    const peer = safeAddr(conn, "remoteAddr") ?? "peer";
    (o.log ?? nullLogger).warn(
      `tor link (${role}) with ${peer} failed (${err.reason}): ${err.message}`,
    );
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens a Tor link as initiator on a connected socket: TLS, VERSIONS, the responder's CERTS
 * checked (and its identity against `expect`), then as a relay CERTS + AUTHENTICATE +
 * NETINFO, as a client NETINFO alone.
 */
export function torLinkConnect(
  conn: Deno.Conn,
  options: TorLinkConnectOptions = {},
): Promise<TorLink> {
  const role = options.keys ? "initiator relay" : "initiator client";
  return guarded(conn, role, options, async (state) => {
    const now = options.now ?? new Date();
    const keys = options.keys;
    const self = keys ? ourIdentity(keys, now) : undefined;
    const tls = state.tls = await tlsConnect(conn, {
      timeoutMs: options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    });
    const rd = new HandshakeReader(tls);
    const myVersions = encodeVersionsCell(LINK_VERSIONS);
    tls.queue(myVersions);
    const v = await rd.versions();
    const version = chooseLinkVersion(LINK_VERSIONS, decodeVersions(v.payload));
    if (version === undefined) {
      throw new TorLinkError(
        "versions",
        `no link version in common: theirs ${decodeVersions(v.payload).join(",")}, ours ${
          LINK_VERSIONS.join(",")
        }`,
      );
    }
    // Everything the responder sent before our AUTHENTICATE (SLOG).
    const received: Uint8Array[] = [v.raw];
    let peerId: PeerIdentity | undefined;
    let challenge: { methods: number[] } | undefined;
    while (!challenge) {
      const c = await rd.cell();
      received.push(c.raw);
      switch (c.command) {
        case CellCommand.CERTS: {
          if (peerId) throw new TorLinkError("protocol", "second CERTS cell");
          const tlsCertDer = tls.peerCertificateDer();
          if (!tlsCertDer) {
            throw new TorLinkError("certs", "responder presented no TLS certificate");
          }
          peerId = verifyPeerCerts(decodeCerts(c.payload), { role: "responder", tlsCertDer, now });
          break;
        }
        case CellCommand.AUTH_CHALLENGE:
          if (!peerId) throw new TorLinkError("protocol", "AUTH_CHALLENGE before CERTS");
          challenge = decodeAuthChallenge(c.payload);
          break;
        case CellCommand.PADDING:
        case CellCommand.VPADDING:
          break;
        default:
          throw new TorLinkError(
            "protocol",
            `unexpected cell in the link handshake: command ${c.command}`,
          );
      }
    }
    const id = peerId!;
    const want = options.expect;
    if (
      want?.rsaFingerprint && want.rsaFingerprint.toUpperCase() !== id.rsaFingerprint.toUpperCase()
    ) {
      throw new TorLinkError(
        "identity",
        `responder is ${id.rsaFingerprint}, expected ${want.rsaFingerprint.toUpperCase()}`,
      );
    }
    if (want?.ed25519Identity && !bytesEqual(want.ed25519Identity, id.ed25519Identity)) {
      throw new TorLinkError("identity", "responder's Ed25519 identity is not the one expected");
    }
    const other = safeAddr(conn, "remoteAddr");
    if (keys && self) {
      if (!challenge.methods.includes(AUTH_METHOD_ED25519_SHA256_RFC5705)) {
        throw new TorLinkError(
          "authenticate",
          `responder offers no AUTHENTICATE method we speak: ${challenge.methods.join(",")}`,
        );
      }
      const certsCell = linkCell(CellCommand.CERTS, encodeCerts(initiatorCerts(keys)));
      const signed = auth0003Signed({
        initiator: self,
        responder: id,
        responderLog: concatBytes(...received),
        initiatorLog: concatBytes(myVersions, certsCell),
        responderTlsCertDer: tls.peerCertificateDer()!,
        tls,
      });
      const authentication = concatBytes(signed, signWithAuthKey(keys, signed));
      const authCell = linkCell(
        CellCommand.AUTHENTICATE,
        encodeAuthenticate({ authType: AUTH_METHOD_ED25519_SHA256_RFC5705, authentication }),
      );
      const mine = options.myAddresses ??
        [safeAddr(conn, "localAddr")].filter((a) => a !== undefined);
      tls.queue(concatBytes(certsCell, authCell, netinfoCell(now, other, mine, false)));
    } else {
      tls.queue(netinfoCell(now, other, [], true));
    }
    await tls.flush();
    // The responder's NETINFO ends its part (tor-spec §4.5).
    let netinfo: Netinfo | undefined;
    while (!netinfo) {
      const c = await rd.cell();
      if (c.command === CellCommand.NETINFO) netinfo = decodeNetinfo(c.payload);
      else if (c.command !== CellCommand.PADDING && c.command !== CellCommand.VPADDING) {
        throw new TorLinkError("protocol", `unexpected cell before NETINFO: command ${c.command}`);
      }
    }
    return new TorLink(
      tls,
      rd,
      {
        role: "relay",
        rsaFingerprint: id.rsaFingerprint,
        ed25519Identity: id.ed25519Identity,
        rsaIdentityDer: id.rsaIdentityDer,
        netinfo,
      },
      true,
      version,
    );
  });
}

/**
 * Answers a Tor link as responder on an accepted socket: TLS with our link certificate,
 * VERSIONS, CERTS 1 2 4 5 7, AUTH_CHALLENGE [3], NETINFO; then either the initiator's CERTS
 * and AUTHENTICATE (a relay, checked) and NETINFO, or NETINFO alone (a client).
 */
export function torLinkAccept(conn: Deno.Conn, options: TorLinkAcceptOptions): Promise<TorLink> {
  return guarded(conn, "responder", options, async (state) => {
    const now = options.now ?? new Date();
    const keys = options.keys;
    const self = ourIdentity(keys, now);
    const cred = tlsCredentials(keys);
    const tls = state.tls = await tlsAccept(conn, {
      ...cred,
      timeoutMs: options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    });
    const rd = new HandshakeReader(tls);
    const v = await rd.versions();
    const theirs = decodeVersions(v.payload);
    const version = chooseLinkVersion(LINK_VERSIONS, theirs);
    if (version === undefined) {
      throw new TorLinkError(
        "versions",
        `no link version in common: theirs ${theirs.join(",")}, ours ${LINK_VERSIONS.join(",")}`,
      );
    }
    const sent = concatBytes(
      encodeVersionsCell(LINK_VERSIONS),
      linkCell(CellCommand.CERTS, encodeCerts(responderCerts(keys))),
      linkCell(
        CellCommand.AUTH_CHALLENGE,
        encodeAuthChallenge({
          challenge: new Uint8Array(randomBytes(32)),
          methods: [AUTH_METHOD_ED25519_SHA256_RFC5705],
        }),
      ),
    );
    const other = safeAddr(conn, "remoteAddr");
    const mine = options.myAddresses ??
      [safeAddr(conn, "localAddr")].filter((a) => a !== undefined);
    tls.queue(concatBytes(sent, netinfoCell(now, other, mine, false)));
    await tls.flush();
    // Everything the initiator sent before AUTHENTICATE (CLOG).
    const received: Uint8Array[] = [v.raw];
    let peerId: PeerIdentity | undefined;
    let authenticated = false;
    let netinfo: Netinfo | undefined;
    while (!netinfo) {
      const c = await rd.cell();
      switch (c.command) {
        case CellCommand.CERTS:
          if (peerId) throw new TorLinkError("protocol", "second CERTS cell");
          received.push(c.raw);
          peerId = verifyPeerCerts(decodeCerts(c.payload), { role: "initiator", now });
          break;
        case CellCommand.AUTHENTICATE: {
          if (!peerId) throw new TorLinkError("protocol", "AUTHENTICATE before CERTS");
          if (authenticated) throw new TorLinkError("protocol", "second AUTHENTICATE cell");
          checkAuthenticate(c.payload, {
            initiator: peerId,
            responder: self,
            responderLog: sent,
            initiatorLog: concatBytes(...received),
            responderTlsCertDer: tls.certificateDer()!,
            tls,
          });
          authenticated = true;
          break;
        }
        case CellCommand.NETINFO:
          if (peerId && !authenticated) {
            throw new TorLinkError("authenticate", "initiator sent CERTS but no AUTHENTICATE");
          }
          netinfo = decodeNetinfo(c.payload);
          break;
        case CellCommand.PADDING:
        case CellCommand.VPADDING:
          if (!authenticated) received.push(c.raw); // C tor digests every cell it receives
          break;
        default:
          throw new TorLinkError(
            "protocol",
            `unexpected cell in the link handshake: command ${c.command}`,
          );
      }
    }
    const peer: TorLinkPeer = authenticated && peerId
      ? {
        role: "relay",
        rsaFingerprint: peerId.rsaFingerprint,
        ed25519Identity: peerId.ed25519Identity,
        rsaIdentityDer: peerId.rsaIdentityDer,
        netinfo,
      }
      : { role: "client", netinfo };
    return new TorLink(tls, rd, peer, false, version);
  });
}

/** Checks an AUTHENTICATE payload against what this link must show (tor-spec §4.4.2). */
function checkAuthenticate(
  payload: Uint8Array,
  expected: Omit<Auth0003Inputs, "initiator"> & { initiator: PeerIdentity },
): void {
  const m = decodeAuthenticate(payload);
  if (m.authType !== AUTH_METHOD_ED25519_SHA256_RFC5705) {
    throw new TorLinkError("authenticate", `AUTHENTICATE method ${m.authType} was not offered`);
  }
  if (m.authentication.length !== AUTH0003_LEN) {
    throw new TorLinkError("authenticate", `AUTHENTICATE body of ${m.authentication.length} bytes`);
  }
  const got = decodeAuth0003(m.authentication);
  const want = decodeAuth0003(
    concatBytes(auth0003Signed({ ...expected, rand: got.rand }), new Uint8Array(64)),
  );
  const fields = [
    ["CID", "cid"],
    ["SID", "sid"],
    ["CID_ED", "cidEd"],
    ["SID_ED", "sidEd"],
    ["SLOG", "slog"],
    ["CLOG", "clog"],
    ["SCERT", "scert"],
    ["TLSSECRETS", "tlssecrets"],
  ] as const;
  for (const [name, k] of fields) {
    if (!bytesEqual(got[k], want[k])) {
      throw new TorLinkError("authenticate", `AUTHENTICATE ${name} does not match this link`);
    }
  }
  const authKey = expected.initiator.authKey;
  if (!authKey) throw new TorLinkError("certs", "initiator's CERTS has no link-auth key (type 6)");
  if (!ed25519Verify(authKey, got.signed, got.signature)) {
    throw new TorLinkError("authenticate", "AUTHENTICATE signature does not verify");
  }
}

/** A waiting writer. */
interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * An open Tor link: cells over TLS. Implements the channel's `ChannelLink` (TOR-API.md):
 * {@link tryRead} / {@link fill} hand out fixed cells, {@link writev} queues cells merged into
 * one TLS write per turn of the event loop.
 */
export class TorLink {
  /** Who is at the other end. */
  readonly peer: TorLinkPeer;
  /** True on the side that opened the connection (it picks CircIDs with the high bit set). */
  readonly initiator: boolean;
  /** The link protocol version agreed (4 or 5). */
  readonly linkVersion: number;
  /**
   * Called for VPADDING and unknown variable cells received while open (they never reach the
   * channel); a Tor peer sends VPADDING as padding, two of ours may say more in it.
   */
  onVariableCell?: (command: number, payload: Uint8Array) => void;
  #tls: TlsConnection;
  #buf: Uint8Array;
  #start: number;
  #end: number;
  #eof = false;
  #closed = false;
  #error: Error | undefined;
  #out: Uint8Array = new Uint8Array(OUT_BUF_MIN);
  #outLen = 0;
  #waiting = 0;
  #pumping = false;
  #waiters: Waiter[] = [];
  /** Bytes the next read must make room for (a long variable cell). */
  #want = 0;
  #lastRead = 0;

  /** @internal Use {@link torLinkConnect} or {@link torLinkAccept}. */
  constructor(
    tls: TlsConnection,
    rd: { buf: Uint8Array; start: number; end: number },
    peer: TorLinkPeer,
    initiator: boolean,
    linkVersion: number,
  ) {
    this.#tls = tls;
    // What the handshake reader read past the handshake is the first OPEN bytes.
    this.#buf = rd.buf;
    this.#start = rd.start;
    this.#end = rd.end;
    this.peer = peer;
    this.initiator = initiator;
    this.linkVersion = linkVersion;
  }

  /** RFC 5705 keying material of this link's TLS session (e.g. for a per-pair secret). */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array {
    return this.#tls.exportKeyingMaterial(label, context, length);
  }

  /** Bytes queued in the link and not yet written to the connection. */
  get outbuf(): number {
    return this.#waiting;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Next piece of cells from the peer (whole 514-byte cells, up to 8), null once the peer has
   * closed, undefined when {@link fill} must read first. Throws a TorLinkError on a variable
   * cell longer than 65535 bytes can say, or end of stream in the middle of a cell.
   */
  tryRead(): Uint8Array | null | undefined {
    if (this.#error) throw this.#error;
    const b = this.#buf, e = this.#end;
    let s = this.#start, run = -1, cells = 0;
    this.#want = 0;
    for (;;) {
      if (e - s < 5) break;
      const command = b[s + 4]!;
      if (isVariableCommand(command)) {
        if (run >= 0) break; // hand out the cells before it first
        if (e - s < 7) break;
        const len = (b[s + 5]! << 8) | b[s + 6]!;
        if (len > MAX_OPEN_VAR_PAYLOAD) {
          throw this.#fail(new TorLinkError("oversized", `variable cell too long: ${len}`));
        }
        if (e - s < 7 + len) {
          this.#want = 7 + len;
          break;
        }
        // Handshake commands after OPEN are ignored too (C tor: "wrong state").
        if (
          command === CellCommand.VPADDING ||
          !(command === CellCommand.VERSIONS || command === CellCommand.CERTS ||
            command === CellCommand.AUTH_CHALLENGE || command === CellCommand.AUTHENTICATE)
        ) {
          const payload = b.slice(s + 7, s + 7 + len);
          s += 7 + len;
          this.#start = s;
          this.onVariableCell?.(command, payload);
        } else s += 7 + len;
        continue;
      }
      if (e - s < CELL_LEN) break;
      if (
        command === CellCommand.PADDING || command === CellCommand.PADDING_NEGOTIATE ||
        command === CellCommand.NETINFO
      ) {
        if (run >= 0) break;
        s += CELL_LEN;
        continue;
      }
      if (run < 0) run = s;
      s += CELL_LEN;
      if (++cells === PIECE_CELLS) break;
    }
    this.#start = s;
    if (s === this.#end) {
      this.#start = this.#end = 0;
      // Empty after a small read: an idle link's pending read holds the small buffer. (The
      // pieces handed out are copies, so the old buffer may go.)
      if (this.#buf.length > READ_BUF_MIN && this.#lastRead <= 2048) {
        const piece = run >= 0 ? b.slice(run, s) : undefined;
        this.#buf = new Uint8Array(READ_BUF_MIN);
        if (piece) return piece;
      }
    }
    if (run >= 0) return b.slice(run, s);
    if (this.#eof) {
      if (this.#end > this.#start) {
        throw this.#fail(new TorLinkError("closed", "link closed in the middle of a cell"));
      }
      return null;
    }
    return undefined;
  }

  /** One read from the connection toward the next piece; false at end of stream. */
  async fill(): Promise<boolean> {
    if (this.#eof) return false;
    const have = this.#end - this.#start;
    const need = Math.max(this.#want, CELL_LEN);
    // Empty, and the last read took less than half the room: traffic is not bulk (or a burst
    // is over), so the pending read holds a small buffer; bulk reads double it again.
    if (have === 0 && this.#buf.length > READ_BUF_MIN && this.#lastRead < this.#buf.length / 2) {
      this.#buf = new Uint8Array(Math.max(READ_BUF_MIN, need));
      this.#start = this.#end = 0;
    }
    if (this.#buf.length < need) {
      const next = new Uint8Array(Math.max(need, this.#buf.length * 2));
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next, this.#start = 0, this.#end = have;
    } else if (this.#buf.length - this.#end < Math.max(4096, need - have)) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0, this.#end = have;
    }
    let got: number | null;
    const space = this.#buf.length - this.#end;
    try {
      got = await this.#tls.read(this.#buf.subarray(this.#end));
    } catch (e) {
      if (this.#closed) got = null;
      else throw this.#fail(asLinkError(e));
    }
    if (got === null) {
      this.#eof = true;
      return false;
    }
    this.#end += got;
    this.#lastRead = got;
    // Bulk: the read filled what there was; next time read into twice the room.
    if (got === space && this.#buf.length < READ_BUF_MAX) {
      const next = new Uint8Array(this.#buf.length * 2);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#end -= this.#start, this.#start = 0, this.#buf = next;
    }
    return true;
  }

  /** The next piece (see {@link tryRead}), reading as needed; null at end of stream. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const p = this.tryRead();
      if (p !== undefined) return p;
      await this.fill();
    }
  }

  /**
   * Queues the parts to go out in order (copied before it returns); resolves at once while
   * the queue is below {@link TOR_LINK_OUTBUF_HIGH}, else once it has drained below it.
   */
  writev(parts: Uint8Array[]): Promise<void> {
    if (this.#closed || this.#error) {
      return Promise.reject(this.#error ?? new TorLinkError("closed", "link closed"));
    }
    const before = this.#waiting;
    let n = 0;
    for (const p of parts) n += p.length;
    if (this.#outLen + n > this.#out.length) {
      const grown = new Uint8Array(Math.max(this.#out.length * 2, this.#outLen + n));
      grown.set(this.#out.subarray(0, this.#outLen));
      this.#out = grown;
    }
    const out = this.#out;
    for (const p of parts) {
      if (p.length <= 8) { for (let i = 0; i < p.length; i++) out[this.#outLen + i] = p[i]!; }
      else out.set(p, this.#outLen);
      this.#outLen += p.length;
    }
    this.#waiting += n;
    if (!this.#pumping) {
      this.#pumping = true;
      // Next turn of the event loop: whatever the caller queues in this turn joins the write.
      setImmediate(() => this.#pump());
    }
    if (before < TOR_LINK_OUTBUF_HIGH) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Sends one variable-length cell on circuit 0 (VPADDING or a command of our own). */
  sendVariableCell(command: number, payload: Uint8Array): Promise<void> {
    if (!isVariableCommand(command)) {
      throw new RangeError(`not a variable-length command: ${command}`);
    }
    return this.writev([encodeCell({ circId: 0, command, payload })]);
  }

  async #pump(): Promise<void> {
    try {
      while (this.#outLen > 0 && !this.#error && !this.#closed) {
        const n = this.#outLen;
        this.#tls.queue(this.#out.subarray(0, n)); // encrypted and copied now
        this.#outLen = 0;
        await this.#tls.flush();
        this.#waiting -= n;
        if (this.#waiting < TOR_LINK_OUTBUF_HIGH) this.#wake();
      }
    } catch (e) {
      this.#fail(asLinkError(e));
    } finally {
      this.#pumping = false;
      // Idle again: a buffer grown for a burst is given back (PCTCP keeps a link per circuit).
      if (this.#outLen === 0 && this.#out.length > OUT_BUF_MIN) {
        this.#out = new Uint8Array(OUT_BUF_MIN);
      }
      this.#wake();
    }
  }

  #wake(): void {
    const w = this.#waiters;
    if (!w.length) return;
    this.#waiters = [];
    for (const x of w) this.#error ? x.reject(this.#error) : x.resolve();
  }

  #fail(e: TorLinkError): TorLinkError {
    this.#error ??= e;
    this.#outLen = 0;
    this.#waiting = 0;
    this.#closed = true;
    this.#tls.close();
    this.#wake();
    return e;
  }

  /**
   * Closes the link and its connection (idempotent); what was written still goes out first,
   * then TLS close_notify, for at most a grace period (tls.ts).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#outLen > 0 && !this.#error) {
      try {
        this.#tls.queue(this.#out.subarray(0, this.#outLen));
      } catch { /* failed already */ }
    }
    this.#outLen = 0;
    this.#waiting = 0;
    this.#tls.close();
    this.#wake();
  }
}
