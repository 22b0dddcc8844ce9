/**
 * A TCP connection whose first byte has been read to tell link protocols apart (a TLS
 * ClientHello opens Tor's link, "P" PCTCP's LINK2 per-circuit hello) and is handed back to
 * the first read: the handshake code then reads the stream from its start. It offers what the
 * link handshakes use of a `Deno.Conn` (read, write, close, addresses, setNoDelay).
 * @module
 */

/** A connection with its first byte peeked. */
export class ReplayConn {
  #conn: Deno.Conn;
  #first: Uint8Array | undefined;

  /** Wraps `conn`; call {@link peekByte} before handing it on. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The first byte (kept for the next read), or null when the peer closed or stayed silent past `timeoutMs`. */
  async peekByte(timeoutMs: number): Promise<number | null> {
    if (this.#first) return this.#first[0]!;
    const buf = new Uint8Array(1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      const n = await Promise.race([this.#conn.read(buf), late]);
      if (!n) return null;
      this.#first = buf;
      return buf[0]!;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads, the peeked byte first. */
  read(p: Uint8Array): Promise<number | null> {
    const f = this.#first;
    if (f && p.length > 0) {
      this.#first = undefined;
      p[0] = f[0]!;
      return Promise.resolve(1);
    }
    return this.#conn.read(p);
  }

  /** Writes to the connection. */
  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  /** Closes the connection. */
  close(): void {
    this.#conn.close();
  }

  /** The local address. */
  get localAddr(): Deno.Addr {
    return this.#conn.localAddr;
  }

  /** The peer's address. */
  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  /** TCP_NODELAY on the connection. */
  setNoDelay(noDelay = true): void {
    (this.#conn as Deno.TcpConn).setNoDelay?.(noDelay);
  }
}
