/**
 * The anchor: our relays against C tor (Debian's tor) on the same machine in one run.
 * Per network (ours-tor, ours-pctcp, C tor), each as separate processes on loopback with no
 * rate limits:
 *
 * - `mbps`: bulk MB/s of one stream through a 3-hop circuit (median of 3 fetches);
 * - `cpuSecPerMB`: CPU seconds (user + system, from `/proc/PID/stat`) summed over every
 *   process of that network during those fetches, per MB carried;
 * - `buildMs`: median build time of 30 circuits built one after another (a 1-byte fetch each,
 *   on a new SOCKS user), after 5 such warm-up builds: steady state, where each hop already
 *   has its links (tor: the shared link; pctcp: a spare per-circuit link opened ahead);
 * - `kibPerCircuit`, `fdsPerCircuit` (ours): growth of resident memory (VmRSS) and open file
 *   descriptors summed over the network's processes while N idle circuits are built (each by
 *   a 1-byte fetch under its own SOCKS user), divided by N.
 *
 * `deno run -A bench/vs_tor.ts [--mib 20] [--circuits 1000] [--json FILE] [--no-ctor]`
 * (a bare number is the MiB, as before; needs tor installed for the C tor row).
 * @module
 */

import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { startTorTestnet } from "../lib/tor/testnet.ts";
import { PinnedCircuits } from "../lib/tor/pinned.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { serve } from "../lib/serve/server.ts";
import { cpuSeconds } from "./_proc.ts";

/** One network's figures. */
interface Row {
  mbps: number;
  cpuSecPerMB: number;
  buildMs: number;
  kibPerCircuit?: number;
  fdsPerCircuit?: number;
}

function usage(msg: string): never {
  console.error(`vs_tor: ${msg}`);
  console.error(
    "usage: deno run -A bench/vs_tor.ts [--mib N] [--circuits N] [--json FILE] [--no-ctor]",
  );
  Deno.exit(2);
}

let mib = 20, circuits = 1000, jsonFile: string | undefined, ctor = true;
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  const val = () => Deno.args[++i] ?? usage(`${a} needs a value`);
  if (a === "--mib") mib = Number(val());
  else if (a === "--circuits") circuits = Number(val());
  else if (a === "--json") jsonFile = val();
  else if (a === "--no-ctor") ctor = false;
  else if (/^\d+(\.\d+)?$/.test(a)) mib = Number(a);
  else usage(`unknown argument: ${a}`);
}
if (!(mib > 0) || !(circuits >= 0)) usage("--mib must be > 0 and --circuits ≥ 0");

/** Circuits built one after another for `buildMs`, after a few whose figures are dropped. */
const BUILDS = 30, BUILD_WARMUP = 5;

/** Resident memory (KiB) and open fds of a process. */
function memFds(pid: number): { kib: number; fds: number } {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return { kib, fds: [...Deno.readDirSync(`/proc/${pid}/fd`)].length };
  } catch {
    return { kib: 0, fds: 0 };
  }
}

const sum = (pids: number[], f: (pid: number) => number) => pids.reduce((s, p) => s + f(p), 0);

/** Pids of processes whose command line mentions `needle` (C tor's client is not listed). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.includes(needle)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

const dir = await Deno.makeTempDir({ prefix: "vs_tor-" });
const s = await serve();
const out: Record<string, Row> = {};

/** Three bulk fetches; MB/s of each (first to last byte) and CPU s/MB over `pids`. */
async function bulk(
  socks: string,
  user: string,
  pids: number[],
  names: string[] = [],
): Promise<{ mbps: number; cpuSecPerMB: number }> {
  const rates: number[] = [];
  let bytes = 0;
  const cpu0 = sum(pids, cpuSeconds);
  const each0 = pids.map(cpuSeconds);
  for (let i = 0; i < 3; i++) {
    const r = await timedFetch(`${s.url}/bytes/${mib}MiB`, {
      socksHost: "127.0.0.1",
      socksPort: Number(socks.split(":")[1]),
      socksUser: user,
      timeoutMs: 120_000,
    });
    if (r.outcome !== "ok") throw new Error(`${r.outcome}: ${r.error}`);
    bytes += r.bytes;
    rates.push(r.bytes / 1e6 / ((r.phases.last_byte! - r.phases.first_byte!) / 1000));
  }
  const cpu = sum(pids, cpuSeconds) - cpu0;
  if (names.length) {
    const each = pids.map((p, i) =>
      `${names[i]} ${((cpuSeconds(p) - each0[i]!) / (bytes / 1e6)).toFixed(4)}`
    );
    console.error(`vs_tor: CPU s/MB by process: ${each.join(", ")}`);
  }
  return { mbps: percentile(rates, 50), cpuSecPerMB: cpu / (bytes / 1e6) };
}

/** Builds `n` idle circuits (one 1-byte fetch per SOCKS user, 4 at a time). */
async function idleCircuits(socks: string, n: number, pids: number[]) {
  const settle = () => new Promise((r) => setTimeout(r, 1500));
  await settle();
  const before = pids.map(memFds);
  let next = 0, failed = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await timedFetch(`${s.url}/bytes/1`, {
        socksHost: "127.0.0.1",
        socksPort: Number(socks.split(":")[1]),
        socksUser: `idle${i}`,
        timeoutMs: 30_000,
      });
      if (r.outcome !== "ok") failed++;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await settle();
  const after = pids.map(memFds);
  const d = (k: "kib" | "fds") => after.reduce((t, a, i) => t + a[k] - before[i]![k], 0);
  if (failed) console.error(`vs_tor: ${failed} of ${n} idle-circuit fetches failed`);
  return { kibPerCircuit: d("kib") / (n - failed), fdsPerCircuit: d("fds") / (n - failed) };
}

try {
  for (const transport of ["tor", "pctcp"] as const) {
    const net = await networkUp({
      dir: `${dir}/ours-${transport}`,
      relays: 3,
      transport,
      path: ["relay1", "relay2", "relay3"],
      // Above the circuits built: every idle circuit keeps its own connections (at the default
      // cap of 512 per peer the rest would share the link and the figure would mix the two).
      pctcpCaps: { perPeer: 2 * circuits + 64, total: 4 * circuits + 64 },
    });
    try {
      const pids = net.processes.map((p) => p.pid);
      const b = await bulk(net.socks, "bench", pids, net.processes.map((p) => p.name));
      for (let i = 0; i < BUILD_WARMUP + BUILDS; i++) {
        await timedFetch(`${s.url}/bytes/1`, {
          socksHost: "127.0.0.1",
          socksPort: Number(net.socks.split(":")[1]),
          socksUser: `b${i}`,
        });
      }
      // The circuits of those fetches, after the first BUILD_WARMUP (the bulk circuit's came
      // before them).
      const builds = (await Deno.readTextFile(net.streams)).trim().split("\n").map((l) =>
        JSON.parse(l)
      )
        .filter((e) => String(e.target).length && e.buildMs > 0).map((e) => e.buildMs)
        .slice(1 + BUILD_WARMUP);
      const row: Row = { ...b, buildMs: percentile(builds, 50) };
      if (circuits > 0) Object.assign(row, await idleCircuits(net.socks, circuits, pids));
      out[`ours-${transport}`] = row;
    } finally {
      await networkDown(`${dir}/ours-${transport}`);
    }
  }
  if (ctor) {
    const tor = await startTorTestnet({ dir: `${dir}/ctor`, readyUrl: `${s.url}/bytes/1KiB` });
    try {
      const pids = [
        ...new Set([...tor.relays.map((r) => r.pid), ...pidsMentioning(`${dir}/ctor`)]),
      ];
      // By name, for the per-process line: the path is the first three relays; the fourth
      // (an authority too) carries no traffic of the bulk fetch.
      const names = pids.map((pid, i) => {
        const r = tor.relays.findIndex((x) => x.pid === pid);
        return r < 0 ? `client${i}` : `${tor.relays[r]!.nickname}${r < 3 ? "" : " (off path)"}`;
      });
      const builds: number[] = [];
      let b = { mbps: NaN, cpuSecPerMB: NaN };
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
          if (i === 0) b = await bulk(tor.socks, "bench", pids, names);
        } finally {
          await p.close();
        }
      }
      out[`c-tor ${tor.version}`] = { ...b, buildMs: percentile(builds, 50) };
    } finally {
      await tor.stop();
    }
  }
} finally {
  await s.stop();
  await Deno.remove(dir, { recursive: true });
}

const json: Record<string, Row> = {};
for (const [k, v] of Object.entries(out)) json[k.startsWith("c-tor") ? "c-tor" : k] = v;
if (jsonFile) await Deno.writeTextFile(jsonFile, JSON.stringify(json, null, 2) + "\n");
console.log(JSON.stringify(out, null, 2));
const c = Object.entries(out).find(([k]) => k.startsWith("c-tor"))?.[1];
const ratio = (a: number, b: number | undefined) => b ? ` (${(a / b).toFixed(2)} × C tor)` : "";
for (const [k, v] of Object.entries(out)) {
  const mem = v.kibPerCircuit === undefined
    ? ""
    : `  idle circuit ${v.kibPerCircuit.toFixed(1)} KiB ${v.fdsPerCircuit!.toFixed(2)} fds`;
  console.log(
    `${k.padEnd(28)} bulk ${v.mbps.toFixed(1).padStart(6)} MB/s${ratio(v.mbps, c?.mbps)}  cpu ${
      v.cpuSecPerMB.toFixed(4)
    } s/MB${ratio(v.cpuSecPerMB, c?.cpuSecPerMB)}  build ${v.buildMs.toFixed(2).padStart(7)} ms${
      ratio(v.buildMs, c?.buildMs)
    }${mem}`,
  );
}
const t = out["ours-tor"], p = out["ours-pctcp"];
if (t && p) console.log(`build pctcp/tor ${(p.buildMs / t.buildMs).toFixed(2)}`);
