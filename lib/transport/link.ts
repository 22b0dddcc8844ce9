/**
 * An authenticated, encrypted link between two onion routers (or a client and its guard).
 *
 * Tor runs its links over TLS with CERTS/AUTHENTICATE cells binding the TLS session to the
 * relays' identity keys (tor-spec §4). We cannot mint X.509 certificates without another
 * dependency, so the link uses an equally standard construction made of Tor's own
 * primitives:
 *
 * 1. Initiator → responder, the hello: `"PCTCP-LINK2" | flags u8 | circuit u32 | ntor onion
 *    skin` built for the responder's identity digest and *link key* from the signed directory
 *    (tor-spec §5.1.4). Flags: bit 0 per-circuit link, bit 1 unencrypted frames; `circuit` is
 *    the CircID a per-circuit link is bound to (0 for the shared link).
 * 2. Responder → initiator: ntor reply `Y | AUTH`. Only the holder of the link key can make
 *    AUTH verify, so the responder is authenticated; both sides derive 96 bytes of keys (two
 *    frame keys and a MAC key).
 * 3. Initiator → responder (first frame): `role u8 | HMAC(mac, "initiator" | hello | reply)`
 *    and, for a relay, `Ed25519 identity | signature("pctcp-link-auth-v2" | hello | reply)`.
 *    The transcript covers everything that changes the link's behaviour (purpose, encryption,
 *    binding) and is fresh, so neither can be altered on the path nor replayed on another
 *    link. Clients stay anonymous.
 * 4. Responder → initiator: `"OK" | HMAC(mac, "responder" | hello | reply)`: the initiator
 *    learns the responder saw the same hello.
 *
 * The responder applies its own policy: plaintext links only from relays it allows (its
 * IPsec check covers the peer, or insecure lab mode), and only per-circuit ones.
 *
 * Frames: `length u32 | AES-256-GCM(ciphertext) | tag(16)`, the length as associated data, a
 * 96-bit counter nonce per direction. With `encrypt: false` (per-circuit connections under
 * IPsec, or `--insecure-lab`), steps 1–4 still authenticate the peer and frames are sent in
 * the clear: `length u32 | bytes`.
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { bytesEqual, concatBytes, hmacSha256 } from "../crypto/kdf.ts";
import { ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import { type HandshakeError, ntorClient1, ntorClient2, ntorServer } from "../crypto/ntor.ts";
import { identityDigest } from "../directory/keys.ts";

const MAGIC = new TextEncoder().encode("PCTCP-LINK2");
const AUTH_LABEL = new TextEncoder().encode("pctcp-link-auth-v2");
const INITIATOR_LABEL = new TextEncoder().encode("initiator");
const RESPONDER_LABEL = new TextEncoder().encode("responder");
const OK = new TextEncoder().encode("OK");
const HELLO_LEN = MAGIC.length + 1 + 4 + 84;
const MAC_LEN = 32;
/** Largest plaintext in one frame. */
export const MAX_FRAME = 65536;
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** What a link is for: the shared multiplexed link, or one circuit's own connection. */
export type LinkPurpose = "shared" | "circuit";

/** Who is at the other end, as proven by the handshake. */
export interface LinkPeer {
  /** "relay" when the peer proved an Ed25519 identity, "client" otherwise. */
  role: "relay" | "client";
  /** The peer's Ed25519 identity (relays only). */
  identity?: Uint8Array;
}

/** The responder's keys (a relay). */
export interface LinkResponderKeys {
  /** Ed25519 identity public key. */
  identity: Uint8Array;
  /** Link key pair (X25519). */
  link: { secret: Uint8Array; public: Uint8Array };
}

/** Raised for any failure of the link handshake or framing. */
export class LinkError extends Error {
  /** Error name. */
  override name = "LinkError";
}

/** A byte stream the link runs on (Deno.Conn satisfies it). */
export interface ByteStream {
  /** Reads into `p`; resolves the count, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the stream. */
  close(): void;
}

class Reader {
  // Small to start (an idle link costs little; PCTCP has one per circuit), grown on demand.
  #buf: Uint8Array = new Uint8Array(16384);
  #start = 0;
  #end = 0;
  #conn: ByteStream;
  constructor(conn: ByteStream) {
    this.#conn = conn;
  }
  async exactly(n: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < n) {
      const have = this.#end - this.#start;
      if (this.#buf.length - this.#end < 4096 || this.#buf.length - this.#start < n) {
        // Compact, and grow when what is wanted does not fit.
        const size = this.#buf.length - this.#start >= n && this.#buf.length - have >= 4096
          ? this.#buf.length
          : Math.max(this.#buf.length * 2, n + 16384);
        if (size === this.#buf.length) {
          this.#buf.copyWithin(0, this.#start, this.#end);
        } else {
          const next = new Uint8Array(size);
          next.set(this.#buf.subarray(this.#start, this.#end));
          this.#buf = next;
        }
        this.#start = 0;
        this.#end = have;
      }
      const got = await this.#conn.read(this.#buf.subarray(this.#end));
      if (got === null) {
        if (have === 0) return null;
        throw new LinkError("link closed mid-frame");
      }
      this.#end += got;
    }
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return out;
  }
}

async function writeAll(conn: ByteStream, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

function nonce(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter));
  return n;
}

/** An established link: write and read byte chunks (frames), close. */
export class Link {
  /** Who is at the other end (final once the handshake has returned the link). */
  peer: LinkPeer;
  /** Shared link, or one circuit's own connection (authenticated in the handshake). */
  readonly purpose: LinkPurpose;
  /** Whether frames are encrypted (authenticated in the handshake). */
  readonly encrypted: boolean;
  /** True on the side that opened the connection (it picks CircIDs with the high bit set). */
  readonly initiator: boolean;
  /** The one CircID a per-circuit link carries (authenticated in the handshake); 0 if shared. */
  readonly boundCircId: number;
  #conn: ByteStream;
  #reader: Reader;
  #sendKey: Uint8Array;
  #recvKey: Uint8Array;
  #sendCtr = 0;
  #recvCtr = 0;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();

  /** @internal Use {@link linkConnect} or {@link linkAccept}. */
  constructor(
    conn: ByteStream,
    reader: Reader,
    keys: { send: Uint8Array; recv: Uint8Array },
    peer: LinkPeer,
    purpose: LinkPurpose,
    encrypted: boolean,
    initiator: boolean,
    boundCircId = 0,
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.#sendKey = keys.send;
    this.#recvKey = keys.recv;
    this.peer = peer;
    this.purpose = purpose;
    this.encrypted = encrypted;
    this.initiator = initiator;
    this.boundCircId = boundCircId;
  }

  /** Seals one frame (≤ MAX_FRAME bytes of plaintext). */
  #seal(p: Uint8Array): Uint8Array {
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, p.length);
    if (!this.encrypted) return concatBytes(head, p);
    const c = createCipheriv("aes-256-gcm", this.#sendKey, nonce(this.#sendCtr++));
    c.setAAD(head);
    const body = c.update(p);
    c.final();
    return concatBytes(head, body, c.getAuthTag());
  }

  /** Writes bytes as one or more frames; writes are queued in order. */
  write(p: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new LinkError("link closed"));
    const frames: Uint8Array[] = [];
    for (let off = 0; off < p.length; off += MAX_FRAME) {
      frames.push(this.#seal(p.subarray(off, Math.min(p.length, off + MAX_FRAME))));
    }
    const all = frames.length === 1 ? frames[0]! : concatBytes(...frames);
    this.#writing = this.#writing.then(() => writeAll(this.#conn, all));
    return this.#writing;
  }

  /** Reads the next frame's plaintext, or null when the peer closed the link. */
  async read(): Promise<Uint8Array | null> {
    const head = await this.#reader.exactly(4);
    if (head === null) return null;
    const len = new DataView(head.buffer, head.byteOffset).getUint32(0);
    if (len > MAX_FRAME) throw new LinkError(`frame too long: ${len}`);
    const body = await this.#reader.exactly(len + (this.encrypted ? 16 : 0));
    if (body === null) throw new LinkError("link closed mid-frame");
    if (!this.encrypted) return body;
    const d = createDecipheriv("aes-256-gcm", this.#recvKey, nonce(this.#recvCtr++));
    d.setAAD(head);
    d.setAuthTag(body.subarray(len));
    const out = d.update(body.subarray(0, len));
    try {
      d.final();
    } catch {
      throw new LinkError("frame does not authenticate");
    }
    return new Uint8Array(out);
  }

  /** Closes the link (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** True once closed by this side. */
  get closed(): boolean {
    return this.#closed;
  }
}

/**
 * The per-circuit rule (DESIGN.md "PCTCP specifics"): a per-circuit link carries the one
 * circuit its authenticated handshake bound it to, once. Returns why a CREATE2 for `circId`
 * must be refused on `link`, which already carries `carried` circuits, or undefined.
 */
export function perCircuitRefusal(link: Link, circId: number, carried: number): string | undefined {
  if (link.purpose !== "circuit") return undefined;
  if (circId !== link.boundCircId) {
    return `per-circuit link bound to ${link.boundCircId} asked for circuit ${circId}`;
  }
  if (carried > 0) return `per-circuit link already carries its circuit`;
  return undefined;
}

function withTimeout<T>(
  p: Promise<T>,
  conn: ByteStream,
  what: string,
  ms = HANDSHAKE_TIMEOUT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        conn.close();
      } catch { /* closed */ }
      reject(new LinkError(`${what} timed out`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Options of the initiating side. */
export interface LinkConnectOptions {
  /** The responder's Ed25519 identity and link key (from the signed directory). */
  peer: { identity: Uint8Array; linkKey: Uint8Array };
  /** Our identity seed and public key when we are a relay; omit for an anonymous client. */
  self?: { secret: Uint8Array; public: Uint8Array };
  /** Shared link or one circuit's connection. */
  purpose?: LinkPurpose;
  /** For a per-circuit link: the CircID (high bit set) of the one circuit it will carry. */
  circuit?: number;
  /** Encrypt frames (default true). */
  encrypt?: boolean;
}

/** Runs the initiator's side of the link handshake on a connected stream. */
export function linkConnect(conn: ByteStream, options: LinkConnectOptions): Promise<Link> {
  return withTimeout(connectInner(conn, options), conn, "link handshake");
}

function encodeHello(purpose: LinkPurpose, encrypted: boolean, circuit: number, skin: Uint8Array) {
  const hello = new Uint8Array(HELLO_LEN);
  hello.set(MAGIC);
  hello[MAGIC.length] = (purpose === "circuit" ? 1 : 0) | (encrypted ? 0 : 2);
  new DataView(hello.buffer).setUint32(MAGIC.length + 1, circuit >>> 0);
  hello.set(skin, MAGIC.length + 5);
  return hello;
}

async function connectInner(conn: ByteStream, o: LinkConnectOptions): Promise<Link> {
  const purpose = o.purpose ?? "shared";
  const encrypted = o.encrypt ?? true;
  const circuit = purpose === "circuit" ? (o.circuit ?? 0) : 0;
  if (purpose === "circuit" && (circuit >>> 31) !== 1) {
    throw new RangeError(
      `a per-circuit link needs the initiator's CircID (high bit set): ${circuit}`,
    );
  }
  const [state, skin] = ntorClient1({
    id: identityDigest(o.peer.identity),
    onionKey: o.peer.linkKey,
  });
  const hello = encodeHello(purpose, encrypted, circuit, skin);
  await writeAll(conn, hello);
  const reader = new Reader(conn);
  const reply = await reader.exactly(64);
  if (reply === null) throw new LinkError("peer closed during the link handshake");
  let keys: Uint8Array;
  try {
    keys = ntorClient2(state, reply, 96);
  } catch (e) {
    throw new LinkError(`peer failed to prove its link key: ${(e as Error).message}`);
  }
  const mac = keys.subarray(64, 96);
  const transcript = concatBytes(hello, reply);
  const link = new Link(
    conn,
    reader,
    { send: keys.subarray(0, 32), recv: keys.subarray(32, 64) },
    { role: "relay", identity: o.peer.identity },
    purpose,
    encrypted,
    true,
    circuit,
  );
  const confirm = hmacSha256(mac, INITIATOR_LABEL, transcript);
  if (o.self) {
    const sig = ed25519Sign(o.self.secret, concatBytes(AUTH_LABEL, transcript));
    await link.write(concatBytes(Uint8Array.of(1), confirm, o.self.public, sig));
  } else {
    await link.write(concatBytes(Uint8Array.of(0), confirm));
  }
  const ok = await link.read().catch(() => null);
  const want = hmacSha256(mac, RESPONDER_LABEL, transcript);
  if (
    !ok || ok.length !== 2 + MAC_LEN || ok[0] !== OK[0] || ok[1] !== OK[1] ||
    !bytesEqual(ok.subarray(2), want)
  ) {
    link.close();
    throw new LinkError("peer refused the link or saw another hello");
  }
  return link;
}

/** Options of the responding side. */
export interface LinkAcceptOptions {
  /** Our keys. */
  keys: LinkResponderKeys;
  /** Decides whether a relay identity may link to us (e.g. it is in the directory). */
  allowRelay?: (identity: Uint8Array) => boolean;
  /**
   * Our policy for unencrypted frames, asked with the peer's address before we answer:
   * true only when something else protects the link (an IPsec SA covers the peer) or in
   * insecure lab mode. Without it every plaintext link is refused. Plaintext is accepted only
   * for per-circuit links from relays.
   */
  allowPlaintext?: (address: string) => boolean | Promise<boolean>;
  /** The peer's address, for `allowPlaintext` (from the accepted connection). */
  remoteAddress?: string;
  /** A peer that has not finished the handshake by then is dropped (default 10 s). */
  timeoutMs?: number;
}

/** Runs the responder's side of the link handshake on an accepted stream. */
export function linkAccept(conn: ByteStream, options: LinkAcceptOptions): Promise<Link> {
  return withTimeout(acceptInner(conn, options), conn, "link handshake", options.timeoutMs);
}

async function acceptInner(conn: ByteStream, o: LinkAcceptOptions): Promise<Link> {
  const reader = new Reader(conn);
  const hello = await reader.exactly(HELLO_LEN);
  if (hello === null) throw new LinkError("peer closed before the link handshake");
  if (!MAGIC.every((b, i) => hello[i] === b)) throw new LinkError("not a pctcp link");
  const flags = hello[MAGIC.length]!;
  if (flags & ~3) throw new LinkError(`unknown link flags: ${flags}`);
  const circuit = new DataView(hello.buffer, hello.byteOffset).getUint32(MAGIC.length + 1);
  const skin = hello.subarray(MAGIC.length + 5);
  const purpose: LinkPurpose = flags & 1 ? "circuit" : "shared";
  const encrypted = (flags & 2) === 0;
  if (purpose === "shared" ? circuit !== 0 : (circuit >>> 31) !== 1) {
    throw new LinkError(`link binding malformed: ${purpose} link with circuit ${circuit}`);
  }
  if (!encrypted) {
    if (purpose !== "circuit") throw new LinkError("refusing an unencrypted shared link");
    const ok = o.allowPlaintext && await o.allowPlaintext(o.remoteAddress ?? "");
    if (!ok) {
      throw new LinkError(
        `refusing an unencrypted link from ${o.remoteAddress ?? "the peer"}: no IPsec covers it`,
      );
    }
  }
  let keys: Uint8Array, reply: Uint8Array;
  try {
    [keys, reply] = ntorServer(
      {
        id: identityDigest(o.keys.identity),
        onionKey: o.keys.link.public,
        onionSecret: o.keys.link.secret,
      },
      skin,
      { keyLength: 96 },
    );
  } catch (e) {
    throw new LinkError(`bad link handshake: ${(e as HandshakeError).message}`);
  }
  await writeAll(conn, reply);
  const mac = keys.subarray(64, 96);
  const transcript = concatBytes(hello, reply);
  const link0 = new Link(
    conn,
    reader,
    { send: keys.subarray(32, 64), recv: keys.subarray(0, 32) },
    { role: "client" },
    purpose,
    encrypted,
    false,
    circuit,
  );
  let auth: Uint8Array | null;
  try {
    auth = await link0.read();
  } catch (e) {
    throw e instanceof LinkError ? e : new LinkError(`link authentication unreadable: ${e}`);
  }
  if (!auth || auth.length < 1 + MAC_LEN) throw new LinkError("peer sent no link authentication");
  // The initiator's MAC over the hello it sent: an altered flag or binding fails here.
  if (!bytesEqual(auth.subarray(1, 1 + MAC_LEN), hmacSha256(mac, INITIATOR_LABEL, transcript))) {
    throw new LinkError("link transcript does not authenticate (hello altered on the path?)");
  }
  let peer: LinkPeer = { role: "client" };
  if (auth[0] === 1) {
    if (auth.length !== 1 + MAC_LEN + 32 + 64) throw new LinkError("malformed link authentication");
    const identity = auth.slice(1 + MAC_LEN, 1 + MAC_LEN + 32);
    const sig = auth.subarray(1 + MAC_LEN + 32);
    if (!ed25519Verify(identity, concatBytes(AUTH_LABEL, transcript), sig)) {
      throw new LinkError("peer's identity signature does not verify");
    }
    if (o.allowRelay && !o.allowRelay(identity)) {
      throw new LinkError("peer's identity is not a relay of this network");
    }
    peer = { role: "relay", identity };
  } else if (auth[0] !== 0 || auth.length !== 1 + MAC_LEN) {
    throw new LinkError("malformed link authentication");
  }
  if (!encrypted && peer.role !== "relay") {
    throw new LinkError("refusing an unencrypted link from a client");
  }
  link0.peer = peer;
  await link0.write(concatBytes(OK, hmacSha256(mac, RESPONDER_LABEL, transcript)));
  return link0;
}
