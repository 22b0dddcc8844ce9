/**
 * What Tor's link costs here (lib/transport/tor_link.ts over libssl by FFI, both ends in this
 * process on loopback): the handshake as a relay (TLS + VERSIONS, CERTS, AUTH_CHALLENGE,
 * AUTHENTICATE, NETINFO) and as a client, and the MB/s of 514-byte cells through one TorLink
 * pair, one way, written in batches of 64 cells as a channel writes them; and the RSS an idle
 * TorLink holds after a burst of 200 cells (PCTCP keeps a link per circuit).
 *
 * `deno run -A --v8-flags=--expose-gc bench/tls_link.ts [--n 50] [--mb 64] [--idle 200]`
 * @module
 */
import { cpuUsage } from "node:process";
import { CELL_LEN, CellCommand, encodeCell } from "../lib/cell/cell.ts";
import { generateTorRelayKeys } from "../lib/keys/mod.ts";
import { percentile, PERCENTILE_METHOD } from "../lib/stats/percentile.ts";
import { type TorLink, torLinkAccept, torLinkConnect } from "../lib/transport/tor_link.ts";

let n = 50, mb = 64, idle = 200;
for (let i = 0; i < Deno.args.length; i++) {
  if (Deno.args[i] === "--n") n = Number(Deno.args[++i]);
  else if (Deno.args[i] === "--mb") mb = Number(Deno.args[++i]);
  else if (Deno.args[i] === "--idle") idle = Number(Deno.args[++i]);
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

const burstCell = encodeCell({
  circId: 0x80000001,
  command: CellCommand.RELAY,
  payload: new Uint8Array(509),
});
// First, before anything else has grown the heap.
// Idle memory: pairs that carried a burst, then wait in a pending read each (as a channel's).
async function idlePair(keep: TorLink[]): Promise<void> {
  const [x, y] = await pair(true);
  keep.push(x, y);
  await x.writev(Array.from({ length: 200 }, () => burstCell));
  for (let got = 0; got < 200 * CELL_LEN;) {
    const p = y.tryRead();
    if (p === undefined) await y.fill();
    else if (p === null) break;
    else got += p.length;
  }
  y.fill().catch(() => {});
  x.fill().catch(() => {});
}
if (idle > 0) {
  const gc = (globalThis as { gc?: () => void }).gc;
  const keep: TorLink[] = [];
  for (let i = 0; i < 10; i++) await idlePair(keep); // warm-up: pools, contexts, JIT
  gc?.();
  await new Promise((r) => setTimeout(r, 200));
  const rss0 = Deno.memoryUsage().rss;
  for (let i = 0; i < idle; i++) await idlePair(keep);
  gc?.();
  await new Promise((r) => setTimeout(r, 500));
  const per = (Deno.memoryUsage().rss - rss0) / (2 * idle) / 1024;
  console.log(
    `RSS per idle TorLink after a 200-cell burst: ${per.toFixed(1)} KiB ` +
      `(${idle} pairs${gc ? "" : "; without --v8-flags=--expose-gc, garbage included"})`,
  );
  for (const l of keep) l.close();
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
