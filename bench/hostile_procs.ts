/**
 * Attacks of issue 24 against relays in processes of their own, as on real hosts: `pctcp
 * network up --relays 3` (relays, server and client each a process, loopback), the attacker in
 * this process, and honest 256 KiB fetches through the network's SOCKS client before, during
 * (one after another while the attack lasts) and after. Prints the guard's RSS (from /proc).
 *
 * * `deno run -A bench/hostile_procs.ts create2 [N]` (item 5): one anonymous link to the guard
 *   sends N CREATE2 cells (default 20000); the circuits the guard holds (its stats.json).
 *   bench/hostile_create_flood.ts is the same flood with every role in one process.
 * * `deno run -A bench/hostile_procs.ts truncate [C]` (item 2, `--transport pctcp`): C circuits
 *   (default 30) to the guard, each sending 8 × (EXTEND2 to the middle, TRUNCATE) in one write,
 *   destroyed a second later: every EXTEND2 opens a per-circuit connection guard → middle.
 * @module
 */

import { RawLink, sendCreate2Cells } from "../tests/_hostile.ts";
import { RelayCommand } from "../lib/cell/mod.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import type { RelayEntry } from "../lib/directory/document.ts";

const mode = Deno.args[0] ?? "create2";
if (mode !== "create2" && mode !== "truncate") {
  console.error("usage: bench/hostile_procs.ts create2|truncate [N]");
  Deno.exit(2);
}
const n = Number(Deno.args[1] ?? (mode === "create2" ? 20000 : 30));
const cli = new URL("../cli/main.ts", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "pctcp-flood-" });

async function pctcp(...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`pctcp ${args.join(" ")}: ${text}`);
  return text;
}

/** User + system CPU time of a process, ms (from /proc; clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

function rssOf(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024);
}

async function circuitsOf(statsFile: string): Promise<number> {
  // stats.json is rewritten every second or so.
  await new Promise((r) => setTimeout(r, 1500));
  return JSON.parse(await Deno.readTextFile(statsFile)).circuits ?? NaN;
}

let up = false;
try {
  await pctcp(
    "network",
    "up",
    "--relays",
    "3",
    "--transport",
    mode === "create2" ? "tor" : "pctcp",
  );
  up = true;
  const net = `${dir}/pctcp-net`;
  const state = JSON.parse(await Deno.readTextFile(`${net}/state.json`));
  const directory = JSON.parse(await Deno.readTextFile(`${net}/directory.json`));
  const guard: RelayEntry = directory.relays.find((r: RelayEntry) => r.flags?.includes("guard"));
  const pid = state.relays.find((r: { nickname: string }) => r.nickname === guard.nickname).pid;
  const [socksHost, socksPort] = state.socks.split(":");
  const fetchMs = async () => {
    const t0 = performance.now();
    const r = await timedFetch(`${state.server}/bytes/256KiB`, {
      socksHost,
      socksPort: Number(socksPort),
      socksUser: "honest",
      timeoutMs: 60_000,
    });
    if (r.outcome !== "ok") throw new Error(`honest fetch failed: ${r.error}`);
    return performance.now() - t0;
  };
  // Median of 20 after a warm-up (the first fetches are slower: TCP windows, JIT).
  const medianOf = async (k: number) => {
    const xs: number[] = [];
    for (let i = 0; i < k; i++) xs.push(await fetchMs());
    return xs.sort((a, b) => a - b)[k >> 1]!;
  };
  await medianOf(10);
  const base = await medianOf(20);
  const raw = await RawLink.open(guard);
  const before = rssOf(pid);
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  let over = false;
  let attack: Promise<unknown>;
  if (mode === "create2") {
    attack = sendCreate2Cells(raw, guard, n).then(async () => {
      while (raw.received.length < n && performance.now() - t0 < 120_000 && !raw.closedByPeer) {
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  } else {
    const middle: RelayEntry = directory.relays.find((r: RelayEntry) => r !== guard);
    attack = (async () => {
      const circs = [];
      for (let k = 0; k < n; k++) {
        const circ = await raw.create(guard);
        circs.push(circ);
        await raw.sendMany(
          Array.from({ length: 8 }, () => [
            circ.extendCell(middle),
            circ.cell(RelayCommand.TRUNCATE, 0, new Uint8Array(0)),
          ]).flat(),
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
      for (const c of circs) await c.destroy();
    })();
  }
  attack = attack.finally(() => over = true);
  const during: number[] = [];
  let peak = before;
  while (!over) {
    during.push(await fetchMs());
    peak = Math.max(peak, rssOf(pid));
  }
  await attack;
  const answered = performance.now() - t0;
  const cpu = cpuMs(pid) - cpu0;
  const refused = raw.received.filter((c) => c.command === 4).length; // DESTROY
  const circuits = await circuitsOf(`${net}/${guard.nickname}/stats.json`);
  const after = await medianOf(20);
  const sorted = [...during].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const p90 = sorted[Math.floor(sorted.length * 0.9)] ?? NaN;
  const what = mode === "create2"
    ? `${n} CREATE2 on one link to ${guard.nickname}: answered in ${answered.toFixed(0)} ms, ` +
      `${refused} refused`
    : `${n} circuits × 8 EXTEND2+TRUNCATE through ${guard.nickname}: ${answered.toFixed(0)} ms`;
  console.log(
    `${what} (its own process, CPU ${cpu} ms meanwhile); ${circuits} circuits held; RSS ` +
      `${before} → ${peak} MiB (peak during); honest 256 KiB fetch, median of 20: ${
        base.toFixed(0)
      } ms before; during ${during.length} fetches median ${med.toFixed(0)} ms, p90 ${
        p90.toFixed(0)
      } ms (max ${Math.max(...during).toFixed(0)}); ${
        after.toFixed(0)
      } ms after; during, in order: ${during.map((x) => x.toFixed(0)).join(" ")}`,
  );
  raw.close();
} finally {
  if (up) await pctcp("network", "down").catch((e) => console.error(String(e)));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
