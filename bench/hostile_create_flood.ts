/**
 * A CREATE2 flood on one anonymous link to a relay of a loopback network (issue 24 item 5;
 * every role in this process): the circuits the relay keeps, its RSS before and after, and an
 * honest 256 KiB fetch through it before, during and after the flood.
 *
 * `deno run -A bench/hostile_create_flood.ts [N]` (N CREATE2 cells, default 20000).
 * @module
 */

import { startNet } from "../tests/_net.ts";
import { RawLink, rssMiB, sendCreate2Cells } from "../tests/_hostile.ts";
import { serve } from "../lib/serve/server.ts";
import { timedFetch } from "../lib/measure/fetch.ts";

const n = Number(Deno.args[0] ?? 20000);
const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
const s = await serve();
try {
  const fetchMs = async () => {
    const t0 = performance.now();
    const r = await timedFetch(`${s.url}/bytes/256KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: "honest",
      timeoutMs: 60_000,
    });
    if (r.outcome !== "ok") throw new Error(`honest fetch failed: ${r.error}`);
    return performance.now() - t0;
  };
  await fetchMs();
  const base = [await fetchMs(), await fetchMs(), await fetchMs()].sort((a, b) => a - b)[1]!;
  const e1 = net.directory.relays[0]!;
  const raw = await RawLink.open(e1);
  const before = rssMiB();
  const t0 = performance.now();
  const flood = sendCreate2Cells(raw, e1, n);
  const during = await fetchMs();
  await flood;
  while (raw.received.length < n && performance.now() - t0 < 120_000) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const answered = performance.now() - t0;
  const st = net.relays[0]!.stats();
  const after = await fetchMs();
  console.log(
    `${n} CREATE2 on one link: answered in ${answered.toFixed(0)} ms; ${st.circuits} circuits ` +
      `kept, RSS ${before} → ${rssMiB()} MiB; honest fetch ${base.toFixed(0)} ms before, ` +
      `${during.toFixed(0)} ms during, ${after.toFixed(0)} ms after`,
  );
  raw.close();
} finally {
  await s.stop();
  await net.stop();
}
