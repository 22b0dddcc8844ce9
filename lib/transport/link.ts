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
import { setImmediate } from "node:timers";
import { bytesEqual, concatBytes, hmacSha256 } from "../crypto/kdf.ts";
import { ed25519Sign, ed25519Verify } from "../crypto/ed25519.ts";
import { type HandshakeError, ntorClient1, ntorClient2, ntorServer } from "../crypto/ntor.ts";
import { identityDigest } from "../directory/keys.ts";
import { nativeAes } from "./openssl.ts";
import type { ChannelLink } from "../channel/link.ts";

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

/** The reader's buffer while the link is idle; it grows for bulk and shrinks back. */
const READ_BUF_MIN = 256;
/** A read of at most this much (4 cells in a frame) leaves the buffer at its smallest. */
const SMALL_READ = 2048;
/** The largest read buffer: one full frame and a second one behind it. */
const READ_BUF_MAX = 2 * (MAX_FRAME + 4 + 16);

/**
 * Bytes read from a connection, looked at in place. Reading is split into a synchronous part
 * (what is buffered: {@link peek}, {@link take}) and one socket read at a time ({@link more}):
 * an idle link then waits in a single pending read, not in a chain of suspended async calls
 * (PCTCP keeps a link per circuit, so what an idle link holds is paid per circuit).
 */
class Reader {
  // Small to start and when idle, doubled whenever a read fills it, shrunk back once it is
  // empty and reads come in small.
  #buf: Uint8Array = new Uint8Array(READ_BUF_MIN);
  #start = 0;
  #end = 0;
  #conn: ByteStream;
  #lastRead = 0;
  #lastFull = false;
  constructor(conn: ByteStream) {
    this.#conn = conn;
  }

  /** Bytes buffered and not taken. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** A view of the next `n` buffered bytes, not consumed, valid until the next {@link more}. */
  peek(n: number): Uint8Array {
    return this.#buf.subarray(this.#start, this.#start + n);
  }

  /** Consumes `n` bytes (after a {@link peek}). */
  take(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      // Empty: give a grown buffer back when the last read was small — all of it after a
      // read of a few cells (an interactive or idle link: its pending read then holds the
      // small buffer), a part while bulk reads shrink.
      if (this.#buf.length > READ_BUF_MIN) {
        if (this.#lastRead <= SMALL_READ) this.#buf = new Uint8Array(READ_BUF_MIN);
        else if (this.#lastRead < this.#buf.length / 8) {
          this.#buf = new Uint8Array(Math.max(READ_BUF_MIN, this.#buf.length / 4));
        }
      }
    }
  }

  /**
   * One socket read, with room made first for `want` bytes in all (compacting, and growing
   * when they do not fit or reads keep filling the buffer). False at end of stream.
   */
  more(want: number): Promise<boolean> {
    const have = this.#end - this.#start;
    let size = this.#buf.length;
    // Grow only for a frame that does not fit, or while reads keep filling the buffer (bulk):
    // an idle link's pending read keeps the small buffer.
    if (size < want || (this.#lastFull && size < READ_BUF_MAX)) {
      size = Math.min(Math.max(size * 2, want), Math.max(READ_BUF_MAX, want));
    }
    if (size !== this.#buf.length) {
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = have;
    } else if (
      this.#start > 0 && (size - this.#end < Math.min(1024, size / 4) || size - this.#start < want)
    ) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = have;
    }
    const space = this.#buf.length - this.#end;
    return this.#conn.read(this.#buf.subarray(this.#end)).then((got) => {
      if (got === null) return false;
      this.#lastRead = got;
      this.#lastFull = got === space;
      this.#end += got;
      return true;
    });
  }

  /** The next `n` bytes as a copy the caller keeps, or null at a clean end of stream. */
  async exactly(n: number): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (!(await this.more(n))) {
        if (this.buffered === 0) return null;
        throw new LinkError("link closed mid-frame");
      }
    }
    const out = this.peek(n).slice();
    this.take(n);
    return out;
  }
}

async function writeAll(conn: ByteStream, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

/**
 * Nonce and length-prefix scratch for every link's received frames: filled and read in one
 * synchronous step (the receive path never awaits between). The send path awaits (WebCrypto)
 * between building its nonce and the cipher reading it, so each link has its own send nonce
 * (issue 24 item 7: a shared one was overwritten by another link meanwhile, repeating
 * (key, nonce) pairs).
 */
const RECV_NONCE = new Uint8Array(12);
const RECV_HEAD = new Uint8Array(4);

/** Writes a 96-bit big-endian frame counter into the last 8 bytes of a 12-byte nonce. */
function setNonce(n: Uint8Array, counter: number): Uint8Array {
  const hi = Math.floor(counter / 0x100000000), lo = counter >>> 0;
  n[4] = hi >>> 24, n[5] = (hi >>> 16) & 0xff, n[6] = (hi >>> 8) & 0xff, n[7] = hi & 0xff;
  n[8] = lo >>> 24, n[9] = (lo >>> 16) & 0xff, n[10] = (lo >>> 8) & 0xff, n[11] = lo & 0xff;
  return n;
}

/**
 * Without OpenSSL (FFI), frames at least this long are sealed with WebCrypto's AES-GCM: here it costs
 * more per call than node:crypto (~20 µs against ~13 µs) and less per byte (~310 against
 * ~170 MB/s at 32 KiB), so it wins on large frames only.
 */
const WEBCRYPTO_MIN = 16384;
/**
 * The link's outbuf high-water mark (Tor's connection outbuf: 32 KiB): a write made while
 * less than this waits to go out returns at once, so the writer can hand over its next batch
 * to be merged into the same frame; above it a write resolves once the link has drained.
 */
export const LINK_OUTBUF_HIGH = 32768;
/**
 * The most `Link.read` returns at once: 8 cells (Tor clamps the bytes of one bucket-limited
 * read to 4–32 cells, TOR-PROTOCOL.md "Bandwidth"): read tokens and cells then interleave
 * across links at that grain, though frames carry up to 64 KiB.
 */
const READ_PIECE = 8 * 514;
/**
 * Merged writes fill a frame up to 127 cells (65 278 bytes, under MAX_FRAME): a writer of
 * whole cells then gets frames, and read pieces, that start on a cell boundary, so the cell
 * reader never has to assemble a cell split between two.
 */
const FRAME_FILL = 127 * 514;
/** How long a closed link keeps trying to write what was queued before it was closed. */
const CLOSE_GRACE_MS = 2000;
const GCM_TAG = 16;
/** WebCrypto's types want an ArrayBuffer-backed view; ours always are. */
const bs = (u: Uint8Array) => u as Uint8Array<ArrayBuffer>;

/** A frame being filled: `length u32 | plaintext`, with room for the GCM tag behind it. */
interface OutFrame {
  buf: Uint8Array;
  len: number;
}

/**
 * An established link: write and read byte chunks (frames), close.
 *
 * Writes are queued in order. Writes made while an earlier one is still waiting to go out
 * are merged into one frame (at most {@link MAX_FRAME} bytes): one seal and one socket write
 * per burst instead of per call. A reader therefore sees the bytes in order but not the
 * boundaries of the writes; the handshake's messages go out when nothing else is queued, so
 * each is a frame of its own.
 */
export class Link implements ChannelLink {
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
  #sendWebKey?: Promise<CryptoKey>;
  /** This link's send nonce (per link: see RECV_NONCE). */
  #sendNonce = new Uint8Array(12);
  #sendCtr = 0;
  #recvCtr = 0;
  #closed = false;
  #connClosed = false;
  #frames: OutFrame[] = [];
  /** Bytes written by callers and not yet handed to the socket (queued and in flight). */
  #waiting = 0;
  #pumping = false;
  #error: Error | undefined;
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The rest of a frame longer than READ_PIECE, handed out by the next reads. */
  #rest: Uint8Array | undefined;
  #restOff = 0;
  /** Bytes the next frame needs buffered (4 until its length is known). */
  #want = 4;
  #eof = false;

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

  /** Bytes written and not yet handed to the socket. */
  get outbuf(): number {
    return this.#waiting;
  }

  /**
   * Queues bytes to go out as frames. Resolves at once while less than
   * {@link LINK_OUTBUF_HIGH} bytes were waiting, else once the link has drained below it; `p`
   * is copied, so the caller may reuse it as soon as this returns.
   */
  write(p: Uint8Array): Promise<void> {
    return this.writev([p]);
  }

  /**
   * {@link write} for several parts at once, without concatenating them first (a channel's
   * batch of cells goes straight into the frame).
   */
  writev(parts: Uint8Array[]): Promise<void> {
    if (this.#closed || this.#error) {
      return Promise.reject(this.#error ?? new LinkError("link closed"));
    }
    const before = this.#waiting;
    for (const p of parts) {
      this.#append(p);
      this.#waiting += p.length;
    }
    if (!this.#pumping) {
      this.#pumping = true;
      // On the next turn of the event loop (setImmediate: ~5 µs here, where setTimeout(0)
      // waits ~2 ms): everything the caller queues in this turn joins the frame.
      setImmediate(() => this.#pump());
    }
    if (before < LINK_OUTBUF_HIGH) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Copies `p` into the frames being filled (a new frame every FRAME_FILL bytes). */
  #append(p: Uint8Array): void {
    // The common case, a part that fits the frame being filled: a 5-byte cell header byte by
    // byte (TypedArray.set costs more than that), a payload with one set.
    const last = this.#frames[this.#frames.length - 1];
    if (
      last && last.len + p.length <= FRAME_FILL &&
      4 + last.len + p.length + GCM_TAG <= last.buf.length
    ) {
      const at = 4 + last.len;
      if (p.length <= 8) { for (let i = 0; i < p.length; i++) last.buf[at + i] = p[i]!; }
      else last.buf.set(p, at);
      last.len += p.length;
      return;
    }
    let off = 0;
    while (off < p.length) {
      let f = this.#frames[this.#frames.length - 1];
      if (!f || f.len === FRAME_FILL) {
        f = {
          buf: new Uint8Array(Math.min(4 + FRAME_FILL + GCM_TAG, 4 + p.length - off + 1024)),
          len: 0,
        };
        this.#frames.push(f);
      }
      const n = Math.min(p.length - off, FRAME_FILL - f.len);
      const need = 4 + f.len + n + GCM_TAG;
      if (need > f.buf.length) {
        const grown = new Uint8Array(
          Math.min(4 + FRAME_FILL + GCM_TAG, Math.max(need, f.buf.length * 2)),
        );
        grown.set(f.buf.subarray(0, 4 + f.len));
        f.buf = grown;
      }
      f.buf.set(off === 0 && n === p.length ? p : p.subarray(off, off + n), 4 + f.len);
      f.len += n;
      off += n;
    }
  }

  /** Seals a frame in place; returns the bytes to put on the wire. */
  async #seal(f: OutFrame): Promise<Uint8Array> {
    const b = f.buf, len = f.len;
    b[0] = len >>> 24, b[1] = (len >>> 16) & 0xff, b[2] = (len >>> 8) & 0xff, b[3] = len & 0xff;
    if (!this.encrypted) return b.subarray(0, 4 + len);
    // This link's own nonce buffer: the WebCrypto branch awaits before the cipher reads it,
    // and frames of one link are sealed one at a time (#pump), so nothing else writes it.
    const iv = setNonce(this.#sendNonce, this.#sendCtr++);
    const head = b.subarray(0, 4), body = b.subarray(4, 4 + len);
    if (nativeAes) {
      nativeAes.gcmSeal(this.#sendKey, iv, head, body, b.subarray(4 + len, 4 + len + GCM_TAG));
    } else if (len >= WEBCRYPTO_MIN) {
      this.#sendWebKey ??= crypto.subtle.importKey("raw", bs(this.#sendKey), "AES-GCM", false, [
        "encrypt",
      ]);
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: bs(iv), additionalData: bs(head), tagLength: 128 },
        await this.#sendWebKey,
        bs(body),
      );
      b.set(new Uint8Array(sealed), 4);
    } else {
      const c = createCipheriv("aes-256-gcm", this.#sendKey, iv);
      c.setAAD(head);
      b.set(c.update(body), 4);
      c.final();
      b.set(c.getAuthTag(), 4 + len);
    }
    return b.subarray(0, 4 + len + GCM_TAG);
  }

  /** Seals and writes queued frames until none is left; one socket write per frame. */
  async #pump(): Promise<void> {
    try {
      while (this.#frames.length && !this.#error) {
        const f = this.#frames.shift()!;
        // An emptied list is made anew: V8 keeps a shifted array's storage (per idle link).
        if (this.#frames.length === 0) this.#frames = [];
        const wire = await this.#seal(f);
        let off = 0;
        while (off < wire.length) off += await this.#conn.write(wire.subarray(off));
        this.#waiting -= f.len;
        if (this.#waiting < LINK_OUTBUF_HIGH) this.#wake();
      }
    } catch (e) {
      this.#error = e instanceof LinkError
        ? e
        : new LinkError(`link write failed: ${(e as Error).message}`);
      this.#frames = [];
      this.#waiting = 0;
      this.#closeConn();
    } finally {
      this.#pumping = false;
      this.#wake();
      if (this.#closed) this.#closeConn();
    }
  }

  #wake(): void {
    const w = this.#waiters;
    if (!w.length) return;
    this.#waiters = [];
    for (const x of w) this.#error ? x.reject(this.#error) : x.resolve();
  }

  /**
   * The next piece of plaintext: a frame, or a frame's next {@link READ_PIECE} bytes when it
   * is longer; null when the peer closed the link. A channel takes its read-bucket tokens per
   * piece, so a quiet circuit's cells never wait behind a whole 64 KiB frame of another.
   */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const piece = this.tryRead();
      if (piece !== undefined) return piece;
      if (!(await this.fill())) return null;
    }
  }

  /**
   * {@link read} without waiting: the next piece when one is buffered, null once the peer has
   * closed the link, undefined when {@link fill} must read more first.
   */
  tryRead(): Uint8Array | null | undefined {
    let f = this.#rest;
    if (!f) {
      const frame = this.#tryFrame();
      if (frame === undefined || frame === null || frame.length <= READ_PIECE) return frame;
      f = frame;
      this.#restOff = 0;
    }
    const off = this.#restOff, end = Math.min(f.length, off + READ_PIECE);
    this.#restOff = end;
    this.#rest = end < f.length ? f : undefined;
    return f.subarray(off, end);
  }

  /**
   * One socket read towards the next frame; false at the end of the stream (then
   * {@link tryRead} returns null, or the link was closed mid-frame and it throws).
   */
  fill(): Promise<boolean> {
    const r = this.#reader;
    return r.more(this.#want).then((ok) => {
      if (!ok) {
        if (r.buffered > 0) throw new LinkError("link closed mid-frame");
        this.#eof = true;
      }
      return ok;
    });
  }

  /** Decrypts the next frame when it is buffered whole; undefined while it is not. */
  #tryFrame(): Uint8Array | null | undefined {
    const r = this.#reader;
    if (r.buffered < 4) {
      this.#want = 4;
      return this.#eof ? null : undefined;
    }
    const head = r.peek(4);
    const len = ((head[0]! << 24) | (head[1]! << 16) | (head[2]! << 8) | head[3]!) >>> 0;
    if (len > MAX_FRAME) throw new LinkError(`frame too long: ${len}`);
    const total = 4 + len + (this.encrypted ? GCM_TAG : 0);
    if (r.buffered < total) {
      this.#want = total;
      return undefined;
    }
    const body = r.peek(total).subarray(4);
    try {
      if (!this.encrypted) return body.slice();
      // Nonce and associated data (the length prefix) in scratch shared by every link, read
      // at once by each call below.
      const iv = setNonce(RECV_NONCE, this.#recvCtr++);
      const aad = RECV_HEAD;
      aad.set(head);
      if (nativeAes) {
        const out = new Uint8Array(len);
        if (
          !nativeAes.gcmOpen(this.#recvKey, iv, aad, body.subarray(0, len), body.subarray(len), out)
        ) {
          throw new LinkError("frame does not authenticate");
        }
        return out;
      }
      const d = createDecipheriv("aes-256-gcm", this.#recvKey, iv);
      d.setAAD(aad);
      d.setAuthTag(body.subarray(len));
      const out = d.update(body.subarray(0, len));
      try {
        d.final();
      } catch {
        throw new LinkError("frame does not authenticate");
      }
      // A plain Uint8Array over the decipher's output: no copy, and slice() copies again.
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } finally {
      r.take(total);
    }
  }

  /**
   * Closes the link (idempotent). Bytes already written still go out first (a DESTROY
   * queued just before), for at most a grace period.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pumping && !this.#error) {
      this.#closeTimer = setTimeout(() => this.#closeConn(), CLOSE_GRACE_MS);
    } else this.#closeConn();
  }

  #closeConn(): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    if (this.#connClosed) return;
    this.#connClosed = true;
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
   * Our policy for unencrypted frames, asked with the peer's address once the peer proved
   * its relay identity (never for an unauthenticated hello): true only when something else
   * protects the link (an IPsec SA covers the peer) or in insecure lab mode. Without it every
   * plaintext link is refused. Plaintext is accepted only for per-circuit links from relays.
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
  // Plaintext is decided once the peer proved its relay identity (below): asking the
  // policy (an IPsec check may run `swanctl`) for anyone's hello would let unauthenticated
  // hellos start processes (issue 24 item 9).
  if (!encrypted && purpose !== "circuit") {
    throw new LinkError("refusing an unencrypted shared link");
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
  if (!encrypted) {
    if (peer.role !== "relay") throw new LinkError("refusing an unencrypted link from a client");
    const ok = o.allowPlaintext && await o.allowPlaintext(o.remoteAddress ?? "");
    if (!ok) {
      throw new LinkError(
        `refusing an unencrypted link from ${o.remoteAddress ?? "the peer"}: no IPsec covers it`,
      );
    }
  }
  link0.peer = peer;
  await link0.write(concatBytes(OK, hmacSha256(mac, RESPONDER_LABEL, transcript)));
  return link0;
}
