/**
 * The anchor: our relays against C tor (Debian's tor) on the same machine in one run.
 * Bulk MB/s of one stream through a 3-hop circuit (median of 3 fetches of 20 MiB) and
 * circuit build time, each network as separate processes on loopback, no rate limits.
 * `deno run -A bench/vs_tor.ts [MiB]` (needs tor installed).
 * @module
 */

import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { startTorTestnet } from "../lib/tor/testnet.ts";
import { PinnedCircuits } from "../lib/tor/pinned.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { serve } from "../lib/serve/server.ts";

const mib = Number(Deno.args[0] ?? 20);
const dir = await Deno.makeTempDir();
const s = await serve();
const out: Record<string, { mbps: number; buildMs: number }> = {};

async function bulk(socks: string, user: string): Promise<number[]> {
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await timedFetch(`${s.url}/bytes/${mib}MiB`, {
      socksHost: "127.0.0.1",
      socksPort: Number(socks.split(":")[1]),
      socksUser: user,
      timeoutMs: 120_000,
    });
    if (r.outcome !== "ok") throw new Error(`${r.outcome}: ${r.error}`);
    rates.push(r.bytes / 1e6 / ((r.phases.last_byte! - r.phases.first_byte!) / 1000));
  }
  return rates;
}

try {
  for (const transport of ["tor", "pctcp"] as const) {
    const net = await networkUp({
      dir: `${dir}/ours-${transport}`,
      relays: 3,
      transport,
      path: ["relay1", "relay2", "relay3"],
    });
    try {
      const rates = await bulk(net.socks, "bench");
      for (let i = 0; i < 10; i++) {
        await timedFetch(`${s.url}/bytes/1`, {
          socksHost: "127.0.0.1",
          socksPort: Number(net.socks.split(":")[1]),
          socksUser: `b${i}`,
        });
      }
      const builds = (await Deno.readTextFile(net.streams)).trim().split("\n").map((l) =>
        JSON.parse(l)
      )
        .filter((e) => String(e.target).length && e.buildMs > 0).map((e) => e.buildMs);
      out[`ours-${transport}`] = { mbps: percentile(rates, 50), buildMs: percentile(builds, 50) };
    } finally {
      await networkDown(`${dir}/ours-${transport}`);
    }
  }
  const tor = await startTorTestnet({ dir: `${dir}/ctor`, readyUrl: `${s.url}/bytes/1KiB` });
  try {
    const builds: number[] = [];
    let rates: number[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await PinnedCircuits.open(
        tor.control,
        tor.relays.slice(0, 3).map((r) => r.fingerprint),
        { cookieFile: tor.cookieFile },
      );
      try {
        const r = await timedFetch(`${s.url}/bytes/1`, {
          socksHost: "127.0.0.1",
          socksPort: Number(tor.socks.split(":")[1]),
          socksUser: `c${i}`,
        });
        const info = p.info(r.sourcePort!);
        if (info?.build_ms) builds.push(info.build_ms);
        if (i === 0) rates = await bulk(tor.socks, "bench");
      } finally {
        await p.close();
      }
    }
    out[`c-tor ${tor.version}`] = { mbps: percentile(rates, 50), buildMs: percentile(builds, 50) };
  } finally {
    await tor.stop();
  }
} finally {
  await s.stop();
  await Deno.remove(dir, { recursive: true });
}
console.log(JSON.stringify(out, null, 2));
const c = Object.entries(out).find(([k]) => k.startsWith("c-tor"))![1];
for (const [k, v] of Object.entries(out)) {
  console.log(
    `${k.padEnd(28)} bulk ${v.mbps.toFixed(1).padStart(6)} MB/s (${
      (v.mbps / c.mbps).toFixed(2)
    } × C tor)  build ${v.buildMs.toFixed(2).padStart(7)} ms (${
      (v.buildMs / c.buildMs).toFixed(2)
    } × C tor)`,
  );
}
