/**
 * TLS through the system's OpenSSL (libssl.so.3) by FFI, over a `Deno.Conn`, in both roles.
 *
 * Why not Deno's own TLS or node:tls (../shared/TOR-INTEROP.md "TLS under Deno"): a Tor link
 * needs the RFC 5705 exporter (AUTHENTICATE method 3, tor-spec §4.4.2 "Link authentication
 * type 3"), which neither offers, and `Deno.connectTls` cannot skip validating a self-signed
 * peer. Here OpenSSL runs on memory BIOs: the bytes it wants to send are taken from its write
 * BIO and written to the socket by us, the bytes read from the socket are fed to its read BIO.
 * Every OpenSSL call is synchronous and short, so one connection's state is never touched by
 * two calls at once.
 *
 * Tor's rules applied here: TLS ≥ 1.2 (tor-spec §2 "Connections"), the peer's certificate not
 * validated by TLS (`SSL_VERIFY_NONE`: the CERTS cell proves who it is), TCP_NODELAY on the
 * socket (a link handshake took ≈ 50 ms without it, ≈ 6 ms with it).
 *
 * Writes: {@link TlsConnection.write} encrypts at once (one TLS record per 16 KiB of the
 * buffer given) and queues the ciphertext; one socket write goes out per queued burst. A
 * caller that writes cells should hand over many at a time (a write per cell is 15× slower).
 * @module
 */

const SSL_ERROR_SSL = 1;
const SSL_ERROR_WANT_READ = 2;
const SSL_ERROR_WANT_WRITE = 3;
const SSL_ERROR_SYSCALL = 5;
const SSL_ERROR_ZERO_RETURN = 6;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const TLS1_2_VERSION = 0x0303;
const SSL_CTRL_MODE = 33;
const SSL_MODE_RELEASE_BUFFERS = 0x10;
const SSL_VERIFY_NONE = 0;
/** The largest TLS record payload: an SSL_read returns at most this. */
const RECORD = 16384;
/**
 * Ciphertext read from the socket at once: small while reads come in small (an idle link, of
 * which PCTCP keeps one per circuit, holds little), doubled up to the largest while reads fill
 * it (bulk: 64 KiB reads gave 118 against 77 MB/s of cells with 17 KiB, bench/tls_link.ts).
 */
const SOCKET_READ_MIN = 4096;
const SOCKET_READ_MAX = 65536;
/** A memory BIO that held more than this is replaced once empty (it never shrinks). */
const BIO_KEEP = 16384;
/** How long close() keeps trying to write what was queued (and close_notify). */
const CLOSE_GRACE_MS = 2000;

const SSL_SYMBOLS = {
  TLS_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  SSL_CTX_set_security_level: { parameters: ["pointer", "i32"], result: "void" },
  SSL_CTX_use_certificate_ASN1: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set0_rbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set0_wbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_export_keying_material: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer", "usize", "i32"],
    result: "i32",
  },
  SSL_get1_peer_certificate: { parameters: ["pointer"], result: "pointer" },
  SSL_get_certificate: { parameters: ["pointer"], result: "pointer" },
} as const;

const CRYPTO_SYMBOLS = {
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl_pending: { parameters: ["pointer"], result: "usize" },
  d2i_AutoPrivateKey: { parameters: ["pointer", "buffer", "i64"], result: "pointer" },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  i2d_X509: { parameters: ["pointer", "buffer"], result: "i32" },
  X509_free: { parameters: ["pointer"], result: "void" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_clear_error: { parameters: [], result: "void" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
} as const;

type SslLib = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
type CryptoLib = Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS>["symbols"];

/** A TLS failure: handshake refused, malformed records, peer gone mid-handshake. */
export class TlsError extends Error {
  /** Error name. */
  override name = "TlsError";
}

let libs: { ssl: SslLib; crypto: CryptoLib } | undefined;
let loadError: string | undefined;

/** Opens libssl and libcrypto once; throws a clear error when they cannot be loaded. */
function load(): { ssl: SslLib; crypto: CryptoLib } {
  if (libs) return libs;
  if (loadError === undefined) {
    try {
      // Ask first: without --allow-ffi, dlopen would prompt on a terminal.
      if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
        throw new Error("FFI permission not granted (run with --allow-ffi or -A)");
      }
      const ssl = Deno.dlopen("libssl.so.3", SSL_SYMBOLS).symbols;
      const crypto = Deno.dlopen("libcrypto.so.3", CRYPTO_SYMBOLS).symbols;
      libs = { ssl, crypto };
      return libs;
    } catch (e) {
      loadError = (e as Error).message;
    }
  }
  throw new Error(
    `TLS needs OpenSSL 3 (libssl.so.3) through Deno FFI, which could not be loaded: ${loadError}`,
  );
}

/** True when libssl.so.3 can be loaded (FFI permitted, OpenSSL 3 installed). */
export function tlsAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** OpenSSL's queued errors as one message (and the queue emptied). */
function opensslErrors(c: CryptoLib): string {
  const parts: string[] = [];
  const buf = new Uint8Array(256);
  for (let e = c.ERR_get_error(); e !== 0n; e = c.ERR_get_error()) {
    c.ERR_error_string_n(BigInt(e), buf, 256n);
    const end = buf.indexOf(0);
    parts.push(new TextDecoder().decode(buf.subarray(0, end < 0 ? 256 : end)));
  }
  return parts.join("; ") || "no OpenSSL error queued";
}

/** The pointer's address, as a `const unsigned char **` cell for d2i/i2d. */
function pointerCell(p: Uint8Array): BigUint64Array {
  return BigUint64Array.of(BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(p))));
}

/** DER of an X509* (not freed here). */
function x509Der(c: CryptoLib, x: Deno.PointerObject): Uint8Array {
  const len = c.i2d_X509(x, null);
  if (len <= 0) throw new TlsError(`i2d_X509 failed: ${opensslErrors(c)}`);
  const out = new Uint8Array(len);
  const cell = pointerCell(out);
  if (c.i2d_X509(x, new Uint8Array(cell.buffer)) !== len) {
    throw new TlsError(`i2d_X509 failed: ${opensslErrors(c)}`);
  }
  return out;
}

/** Our certificate and key, DER. */
export interface TlsCredentials {
  /** X.509 certificate, DER. */
  certDer: Uint8Array;
  /** Its private key, DER: PKCS#1 RSAPrivateKey or PKCS#8 (read with d2i_AutoPrivateKey). */
  keyDer: Uint8Array;
}

/** Contexts by credentials (an OpenSSL 3 SSL_CTX_new costs ~1 ms): a relay reuses its own. */
const contexts = new Map<string, Deno.PointerObject>();
const CONTEXTS_KEPT = 8;

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode(...b.subarray(i, i + 4096));
  }
  return s;
}

function context(cred: Partial<TlsCredentials>): Deno.PointerObject {
  const { ssl, crypto: c } = load();
  const key = cred.certDer && cred.keyDer ? latin1(cred.certDer) + "|" + latin1(cred.keyDer) : "";
  const have = contexts.get(key);
  if (have) return have;
  c.ERR_clear_error();
  const ctx = ssl.SSL_CTX_new(ssl.TLS_method());
  if (ctx === null) throw new TlsError(`SSL_CTX_new failed: ${opensslErrors(c)}`);
  try {
    // TLS ≥ 1.2 (tor-spec §2); level 1 takes any key Tor uses (RSA-1024 identities sign the
    // link certificates).
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, BigInt(TLS1_2_VERSION), null);
    ssl.SSL_CTX_set_security_level(ctx, 1);
    // Free OpenSSL's record buffers while a connection is idle (~34 KiB each otherwise).
    ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, BigInt(SSL_MODE_RELEASE_BUFFERS), null);
    // The peer's certificate is proven by the CERTS cell, not by TLS (tor-spec §4.2).
    ssl.SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, null);
    if (cred.certDer && cred.keyDer) {
      if (ssl.SSL_CTX_use_certificate_ASN1(ctx, cred.certDer.length, cred.certDer) !== 1) {
        throw new TlsError(`certificate not accepted: ${opensslErrors(c)}`);
      }
      const der = cred.keyDer.slice();
      const pkey = c.d2i_AutoPrivateKey(
        null,
        new Uint8Array(pointerCell(der).buffer),
        BigInt(der.length),
      );
      if (pkey === null) throw new TlsError(`private key not readable: ${opensslErrors(c)}`);
      try {
        if (ssl.SSL_CTX_use_PrivateKey(ctx, pkey) !== 1) {
          throw new TlsError(`private key not accepted: ${opensslErrors(c)}`);
        }
      } finally {
        c.EVP_PKEY_free(pkey);
      }
      if (ssl.SSL_CTX_check_private_key(ctx) !== 1) {
        throw new TlsError(`private key does not match the certificate: ${opensslErrors(c)}`);
      }
    } else if (cred.certDer || cred.keyDer) {
      throw new TypeError("TLS credentials need both certDer and keyDer");
    }
  } catch (e) {
    ssl.SSL_CTX_free(ctx);
    throw e;
  }
  if (contexts.size >= CONTEXTS_KEPT) {
    const [k, old] = contexts.entries().next().value!;
    contexts.delete(k);
    ssl.SSL_CTX_free(old); // reference-counted: connections made from it keep it alive
  }
  contexts.set(key, ctx);
  return ctx;
}

/** Options of {@link tlsConnect} and {@link tlsAccept}. */
export interface TlsOptions extends Partial<TlsCredentials> {
  /** Give up a handshake not done by then (default 30 s); the connection is closed. */
  timeoutMs?: number;
}

/**
 * A TLS connection on a `Deno.Conn`. `read` and `write` have a `Deno.Conn`'s shape, so code
 * written for a plain byte stream runs on it.
 */
export class TlsConnection {
  #conn: Deno.Conn;
  #ssl: Deno.PointerObject | null;
  #rbio: Deno.PointerObject;
  #wbio: Deno.PointerObject;
  #in = new Uint8Array(SOCKET_READ_MIN);
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #pumping = false;
  #drainWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #error: Error | undefined;
  #closed = false;
  #connClosed = false;
  #reading = false;
  #eof = false;
  /** The read BIO took a chunk larger than {@link BIO_KEEP} (swap it once it is empty). */
  #rbioBig = false;
  #peerCert: Uint8Array | undefined;
  #ownCert: Uint8Array | undefined;
  #version = "";

  /** @internal Use {@link tlsConnect} or {@link tlsAccept}. */
  constructor(conn: Deno.Conn, ctx: Deno.PointerObject, server: boolean) {
    const { ssl, crypto: c } = load();
    this.#conn = conn;
    const s = ssl.SSL_new(ctx);
    if (s === null) throw new TlsError(`SSL_new failed: ${opensslErrors(c)}`);
    const rbio = c.BIO_new(c.BIO_s_mem()), wbio = c.BIO_new(c.BIO_s_mem());
    if (rbio === null || wbio === null) {
      ssl.SSL_free(s);
      throw new TlsError(`BIO_new failed: ${opensslErrors(c)}`);
    }
    ssl.SSL_set_bio(s, rbio, wbio); // the SSL owns both BIOs now
    if (server) ssl.SSL_set_accept_state(s);
    else ssl.SSL_set_connect_state(s);
    this.#ssl = s;
    this.#rbio = rbio;
    this.#wbio = wbio;
  }

  /** The TLS version agreed ("TLSv1.3"), once the handshake is done. */
  get version(): string {
    return this.#version;
  }

  /** Ciphertext queued and not yet written to the socket. */
  get outbuf(): number {
    return this.#outBytes;
  }

  /** True once closed (by {@link close}, or after a fatal error). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Replaces the (empty) read or write BIO with a fresh one; the old one is freed. */
  #swapBio(read: boolean): Deno.PointerObject {
    const { ssl, crypto: c } = libs!;
    const bio = c.BIO_new(c.BIO_s_mem());
    if (bio === null) throw new TlsError(`BIO_new failed: ${opensslErrors(c)}`);
    if (read) ssl.SSL_set0_rbio(this.#ssl!, bio);
    else ssl.SSL_set0_wbio(this.#ssl!, bio);
    return bio;
  }

  /** Moves what OpenSSL wants to send into the socket queue and starts writing it. */
  #drainOutput(): void {
    const { crypto: c } = libs!;
    const pending = Number(c.BIO_ctrl_pending(this.#wbio));
    if (pending <= 0) return;
    const chunk = new Uint8Array(pending);
    const got = c.BIO_read(this.#wbio, chunk, pending);
    if (got <= 0) return;
    // A memory BIO keeps the largest buffer it ever held: after a burst, a fresh one (an idle
    // connection then holds little; PCTCP keeps one per circuit).
    if (pending > BIO_KEEP && this.#ssl) this.#wbio = this.#swapBio(false);
    this.#out.push(got === pending ? chunk : chunk.subarray(0, got));
    this.#outBytes += got;
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pump();
    }
  }

  async #pump(): Promise<void> {
    try {
      while (this.#out.length && !this.#connClosed) {
        // Everything queued so far in one socket write.
        const parts = this.#out;
        this.#out = [];
        let wire: Uint8Array;
        if (parts.length === 1) wire = parts[0]!;
        else {
          let n = 0;
          for (const p of parts) n += p.length;
          wire = new Uint8Array(n);
          let at = 0;
          for (const p of parts) wire.set(p, at), at += p.length;
        }
        let off = 0;
        while (off < wire.length) off += await this.#conn.write(wire.subarray(off));
        this.#outBytes -= wire.length;
      }
    } catch (e) {
      this.#error ??= new TlsError(`TLS write failed: ${(e as Error).message}`);
      this.#out = [];
      this.#outBytes = 0;
    } finally {
      this.#pumping = false;
      const w = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const x of w) this.#error ? x.reject(this.#error) : x.resolve();
      if (this.#closed) this.#closeConn();
    }
  }

  /** Resolves once the ciphertext queued so far has been written to the socket. */
  flush(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (!this.#pumping) return Promise.resolve();
    return new Promise((resolve, reject) => this.#drainWaiters.push({ resolve, reject }));
  }

  /** @internal Runs the handshake to its end. */
  async handshake(): Promise<void> {
    const { ssl, crypto: c } = libs!;
    for (;;) {
      if (!this.#ssl) throw new TlsError("TLS connection closed during the handshake");
      c.ERR_clear_error();
      const r = ssl.SSL_do_handshake(this.#ssl);
      if (r === 1) break;
      const err = ssl.SSL_get_error(this.#ssl, r);
      if (err !== SSL_ERROR_WANT_READ && err !== SSL_ERROR_WANT_WRITE) {
        const why = opensslErrors(c);
        this.#drainOutput(); // an alert for the peer, if any
        await this.flush().catch(() => {});
        throw new TlsError(`TLS handshake failed (error ${err}): ${why}`);
      }
      this.#drainOutput();
      if (err === SSL_ERROR_WANT_READ) {
        if (!(await this.#feed())) {
          throw new TlsError("peer closed the connection during the TLS handshake");
        }
      }
    }
    this.#drainOutput();
    const s = this.#ssl!;
    const v = ssl.SSL_get_version(s);
    this.#version = v ? Deno.UnsafePointerView.getCString(v) : "";
    const peer = ssl.SSL_get1_peer_certificate(s);
    if (peer) {
      try {
        this.#peerCert = x509Der(c, peer);
      } finally {
        c.X509_free(peer);
      }
    }
    const own = ssl.SSL_get_certificate(s);
    if (own) this.#ownCert = x509Der(c, own);
  }

  /** One socket read into the read BIO; false at end of stream. */
  async #feed(): Promise<boolean> {
    if (this.#eof) return false;
    let got: number | null;
    try {
      got = await this.#conn.read(this.#in);
    } catch (e) {
      if (this.#closed) return false;
      throw new TlsError(`TLS read failed: ${(e as Error).message}`);
    }
    if (got === null || !this.#ssl) {
      this.#eof = true;
      return false;
    }
    const { crypto: c } = libs!;
    if (got > BIO_KEEP) this.#rbioBig = true;
    if (c.BIO_write(this.#rbio, this.#in, got) !== got) {
      throw new TlsError(`BIO_write failed: ${opensslErrors(c)}`);
    }
    const size = this.#in.length;
    if (got === size && size < SOCKET_READ_MAX) this.#in = new Uint8Array(size * 2);
    else if (got < size / 2 && size > SOCKET_READ_MIN) this.#in = new Uint8Array(SOCKET_READ_MIN);
    return true;
  }

  /**
   * Reads decrypted bytes into `p`: resolves the count, or null once the peer has closed
   * (close_notify or end of stream). One read at a time.
   */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#reading) throw new TlsError("TLS read already in progress");
    this.#reading = true;
    try {
      const { ssl, crypto: c } = libs!;
      for (;;) {
        if (!this.#ssl) return null;
        c.ERR_clear_error();
        const n = ssl.SSL_read(this.#ssl, p, Math.min(p.length, 0x7fffffff));
        if (n > 0) {
          // More records already in the read BIO: decrypt them too (fewer, larger reads).
          let total = n;
          while (total < p.length) {
            const more = ssl.SSL_read(
              this.#ssl,
              p.subarray(total),
              Math.min(p.length - total, 0x7fffffff),
            );
            if (more <= 0) break;
            total += more;
          }
          c.ERR_clear_error();
          this.#drainOutput(); // reading may make OpenSSL answer (TLS 1.3 key update)
          return total;
        }
        this.#drainOutput();
        const err = ssl.SSL_get_error(this.#ssl, n);
        if (err === SSL_ERROR_WANT_READ) {
          // Everything read is decrypted: a read BIO grown by a burst is replaced before the
          // (maybe long) wait for more.
          if (this.#rbioBig && Number(c.BIO_ctrl_pending(this.#rbio)) === 0) {
            this.#rbio = this.#swapBio(true);
            this.#rbioBig = false;
          }
          if (!(await this.#feed())) return null;
          continue;
        }
        if (err === SSL_ERROR_ZERO_RETURN) return null;
        if (err === SSL_ERROR_SYSCALL && this.#eof) return null;
        const e = new TlsError(
          `TLS read failed (error ${err === SSL_ERROR_SSL ? "ssl" : err}): ${opensslErrors(c)}`,
        );
        this.#error ??= e;
        throw e;
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Encrypts `p` at once and queues it for the socket; resolves `p.length` once it has been
   * written out (so awaiting each write is back-pressure). `p` may be reused as soon as this
   * returns.
   */
  write(p: Uint8Array): Promise<number> {
    this.queue(p);
    return this.flush().then(() => p.length);
  }

  /**
   * Encrypts `p` at once and queues it for the socket, without waiting (see {@link outbuf}
   * and {@link flush}). Throws when the connection is closed or has failed.
   */
  queue(p: Uint8Array): void {
    if (this.#error) throw this.#error;
    if (this.#closed || !this.#ssl) throw new TlsError("TLS connection closed");
    const { ssl, crypto: c } = libs!;
    let off = 0;
    while (off < p.length) {
      const n = Math.min(p.length - off, RECORD * 4);
      c.ERR_clear_error();
      const w = ssl.SSL_write(
        this.#ssl,
        off === 0 && n === p.length ? p : p.subarray(off, off + n),
        n,
      );
      if (w <= 0) {
        const e = new TlsError(`TLS write failed: ${opensslErrors(c)}`);
        this.#error ??= e;
        throw e;
      }
      off += w;
    }
    this.#drainOutput();
  }

  /**
   * RFC 5705 keying material (`SSL_export_keying_material` with a context, as Tor's
   * AUTHENTICATE method 3 uses it, tor-spec §4.4.2).
   */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array {
    if (!this.#ssl) throw new TlsError("TLS connection closed");
    const { ssl, crypto: c } = libs!;
    const out = new Uint8Array(length);
    const l = new TextEncoder().encode(label);
    c.ERR_clear_error();
    const ok = ssl.SSL_export_keying_material(
      this.#ssl,
      out,
      BigInt(length),
      l,
      BigInt(l.length),
      context.length ? context : new Uint8Array(1),
      BigInt(context.length),
      1,
    );
    if (ok !== 1) throw new TlsError(`keying material export failed: ${opensslErrors(c)}`);
    return out;
  }

  /** The certificate the peer presented (DER), or undefined when it presented none. */
  peerCertificateDer(): Uint8Array | undefined {
    return this.#peerCert;
  }

  /** The certificate we presented (DER), or undefined when we presented none. */
  certificateDer(): Uint8Array | undefined {
    return this.#ownCert;
  }

  /**
   * Closes (idempotent): sends close_notify after what was already written, for at most a
   * grace period, then closes the socket.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const s = this.#ssl;
    if (s) {
      const { ssl, crypto: c } = libs!;
      c.ERR_clear_error();
      if (!this.#error) ssl.SSL_shutdown(s);
      try {
        this.#drainOutput();
      } catch { /* nothing more to send */ }
      c.ERR_clear_error();
      this.#ssl = null;
      ssl.SSL_free(s); // frees both BIOs
    }
    if (this.#pumping) {
      const t = setTimeout(() => this.#closeConn(), CLOSE_GRACE_MS);
      this.flush().catch(() => {}).finally(() => clearTimeout(t));
    } else this.#closeConn();
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

async function start(
  conn: Deno.Conn,
  cred: Partial<TlsCredentials>,
  server: boolean,
  timeoutMs = 30_000,
): Promise<TlsConnection> {
  let tls: TlsConnection;
  try {
    // A Tor link sends small cells both ways: no Nagle (TOR-INTEROP.md, ≈ 50 → 6 ms).
    (conn as Deno.TcpConn).setNoDelay?.(true);
    tls = new TlsConnection(conn, context(cred), server);
  } catch (e) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw e;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TlsError(`TLS handshake timed out after ${timeoutMs} ms`));
      tls.close();
    }, timeoutMs);
  });
  try {
    await Promise.race([tls.handshake(), late]);
    return tls;
  } catch (e) {
    tls.close();
    throw e instanceof TlsError ? e : new TlsError(`TLS handshake failed: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a TLS client handshake on `conn` (any certificate from the server is accepted). */
export function tlsConnect(
  conn: Deno.Conn,
  options: TlsOptions = {},
): Promise<TlsConnection> {
  return start(conn, options, false, options.timeoutMs);
}

/** Runs a TLS server handshake on `conn` with our certificate and key. */
export function tlsAccept(
  conn: Deno.Conn,
  options: TlsOptions & TlsCredentials,
): Promise<TlsConnection> {
  return start(conn, options, true, options.timeoutMs);
}
