/**
 * What one idle circuit costs in memory, with every role (client, 3 relays) in this process.
 * Builds N circuits (a 1-byte fetch each under its own SOCKS user) and reports the growth,
 * divided by N, of V8's heap after a full GC (and what V8 reserved for it), of memory outside
 * the heap that V8 knows of (ArrayBuffers), of resident memory before and after the GC, and of
 * open descriptors. Under pctcp the caps are raised above N, so every circuit keeps its own
 * connections.
 *
 * - `--kinds`: the heap growth per circuit by object kind (from two heap snapshots).
 * - `--retainers`: as `--kinds`, with arrays, maps, sets, byte buffers, promises and closures
 *   told apart by the chain of first retainers up to the object that owns them (e.g.
 *   `array: ← object:Map.table ← object:Channel.#headers`): where to look when trimming.
 * - `--bare`: the floor under PCTCP's figure: N pairs of bare loopback TCP connections made by
 *   Deno, each end with one pending read into a 256-byte buffer (what any idle link holds), and
 *   nothing else — PCTCP keeps three such pairs per circuit.
 *
 * `deno run -A --v8-flags=--expose-gc bench/circuit_memory.ts [--circuits 500]
 *   [--transport pctcp|tor] [--kinds] [--retainers] [--bare]`
 * @module
 */

import { Session } from "node:inspector";
import { startNet } from "../tests/_net.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import type { Transport } from "../lib/directory/mod.ts";

function usage(msg: string): never {
  console.error(`circuit_memory: ${msg}`);
  console.error(
    "usage: deno run -A --v8-flags=--expose-gc bench/circuit_memory.ts [--circuits N] " +
      "[--transport pctcp|tor] [--kinds] [--retainers] [--bare]",
  );
  Deno.exit(2);
}

let n = 500, transport: Transport = "pctcp", kinds = false, bare = false, retainers = false;
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  if (a === "--kinds") kinds = true;
  else if (a === "--retainers") kinds = retainers = true;
  else if (a === "--bare") bare = true;
  else if (a === "--circuits") n = Number(Deno.args[++i]);
  else if (a === "--transport") {
    const t = Deno.args[++i];
    if (t !== "tor" && t !== "pctcp") usage(`--transport is tor or pctcp: ${t}`);
    transport = t;
  } else usage(`unknown argument: ${a}`);
}
if (!(n > 0)) usage("--circuits must be > 0");
const gc = (globalThis as { gc?: () => void }).gc ?? usage("run with --v8-flags=--expose-gc");

interface Snapshot {
  heap: number;
  heapTotal: number;
  external: number;
  rss: number;
  rssBeforeGc: number;
  fds: number;
}

function snapshot(): Snapshot {
  const rssBeforeGc = Deno.memoryUsage().rss;
  for (let i = 0; i < 3; i++) gc();
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

function report(what: string, count: number, a: Snapshot, b: Snapshot): void {
  const per = (k: keyof Snapshot) => ((b[k] - a[k]) / 1024 / count).toFixed(1);
  console.log(
    `${what}: V8 heap ${per("heap")} KiB (reserved ${per("heapTotal")}), external ${
      per("external")
    } KiB, RSS ${per("rss")} KiB (before a full GC ${per("rssBeforeGc")}), fds ${
      ((b.fds - a.fds) / count).toFixed(2)
    }`,
  );
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
  const f: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const [ti, ni, si, ei] = ["type", "name", "self_size", "edge_count"].map((k) => f.indexOf(k));
  const name = (i: number) =>
    `${types[snap.nodes[i + ti!]]}:${snap.strings[snap.nodes[i + ni!]].slice(0, 60)}`;
  // With --retainers, arrays and byte buffers are told apart by what holds them: the first
  // retainer's kind and the edge's name (e.g. "array: ← object:Channel.#outbuf").
  const held = new Map<number, { from: number; label: string }>();
  if (retainers) {
    const ef: string[] = snap.snapshot.meta.edge_fields;
    const etypes: string[] = snap.snapshot.meta.edge_types[0];
    const [eti, eni, eto] = ["type", "name_or_index", "to_node"].map((k) => ef.indexOf(k));
    let e = 0;
    for (let i = 0; i < snap.nodes.length; i += f.length) {
      for (let k = 0; k < snap.nodes[i + ei!]; k++, e += ef.length) {
        const to = snap.edges[e + eto!], et = etypes[snap.edges[e + eti!]];
        if (held.has(to) || et === "weak") continue;
        const label = et === "element" || et === "hidden"
          ? `[${snap.edges[e + eni!]}]`
          : String(snap.strings[snap.edges[e + eni!]]);
        held.set(to, { from: i, label });
      }
    }
  }
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    let k = name(i);
    if (
      retainers &&
      /^(array:|object:(Uint8Array|ArrayBuffer|Array|Object|Map|Set|Generator|Promise)$|native:system \/ JSArrayBufferData|closure:$)/
        .test(k)
    ) {
      // Up the first retainers while they are containers too (e.g. a Uint8Array's buffer, a
      // Map's table), to the object that owns them.
      let at = i;
      for (let depth = 0; depth < 4; depth++) {
        const h = held.get(at);
        if (!h) {
          k += " ← ?";
          break;
        }
        k += ` ← ${name(h.from)}.${h.label}`;
        if (
          !/^(array:|object:(Uint8Array|ArrayBuffer|Array|Map|Set)$|native:)/.test(name(h.from))
        ) break;
        at = h.from;
      }
    }
    const e = out.get(k) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + si!];
    e.count++;
    out.set(k, e);
  }
  return out;
}

async function barePairs(): Promise<void> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  try {
    await new Promise((r) => setTimeout(r, 500));
    const a = snapshot();
    for (let i = 0; i < n; i++) {
      const acc = l.accept();
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      const s = await acc;
      conns.push(c, s);
      for (const x of [c, s]) x.read(new Uint8Array(256)).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 1000));
    report(`${n} bare TCP pairs, a pending read at each end; per pair`, n, a, snapshot());
  } finally {
    for (const c of conns) c.close();
    l.close();
  }
}

async function circuits(): Promise<void> {
  const srv = await serve();
  // Caps above the circuits built: every circuit keeps its own connections (at the default
  // cap of 512 per peer the later ones would share the link).
  const caps = { perPeer: 2 * n + 64, total: 4 * n + 64 };
  const net = await startNet(3, [transport, transport, transport], transport, ["r1", "r2", "r3"], {
    pctcp: { caps },
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
    const kindsFile = kinds ? await Deno.makeTempFile() : undefined;
    if (kindsFile) {
      await Deno.writeTextFile(kindsFile, JSON.stringify([...await heapByKind()]));
      gc();
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
      }).sort((x, y) => y[1] - x[1]).slice(0, retainers ? 200 : 40);
      for (const [k, sz, c] of rows) {
        console.log(`${sz.toFixed(0).padStart(7)} B ${c.toFixed(2).padStart(6)}× ${k}`);
      }
    }
    report(
      `${transport}: ${n - failed} idle circuits (${failed} failed); per circuit, all roles`,
      n - failed,
      a,
      b,
    );
  } finally {
    await net.stop();
    await srv.stop();
  }
}

await (bare ? barePairs() : circuits());
