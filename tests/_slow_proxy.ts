/**
 * A SOCKS5 proxy that is its own web server, for tests of stopped fetches: it accepts any
 * CONNECT, then answers any request with a big body that it drips slowly, so a fetch is still
 * running when the test stops it.
 * @module
 */

/** The proxy; `stop` closes the listener and every connection. */
export function slowProxy(
  opts: { size?: number; chunk?: number; everyMs?: number } = {},
): { port: number; connections(): number; stop(): Promise<void> } {
  const size = opts.size ?? 10 * 1024 * 1024, chunk = opts.chunk ?? 1024;
  const everyMs = opts.everyMs ?? 50;
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const serve = async (c: Deno.Conn) => {
    const buf = new Uint8Array(1024);
    const read = async () => {
      const n = await c.read(buf);
      if (n === null) throw new Error("closed");
      return buf.subarray(0, n);
    };
    try {
      const greet = await read();
      const withAuth = greet.includes(2);
      await c.write(Uint8Array.of(5, withAuth ? 2 : 0));
      if (withAuth) {
        await read();
        await c.write(Uint8Array.of(1, 0));
      }
      await read(); // CONNECT
      await c.write(Uint8Array.of(5, 0, 0, 1, 127, 0, 0, 1, 0, 80));
      await read(); // the request
      await c.write(
        new TextEncoder().encode(
          `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`,
        ),
      );
      const body = new Uint8Array(chunk);
      for (let sent = 0; sent < size; sent += chunk) {
        await c.write(body);
        await new Promise((r) => setTimeout(r, everyMs));
      }
    } catch {
      /* the client went away */
    } finally {
      conns.delete(c);
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  const accepting = (async () => {
    try {
      for await (const c of l) {
        conns.add(c);
        accepted++;
        const t = serve(c);
        tasks.add(t);
        t.finally(() => tasks.delete(t));
      }
    } catch { /* closed */ }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    connections: () => accepted,
    async stop() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.all(tasks);
    },
  };
}
