/**
 * What one idle circuit costs in memory, by kind, with every role in this process.
 * Builds N circuits (a 1-byte fetch each under its own SOCKS user) through 3 relays and reports
 * the growth, divided by N, of V8's heap (after a full GC), of memory outside it (ArrayBuffers,
 * OpenSSL contexts, Deno resources) and of resident memory, plus the open descriptors.
 *
 * `deno run -A --v8-flags=--expose-gc bench/circuit_memory.ts [--circuits 500] [--transport pctcp]`
 * @module
 */

import { Session } from "node:inspector";
import { startNet } from "../tests/_net.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import type { Transport } from "../lib/directory/mod.ts";

let n = 500, transport: Transport = "pctcp";
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  if (a === "--kinds") continue;
  else if (a === "--circuits") n = Number(Deno.args[++i]);
  else if (a === "--transport") transport = Deno.args[++i] as Transport;
  else {
    console.error(`circuit_memory: unknown argument: ${a}`);
    Deno.exit(2);
  }
}
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("circuit_memory: run with --v8-flags=--expose-gc");
  Deno.exit(2);
}

function snapshot() {
  const rssBeforeGc = Deno.memoryUsage().rss;
  for (let i = 0; i < 3; i++) gc!();
  const m = Deno.memoryUsage();
  const fds = [...Deno.readDirSync("/proc/self/fd")].length;
  return {
    heap: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    rss: m.rss,
    rssBeforeGc,
    fds,
  };
}

/** Self size per (node type, constructor name) in a V8 heap snapshot. */
async function heapByKind(): Promise<Map<string, { size: number; count: number }>> {
  const s = new Session();
  s.connect();
  const chunks: string[] = [];
  s.on("HeapProfiler.addHeapSnapshotChunk", (m) => chunks.push(m.params.chunk));
  await new Promise<void>((res, rej) =>
    s.post("HeapProfiler.takeHeapSnapshot", {}, (e) => e ? rej(e) : res())
  );
  s.disconnect();
  const snap = JSON.parse(chunks.join(""));
  if (Deno.env.get("SNAP_OUT")) Deno.writeTextFileSync(Deno.env.get("SNAP_OUT")!, chunks.join(""));
  const f: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ["type", "name", "self_size"].map((k) => f.indexOf(k));
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const k = `${types[snap.nodes[i + ti!]]}:${snap.strings[snap.nodes[i + ni!]].slice(0, 60)}`;
    const e = out.get(k) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + si!];
    e.count++;
    out.set(k, e);
  }
  return out;
}
const heapKinds = Deno.args.includes("--kinds");

const srv = await serve();
// Caps above the circuits built: every circuit keeps its own connections (at the default cap
// of 512 per peer the later ones would share the link).
const caps = { perPeer: 2 * n + 64, total: 4 * n + 64 };
const net = await startNet(3, [transport, transport, transport], transport, ["r1", "r2", "r3"], {
  pctcpCaps: caps,
  fdBudget: 8 * n + 1024,
});
const settle = () => new Promise((r) => setTimeout(r, 1500));
try {
  const fetch1 = (user: string) =>
    timedFetch(`${srv.url}/bytes/1`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: user,
      timeoutMs: 30_000,
    });
  for (let i = 0; i < 20; i++) await fetch1(`warm${i}`);
  await settle();
  // Kept in a file, not in the heap being measured.
  const kindsFile = heapKinds ? await Deno.makeTempFile() : undefined;
  if (kindsFile) {
    await Deno.writeTextFile(kindsFile, JSON.stringify([...await heapByKind()]));
    gc!();
  }
  const a = snapshot();
  let next = 0, failed = 0;
  const worker = async () => {
    while (next < n) {
      const r = await fetch1(`idle${next++}`);
      if (r.outcome !== "ok") failed++;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await settle();
  const b = snapshot();
  if (kindsFile) {
    const kb = await heapByKind();
    const ka = new Map<string, { size: number; count: number }>(
      JSON.parse(await Deno.readTextFile(kindsFile)),
    );
    await Deno.remove(kindsFile);
    const rows = [...kb].map(([k, v]) => {
      const o = ka.get(k) ?? { size: 0, count: 0 };
      return [k, (v.size - o.size) / n, (v.count - o.count) / n] as const;
    }).sort((x, y) => y[1] - x[1]).slice(0, 40);
    for (const [k, sz, c] of rows) {
      console.log(`${sz.toFixed(0).padStart(7)} B ${c.toFixed(2).padStart(6)}× ${k}`);
    }
  }
  const per = (k: "heap" | "heapTotal" | "external" | "rss" | "rssBeforeGc") =>
    ((b[k] - a[k]) / 1024 / (n - failed)).toFixed(1);
  console.log(
    `${transport}: ${n - failed} idle circuits (${failed} failed); per circuit, all roles: ` +
      `V8 heap ${per("heap")} KiB (heap reserved ${per("heapTotal")}), external ${
        per("external")
      } KiB, RSS ${per("rss")} KiB (before a full GC ${per("rssBeforeGc")}), ` +
      `fds ${((b.fds - a.fds) / (n - failed)).toFixed(2)}`,
  );
} finally {
  await net.stop();
  await srv.stop();
}
