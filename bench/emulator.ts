// Benchmark (not a test) of the user-space link emulator: TCP bulk through it between two
// namespaces, with everything at zero and with 20 ms / 1 % loss paths; reports MB/s, packets/s
// and the emulator's CPU per packet (from /proc). Needs root.
//   deno run -A bench/emulator.ts [--mb 200]
import { setCongestion, startEmulatedHosts } from "../lib/network/emulated_hosts.ts";
import { selfCommand } from "../lib/network/launcher.ts";
import type { EmulationSpec } from "../lib/emulate/mod.ts";
import { cpuSeconds } from "./_proc.ts";

if (Deno.uid() !== 0) {
  console.error("bench/emulator.ts needs root (network namespaces, TUN devices)");
  Deno.exit(1);
}
const mbArg = Deno.args.indexOf("--mb");
const MB = mbArg >= 0 ? Number(Deno.args[mbArg + 1]) : 200;
const probe = new URL("../tests/fixtures/netprobe.ts", import.meta.url).pathname;

function run(ns: string, args: string[]) {
  return new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", "--unstable-net", probe, ...args],
    stdout: "piped",
    stderr: "null",
  }).output().then((o) => JSON.parse(new TextDecoder().decode(o.stdout)));
}

async function once(label: string, spec: EmulationSpec) {
  const dir = await Deno.makeTempDir();
  const e = await startEmulatedHosts(dir, ["a", "b"], { spec, command: selfCommand() });
  await setCongestion(e.hosts, spec.tcpCongestion);
  try {
    const [a, b] = e.hosts.hosts;
    const pid = e.emulator.pid;
    const sink = run(b!.ns, ["tcp-sink", "9100"]);
    await new Promise((r) => setTimeout(r, 1500));
    const cpu0 = cpuSeconds(pid);
    const stats0 = JSON.parse(await Deno.readTextFile(`${e.stateDir}/stats.json`));
    const t0 = performance.now();
    await run(a!.ns, ["tcp-send", b!.address, "9100", String(MB * 1e6)]);
    const r = await sink;
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpu0;
    await new Promise((r) => setTimeout(r, 1100)); // next stats.json
    const stats = JSON.parse(await Deno.readTextFile(`${e.stateDir}/stats.json`));
    const packets = stats.model.delivered - stats0.model.delivered;
    const bytes = stats.model.deliveredBytes - stats0.model.deliveredBytes;
    const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
    console.log(
      `${label.padEnd(26)} ${
        (r.bytes / 1e6 / (r.ms / 1000)).toFixed(1).padStart(6)
      } MB/s goodput  ${(packets / wall).toFixed(0).padStart(6)} packets/s (both ways)  ${
        (bytes / packets).toFixed(0)
      } B/packet  emulator CPU ${((cpu / wall) * 100).toFixed(0)} %  ${
        ((cpu / packets) * 1e6).toFixed(1)
      } µs/packet  late p50/p99 ${stats.lateMs.p50}/${stats.lateMs.p99} ms  dropped ${
        ((stats.model.droppedLoss - stats0.model.droppedLoss) /
          (stats.model.sent - stats0.model.sent) * 100).toFixed(2)
      } %  (load ${loadavg})`,
    );
  } finally {
    await e.close();
    await Deno.remove(dir, { recursive: true });
  }
}

console.log(`TCP bulk of ${MB} MB between two namespaces through the emulator (one core's worth):`);
await once("zero config", {});
await once("20 ms one-way, 1 % loss", { latency: "20ms", loss: "1%" });
await once("  same, TCP cubic", { latency: "20ms", loss: "1%", tcpCongestion: "cubic" });
await once("1 Gbit/s host rates", { bandwidth: "1Gbit" });
