/**
 * The CREATE2 flood of issue 24 item 5 against a relay in a process of its own, as on a real
 * host: `pctcp network up --relays 3` (relays, server and client each a process, loopback), one
 * anonymous link from this process to the guard sending N CREATE2 cells, and an honest 256 KiB
 * fetch through the network's SOCKS client before, during and after. Prints the guard's RSS
 * (from /proc) and the circuits it holds (its stats.json).
 *
 * `deno run -A bench/hostile_create_flood_procs.ts [N]` (N CREATE2 cells, default 20000).
 * bench/hostile_create_flood.ts is the same flood with every role in one process (the
 * attacker, client and other relays then share the attacked relay's CPU).
 * @module
 */

import { RawLink, sendCreate2Cells } from "../tests/_hostile.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import type { RelayEntry } from "../lib/directory/document.ts";

const n = Number(Deno.args[0] ?? 20000);
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
  await pctcp("network", "up", "--relays", "3", "--transport", "tor");
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
  await fetchMs();
  const base = [await fetchMs(), await fetchMs(), await fetchMs()].sort((a, b) => a - b)[1]!;
  const raw = await RawLink.open(guard);
  const before = rssOf(pid);
  const t0 = performance.now();
  const cpu0 = cpuMs(pid);
  let sentAt = NaN;
  const flood = sendCreate2Cells(raw, guard, n).then(() => sentAt = performance.now() - t0);
  const during: number[] = [];
  let peak = before;
  // Honest fetches one after another while the flood's cells are being answered.
  while (raw.received.length < n && performance.now() - t0 < 120_000 && !raw.closedByPeer) {
    during.push(await fetchMs());
    if (during.length === 1) {
      console.log(
        `first fetch during: ${during[0]!.toFixed(0)} ms, ended ${
          (performance.now() - t0).toFixed(0)
        } ms after the flood began; the guard's CPU meanwhile ${cpuMs(pid) - cpu0} ms; ${
          raw.received.length
        } answers so far; flood sent at ${sentAt.toFixed(0)} ms`,
      );
    }
    peak = Math.max(peak, rssOf(pid));
  }
  await flood;
  const answered = performance.now() - t0;
  const refused = raw.received.filter((c) => c.command === 4).length; // DESTROY
  const circuits = await circuitsOf(`${net}/${guard.nickname}/stats.json`);
  const after = await fetchMs();
  const sorted = [...during].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  console.log(
    `${n} CREATE2 on one link to ${guard.nickname} (its own process): answered in ` +
      `${answered.toFixed(0)} ms, ${refused} refused; ${circuits} circuits held; RSS ` +
      `${before} → ${peak} MiB (peak during); honest 256 KiB fetch ${base.toFixed(0)} ms before, ` +
      `during ${during.length} fetches median ${med.toFixed(0)} ms (max ${
        Math.max(...during).toFixed(0)
      }), ${after.toFixed(0)} ms after; during, in order: ${during.map((x) => x.toFixed(0)).join(" ")}`,
  );
  raw.close();
} finally {
  if (up) await pctcp("network", "down").catch((e) => console.error(String(e)));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
