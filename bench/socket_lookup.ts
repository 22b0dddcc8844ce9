/**
 * How long finding a connection's file descriptor takes (what KIST and the queue reports do once
 * per relay-to-relay connection) as the process holds more sockets: N loopback TCP pairs, then
 * `findSocketFd` for one of the newest, ten times.
 *
 * `deno run -A bench/socket_lookup.ts`
 * @module
 */
import { findSocketFd } from "../lib/channel/socket_info.ts";

const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (l.addr as Deno.NetAddr).port;
const conns: Deno.Conn[] = [];
try {
  for (const pairs of [100, 500, 1000]) {
    while (conns.length < 2 * pairs) {
      const a = l.accept();
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c, await a);
    }
    const c = conns[conns.length - 2]!;
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) {
      if (findSocketFd(c.localAddr as Deno.NetAddr, c.remoteAddr as Deno.NetAddr) === undefined) {
        throw new Error("socket not found");
      }
    }
    console.log(
      `${2 * pairs} sockets: findSocketFd ${((performance.now() - t0) / 10).toFixed(2)} ms`,
    );
  }
} finally {
  for (const c of conns) c.close();
  l.close();
}
