/**
 * End-to-end benchmark: circuit build time and bulk MB/s of one stream through a 3-hop
 * circuit on loopback, for the tor and pctcp transports in the same run (in one process,
 * as ratios). `deno run -A bench/transfer.ts [MiB]`.
 * @module
 */

import { startNet } from "../tests/_net.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import { percentile } from "../lib/stats/percentile.ts";
import type { Transport } from "../lib/directory/mod.ts";

const mib = Number(Deno.args[0] ?? 20);
const results: Record<
  string,
  { buildMs: number; mbps: number; rssMiB: number; kibPerCircuit: number; fdsPerCircuit: number }
> = {};
const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
for (const t of ["tor", "pctcp"] as Transport[]) {
  const net = await startNet(3, [t, t, t], t, ["r1", "r2", "r3"]);
  const s = await serve();
  try {
    const builds: number[] = [];
    for (let i = 0; i < 20; i++) builds.push((await net.client.buildCircuit(`b${i}`)).buildMs);
    const rates: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await timedFetch(`${s.url}/bytes/${mib}MiB`, {
        socksHost: "127.0.0.1",
        socksPort: net.client.socksPort,
        socksUser: `x${i}`,
      });
      if (r.outcome !== "ok") throw new Error(`${t}: ${r.outcome}: ${r.error}`);
      rates.push(
        (r.bytes / 1e6) / (((r.phases.last_byte ?? 0) - (r.phases.first_byte ?? 0)) / 1000),
      );
    }
    // Memory and file descriptors per circuit: 300 more circuits through the same relays
    // (client and relays in this process, so both ends of every link count).
    const fd0 = fds(), rss0 = Deno.memoryUsage().rss;
    for (let i = 0; i < 300; i++) await net.client.buildCircuit(`m${i}`);
    results[t] = {
      buildMs: percentile(builds, 50),
      mbps: percentile(rates, 50),
      rssMiB: Deno.memoryUsage().rss / 2 ** 20,
      kibPerCircuit: (Deno.memoryUsage().rss - rss0) / 1024 / 300,
      fdsPerCircuit: (fds() - fd0) / 300,
    };
  } finally {
    await s.stop();
    await net.stop();
  }
}
const tor = results.tor!, pctcp = results.pctcp!;
console.log(JSON.stringify(results, null, 2));
console.log(
  `circuit build (median of 20): tor ${tor.buildMs.toFixed(2)} ms, pctcp ${
    pctcp.buildMs.toFixed(2)
  } ms (ratio ${(pctcp.buildMs / tor.buildMs).toFixed(2)})`,
);
console.log(
  `bulk ${mib} MiB, one stream, 3 hops in one process (median of 3): tor ${
    tor.mbps.toFixed(1)
  } MB/s, pctcp ${pctcp.mbps.toFixed(1)} MB/s (ratio ${(pctcp.mbps / tor.mbps).toFixed(2)})`,
);
console.log(
  `per circuit (client and relays in this process): tor ${tor.kibPerCircuit.toFixed(1)} KiB, ${
    tor.fdsPerCircuit.toFixed(2)
  } fds; pctcp ${pctcp.kibPerCircuit.toFixed(1)} KiB, ${pctcp.fdsPerCircuit.toFixed(2)} fds`,
);
