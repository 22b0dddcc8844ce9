/**
 * Circuit build time in one process (client and 3 relays on loopback), per transport:
 * `deno run -A bench/build_time.ts [--circuits 40] [--gap-ms 50]`. Builds `--circuits`
 * circuits one after another, `--gap-ms` apart (circuits stay open), after 10 warm-up builds,
 * and prints the median build time for tor, pctcp without pre-opened links, and pctcp with one
 * per-circuit link per peer opened ahead (the default: the next spare is opened once a
 * circuit's CREATED2 is back on the link it took). All roles share this process's one thread,
 * so a spare's handshake competes with the next build here more than across processes
 * (`bench/vs_tor.ts` measures that).
 * @module
 */
import { startNet } from "../tests/_net.ts";
import { percentile } from "../lib/stats/percentile.ts";

function usage(msg: string): never {
  console.error(`build_time: ${msg}`);
  console.error("usage: deno run -A bench/build_time.ts [--circuits N] [--gap-ms MS]");
  Deno.exit(2);
}

let circuits = 40, gapMs = 50;
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  const val = () => Number(Deno.args[++i] ?? usage(`${a} needs a value`));
  if (a === "--circuits") circuits = val();
  else if (a === "--gap-ms") gapMs = val();
  else usage(`unknown argument: ${a}`);
}
if (!(circuits > 0) || !(gapMs >= 0)) usage("--circuits must be > 0 and --gap-ms ≥ 0");

const rows: [string, "tor" | "pctcp", boolean][] = [
  ["tor", "tor", false],
  ["pctcp, no pre-open", "pctcp", false],
  ["pctcp, pre-open", "pctcp", true],
];
for (const [name, t, preopen] of rows) {
  const net = await startNet(3, [t, t, t], t, ["r1", "r2", "r3"], { pctcpPreopen: preopen });
  try {
    for (let i = 0; i < 10; i++) await net.client.buildCircuit(`warm${i}`);
    const ms: number[] = [];
    for (let i = 0; i < circuits; i++) {
      await new Promise((r) => setTimeout(r, gapMs));
      ms.push((await net.client.buildCircuit(`c${i}`)).buildMs);
    }
    console.log(
      `${name.padEnd(20)} build p50 ${percentile(ms, 50).toFixed(2)} ms  p10 ${
        percentile(ms, 10).toFixed(2)
      }  p90 ${percentile(ms, 90).toFixed(2)}  (${circuits} circuits, ${gapMs} ms apart)`,
    );
  } finally {
    await net.stop();
  }
}
