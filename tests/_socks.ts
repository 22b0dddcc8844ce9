/**
 * A minimal SOCKS5 CONNECT for tests (no auth, or username/password for isolation).
 * @module
 */

/** Connects through the SOCKS5 proxy; throws with the reply code on failure. */
export async function socksConnect(
  socksPort: number,
  host: string,
  port: number,
  user?: string,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: socksPort });
  const read = async (n: number) => {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const k = await conn.read(out.subarray(off));
      if (k === null) throw new Error("proxy closed");
      off += k;
    }
    return out;
  };
  try {
    await conn.write(user ? Uint8Array.of(5, 1, 2) : Uint8Array.of(5, 1, 0));
    const m = await read(2);
    if (user) {
      if (m[1] !== 2) throw new Error("proxy refused user/pass");
      const u = new TextEncoder().encode(user);
      await conn.write(Uint8Array.of(1, u.length, ...u, 1, 0x78));
      await read(2);
    }
    const h = new TextEncoder().encode(host);
    await conn.write(Uint8Array.of(5, 1, 0, 3, h.length, ...h, port >> 8, port & 0xff));
    const r = await read(10);
    if (r[1] !== 0) throw new Error(`socks reply ${r[1]}`);
    return conn;
  } catch (e) {
    conn.close();
    throw e;
  }
}
