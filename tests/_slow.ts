/**
 * For schedule tests: a tiny SOCKS5 proxy (no auth or username/password, CONNECT only) that
 * pipes to the target and remembers the user names it saw, and an HTTP server that answers
 * `/slow/MS` after MS milliseconds.
 * @module
 */

/** A running SOCKS5 proxy. */
export interface TinySocks {
  port: number;
  users: string[];
  stop(): Promise<void>;
}

async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const k = await conn.read(out.subarray(off));
    if (k === null) throw new Error("closed");
    off += k;
  }
  return out;
}

/** Starts the proxy on 127.0.0.1, port 0. */
export function tinySocks(): TinySocks {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const users: string[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const serveOne = async (c: Deno.Conn) => {
    conns.add(c);
    let up: Deno.Conn | undefined;
    try {
      const g = await readN(c, 2);
      const methods = await readN(c, g[1]!);
      if (methods.includes(2)) {
        await c.write(Uint8Array.of(5, 2));
        const h = await readN(c, 2);
        const u = await readN(c, h[1]!);
        const pl = await readN(c, 1);
        await readN(c, pl[0]!);
        users.push(new TextDecoder().decode(u));
        await c.write(Uint8Array.of(1, 0));
      } else await c.write(Uint8Array.of(5, 0));
      const req = await readN(c, 4);
      let host = "";
      if (req[3] === 3) {
        const len = await readN(c, 1);
        host = new TextDecoder().decode(await readN(c, len[0]!));
      } else host = [...await readN(c, 4)].join(".");
      const pb = await readN(c, 2);
      up = await Deno.connect({ hostname: host, port: (pb[0]! << 8) | pb[1]! });
      conns.add(up);
      await c.write(Uint8Array.of(5, 0, 0, 1, 127, 0, 0, 1, 0, 0));
      const pipe = async (a: Deno.Conn, b: Deno.Conn) => {
        const buf = new Uint8Array(16384);
        try {
          for (;;) {
            const n = await a.read(buf);
            if (n === null) break;
            await b.write(buf.subarray(0, n));
          }
        } catch { /* closed */ }
        await b.closeWrite().catch(() => {});
      };
      await Promise.all([pipe(c, up), pipe(up, c)]);
    } catch { /* client went away */ }
    for (const x of [c, up]) {
      if (!x) continue;
      conns.delete(x);
      try {
        x.close();
      } catch { /* closed */ }
    }
  };
  const accept = (async () => {
    try {
      for await (const c of l) {
        const t = serveOne(c);
        tasks.add(t);
        t.finally(() => tasks.delete(t));
      }
    } catch { /* closed */ }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    users,
    async stop() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accept;
      await Promise.all([...tasks]);
    },
  };
}

/** An HTTP server whose `/slow/MS` answers 1 KiB after MS ms; `/slow/MS?every=N&ms=M` takes
 * M ms instead on every Nth request to that URL. */
export function slowServer(): { url: string; stop(): Promise<void> } {
  const waiting = new Map<ReturnType<typeof setTimeout>, () => void>();
  const seen = new Map<string, number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    let ms = Number(/\/slow\/(\d+)/.exec(u.pathname)?.[1] ?? 0);
    const k = (seen.get(u.href) ?? 0) + 1;
    seen.set(u.href, k);
    const every = Number(u.searchParams.get("every") ?? 0);
    if (every && k % every === 0) ms = Number(u.searchParams.get("ms") ?? ms);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(t);
        resolve();
      }, ms);
      waiting.set(t, resolve);
    });
    return new Response(new Uint8Array(1024).fill(97));
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async stop() {
      for (const [t, resolve] of waiting) {
        clearTimeout(t);
        resolve();
      }
      await server.shutdown();
    },
  };
}
