/**
 * What Tor's link costs here (lib/transport/tor_link.ts over libssl by FFI, both ends in this
 * process on loopback): the handshake as a relay (TLS + VERSIONS, CERTS, AUTH_CHALLENGE,
 * AUTHENTICATE, NETINFO) and as a client, and the MB/s of 514-byte cells through one TorLink
 * pair, one way, written in batches of 64 cells as a channel writes them.
 *
 * `deno run -A bench/tls_link.ts [--n 50] [--mb 64]`
 * @module
 */
import { cpuUsage } from "node:process";
import { CELL_LEN, CellCommand, encodeCell } from "../lib/cell/cell.ts";
import { generateTorRelayKeys } from "../lib/keys/mod.ts";
import { percentile, PERCENTILE_METHOD } from "../lib/stats/percentile.ts";
import { type TorLink, torLinkAccept, torLinkConnect } from "../lib/transport/tor_link.ts";

let n = 50, mb = 64;
for (let i = 0; i < Deno.args.length; i++) {
  if (Deno.args[i] === "--n") n = Number(Deno.args[++i]);
  else if (Deno.args[i] === "--mb") mb = Number(Deno.args[++i]);
  else {
    console.error(`tls_link: unknown argument: ${Deno.args[i]}`);
    Deno.exit(2);
  }
}

const responder = generateTorRelayKeys(), initiator = generateTorRelayKeys();
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;

async function pair(asRelay: boolean): Promise<[TorLink, TorLink]> {
  const accepted = listener.accept().then((c) => torLinkAccept(c, { keys: responder }));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return await Promise.all([
    torLinkConnect(conn, asRelay ? { keys: initiator } : {}),
    accepted,
  ]);
}

for (const asRelay of [true, false]) {
  const ms: number[] = [];
  for (let i = 0; i < n + 3; i++) {
    const t0 = performance.now();
    const [a, b] = await pair(asRelay);
    const t = performance.now() - t0;
    if (i >= 3) ms.push(t); // the first few warm up the JIT and OpenSSL's contexts
    a.close();
    b.close();
  }
  console.log(
    `handshake as ${asRelay ? "relay " : "client"}: median ${percentile(ms, 50).toFixed(2)} ms, ` +
      `p90 ${percentile(ms, 90).toFixed(2)} ms, min ${Math.min(...ms).toFixed(2)} ms (n=${n}; ` +
      `${PERCENTILE_METHOD}; TCP connect + TLS + link handshake, both ends in one process)`,
  );
}

// Throughput: cells one way through one pair.
const [a, b] = await pair(true);
const cells = Math.ceil((mb * 1e6) / CELL_LEN / 64) * 64;
const batch: Uint8Array[] = [];
for (let i = 0; i < 64; i++) {
  const payload = crypto.getRandomValues(new Uint8Array(509));
  const cell = encodeCell({ circId: 0x80000001, command: CellCommand.RELAY, payload });
  batch.push(cell.subarray(0, 5), cell.subarray(5));
}
const usage0 = cpuUsage();
const t0 = performance.now();
const reader = (async () => {
  let got = 0;
  while (got < cells * CELL_LEN) {
    const p = b.tryRead();
    if (p === undefined) {
      if (!(await b.fill())) throw new Error("end of stream");
      continue;
    }
    if (p === null) throw new Error("closed");
    got += p.length;
  }
})();
for (let sent = 0; sent < cells; sent += 64) await a.writev(batch);
await reader;
const secs = (performance.now() - t0) / 1000;
const used = cpuUsage(usage0);
const cpu = (used.user + used.system) / 1e6;
const bytes = cells * CELL_LEN;
console.log(
  `cells through one TorLink pair: ${(bytes / 1e6 / secs).toFixed(1)} MB/s ` +
    `(${(bytes / 1e6).toFixed(0)} MB in ${secs.toFixed(2)} s; ` +
    `${(cpu / (bytes / 1e6)).toFixed(4)} CPU s per MB, both ends)`,
);
a.close();
b.close();
listener.close();
