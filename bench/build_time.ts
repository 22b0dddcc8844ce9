/**
 * Circuit build time per transport, circuits built one after another (`--gap-ms` apart; they
 * stay open), after 10 warm-up builds:
 *
 * - default: client and 3 relays in this process on loopback, `--circuits` circuits each for
 *   tor, pctcp without pre-opened links, and pctcp with one per-circuit link per peer opened
 *   ahead (the default: the next spare is opened once a circuit's CREATED2 is back on the link
 *   it took). All roles share one thread here, so a spare's handshake competes with the next
 *   build more than across processes.
 * - `--processes`: a `pctcp network` per transport (separate processes, as `bench/vs_tor.ts`
 *   runs them), each circuit made by a 1-byte fetch under a new SOCKS user; also prints the CPU
 *   time (user + system, every process of the network) per circuit.
 *
 * `deno run -A bench/build_time.ts [--circuits 40] [--gap-ms 50] [--processes]`
 * @module
 */
import { startNet } from "../tests/_net.ts";
import { percentile } from "../lib/stats/percentile.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import { cpuSeconds } from "./_proc.ts";

function usage(msg: string): never {
  console.error(`build_time: ${msg}`);
  console.error(
    "usage: deno run -A bench/build_time.ts [--circuits N] [--gap-ms MS] [--processes]",
  );
  Deno.exit(2);
}

let circuits = 40, gapMs = 50, processes = false;
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  const val = () => Number(Deno.args[++i] ?? usage(`${a} needs a value`));
  if (a === "--circuits") circuits = val();
  else if (a === "--gap-ms") gapMs = val();
  else if (a === "--processes") processes = true;
  else usage(`unknown argument: ${a}`);
}
if (!(circuits > 0) || !(gapMs >= 0)) usage("--circuits must be > 0 and --gap-ms ≥ 0");

const WARMUP = 10;
const pause = () => gapMs > 0 ? new Promise((r) => setTimeout(r, gapMs)) : Promise.resolve();

function line(name: string, ms: number[], extra = ""): string {
  return `${name.padEnd(20)} build p50 ${percentile(ms, 50).toFixed(2)} ms  p10 ${
    percentile(ms, 10).toFixed(2)
  }  p90 ${percentile(ms, 90).toFixed(2)}  (${circuits} circuits, ${gapMs} ms apart)${extra}`;
}

if (!processes) {
  const rows: [string, "tor" | "pctcp", boolean][] = [
    ["tor", "tor", false],
    ["pctcp, no pre-open", "pctcp", false],
    ["pctcp, pre-open", "pctcp", true],
  ];
  for (const [name, t, preopen] of rows) {
    const net = await startNet(3, [t, t, t], t, ["r1", "r2", "r3"], {
      pctcp: { preopen },
    });
    try {
      for (let i = 0; i < WARMUP; i++) await net.client.buildCircuit(`warm${i}`);
      const ms: number[] = [];
      for (let i = 0; i < circuits; i++) {
        await pause();
        ms.push((await net.client.buildCircuit(`c${i}`)).buildMs);
      }
      console.log(line(name, ms));
    } finally {
      await net.stop();
    }
  }
} else {
  const dir = await Deno.makeTempDir({ prefix: "build_time-" });
  const srv = await serve();
  try {
    for (const transport of ["tor", "pctcp"] as const) {
      const net = await networkUp({
        dir: `${dir}/${transport}`,
        relays: 3,
        transport,
        path: ["relay1", "relay2", "relay3"],
      });
      try {
        const fetch1 = (user: string) =>
          timedFetch(`${srv.url}/bytes/1`, {
            socksHost: "127.0.0.1",
            socksPort: Number(net.socks.split(":")[1]),
            socksUser: user,
          });
        for (let i = 0; i < WARMUP; i++) await fetch1(`warm${i}`);
        const pids = net.processes.map((p) => p.pid);
        const cpu0 = pids.reduce((t, p) => t + cpuSeconds(p), 0);
        for (let i = 0; i < circuits; i++) {
          await pause();
          await fetch1(`c${i}`);
        }
        const cpu = pids.reduce((t, p) => t + cpuSeconds(p), 0) - cpu0;
        const ms = (await Deno.readTextFile(net.streams)).trim().split("\n")
          .map((l) => JSON.parse(l)).filter((e) => e.buildMs > 0).map((e) => e.buildMs as number)
          .slice(WARMUP);
        console.log(
          line(transport, ms, `  CPU ${(cpu * 1000 / circuits).toFixed(1)} ms per circuit`),
        );
      } finally {
        await networkDown(`${dir}/${transport}`);
      }
    }
  } finally {
    await srv.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
