/**
 * An authenticated, encrypted link between two onion routers (or a client and its guard).
 *
 * Tor runs its links over TLS with CERTS/AUTHENTICATE cells binding the TLS session to the
 * relays' identity keys (tor-spec §4). We cannot mint X.509 certificates without another
 * dependency, so the link uses an equally standard construction made of Tor's own
 * primitives:
 *
 * 1. Initiator → responder: `"PCTCP-LINK1" | purpose u8 | ntor onion skin` built for the
 *    responder's identity digest and *link key* from the signed directory (tor-spec §5.1.4).
 * 2. Responder → initiator: ntor reply `Y | AUTH`. Only the holder of the link key can make
 *    AUTH verify, so the responder is authenticated; both sides derive 64 bytes of keys.
 * 3. Initiator → responder (first encrypted frame): `role u8` and, for a relay,
 *    `Ed25519 identity | signature("pctcp-link-auth-v1" | skin | reply)`: the transcript is
 *    fresh, so the signature cannot be replayed on another link. Clients stay anonymous.
 * 4. Responder → initiator: an encrypted `OK` frame.
 *
 * Frames: `length u32 | AES-256-GCM(ciphertext) | tag(16)`, the length as associated data, a
 * 96-bit counter nonce per direction. With `encrypt: false` (per-circuit connections under
 * IPsec, or `--insecure-lab`), steps 1–4 still authenticate the peer and frames are sent in
 * the clear: `length u32 | bytes`.
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { concatBytes } from "../crypto/kdf.ts";
import { ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import { type HandshakeError, ntorClient1, ntorClient2, ntorServer } from "../crypto/ntor.ts";
import { identityDigest } from "../directory/keys.ts";

const MAGIC = new TextEncoder().encode("PCTCP-LINK1");
const AUTH_LABEL = new TextEncoder().encode("pctcp-link-auth-v1");
const OK = new TextEncoder().encode("OK");
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
  readonly purpose: LinkPurpose;
  readonly encrypted: boolean;
  /** True on the side that opened the connection (it picks CircIDs with the high bit set). */
  readonly initiator: boolean;
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
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.#sendKey = keys.send;
    this.#recvKey = keys.recv;
    this.peer = peer;
    this.purpose = purpose;
    this.encrypted = encrypted;
    this.initiator = initiator;
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
  /** Encrypt frames (default true). */
  encrypt?: boolean;
}

/** Runs the initiator's side of the link handshake on a connected stream. */
export function linkConnect(conn: ByteStream, options: LinkConnectOptions): Promise<Link> {
  return withTimeout(connectInner(conn, options), conn, "link handshake");
}

async function connectInner(conn: ByteStream, o: LinkConnectOptions): Promise<Link> {
  const purpose = o.purpose ?? "shared";
  const encrypted = o.encrypt ?? true;
  const [state, skin] = ntorClient1({
    id: identityDigest(o.peer.identity),
    onionKey: o.peer.linkKey,
  });
  const flags = (purpose === "circuit" ? 1 : 0) | (encrypted ? 0 : 2);
  await writeAll(conn, concatBytes(MAGIC, Uint8Array.of(flags), skin));
  const reader = new Reader(conn);
  const reply = await reader.exactly(64);
  if (reply === null) throw new LinkError("peer closed during the link handshake");
  let keys: Uint8Array;
  try {
    keys = ntorClient2(state, reply, 64);
  } catch (e) {
    throw new LinkError(`peer failed to prove its link key: ${(e as Error).message}`);
  }
  const link = new Link(
    conn,
    reader,
    { send: keys.subarray(0, 32), recv: keys.subarray(32, 64) },
    { role: "relay", identity: o.peer.identity },
    purpose,
    encrypted,
    true,
  );
  if (o.self) {
    const sig = ed25519Sign(o.self.secret, concatBytes(AUTH_LABEL, skin, reply));
    await link.write(concatBytes(Uint8Array.of(1), o.self.public, sig));
  } else {
    await link.write(Uint8Array.of(0));
  }
  const ok = await link.read();
  if (!ok || ok.length !== 2 || ok[0] !== OK[0] || ok[1] !== OK[1]) {
    link.close();
    throw new LinkError("peer refused the link");
  }
  return link;
}

/** Options of the responding side. */
export interface LinkAcceptOptions {
  /** Our keys. */
  keys: LinkResponderKeys;
  /** Decides whether a relay identity may link to us (e.g. it is in the directory). */
  allowRelay?: (identity: Uint8Array) => boolean;
  /** A peer that has not finished the handshake by then is dropped (default 10 s). */
  timeoutMs?: number;
}

/** Runs the responder's side of the link handshake on an accepted stream. */
export function linkAccept(conn: ByteStream, options: LinkAcceptOptions): Promise<Link> {
  return withTimeout(acceptInner(conn, options), conn, "link handshake", options.timeoutMs);
}

async function acceptInner(conn: ByteStream, o: LinkAcceptOptions): Promise<Link> {
  const reader = new Reader(conn);
  const hello = await reader.exactly(MAGIC.length + 1 + 84);
  if (hello === null) throw new LinkError("peer closed before the link handshake");
  if (!MAGIC.every((b, i) => hello[i] === b)) throw new LinkError("not a pctcp link");
  const flags = hello[MAGIC.length]!;
  const skin = hello.subarray(MAGIC.length + 1);
  const purpose: LinkPurpose = flags & 1 ? "circuit" : "shared";
  const encrypted = (flags & 2) === 0;
  let keys: Uint8Array, reply: Uint8Array;
  try {
    [keys, reply] = ntorServer(
      {
        id: identityDigest(o.keys.identity),
        onionKey: o.keys.link.public,
        onionSecret: o.keys.link.secret,
      },
      skin,
      { keyLength: 64 },
    );
  } catch (e) {
    throw new LinkError(`bad link handshake: ${(e as HandshakeError).message}`);
  }
  await writeAll(conn, reply);
  const link0 = new Link(
    conn,
    reader,
    { send: keys.subarray(32, 64), recv: keys.subarray(0, 32) },
    { role: "client" },
    purpose,
    encrypted,
    false,
  );
  const auth = await link0.read();
  if (!auth || auth.length < 1) throw new LinkError("peer sent no link authentication");
  let peer: LinkPeer = { role: "client" };
  if (auth[0] === 1) {
    if (auth.length !== 1 + 32 + 64) throw new LinkError("malformed link authentication");
    const identity = auth.slice(1, 33);
    const sig = auth.subarray(33);
    if (!ed25519Verify(identity, concatBytes(AUTH_LABEL, skin, reply), sig)) {
      throw new LinkError("peer's identity signature does not verify");
    }
    if (o.allowRelay && !o.allowRelay(identity)) {
      throw new LinkError("peer's identity is not a relay of this network");
    }
    peer = { role: "relay", identity };
  } else if (auth[0] !== 0 || auth.length !== 1) {
    throw new LinkError("malformed link authentication");
  }
  link0.peer = peer;
  await link0.write(OK);
  return link0;
}
