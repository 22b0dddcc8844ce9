/**
 * `pctcp network up|status|down`: a private network on loopback.
 * @module
 */

import { SCHEDULER_KINDS, type SchedulerKind } from "../lib/channel/scheduler.ts";
import { Command, Option } from "commander";
import { positiveInt, run, UsageError } from "./_common.ts";
import {
  describeStop,
  MIXED_TRANSPORTS,
  networkDown,
  networkStatus,
  networkUp,
} from "../lib/network/launcher.ts";
import { TRANSPORT_NAMES } from "../lib/transport/registry.ts";
import { ctorNetworkUp } from "../lib/tor/mixed_network.ts";
import { makeLogger } from "../lib/util/log.ts";
import {
  type EmulationSpec,
  loadTopology,
  mergeSpecs,
  parseDuration,
  parseLoss,
  parseRate,
  runEmulator,
} from "../lib/emulate/mod.ts";
import { readEmulatorConfig } from "../lib/network/emulated_hosts.ts";

/** The emulation flags shared by `network up` and `experiment interference`. */
export interface EmulationFlags {
  /** One-way latency between any two hosts. */
  latency?: string;
  /** Jitter. */
  jitter?: string;
  /** Loss per one-way path. */
  loss?: string;
  /** Mean loss burst (packets). */
  lossBurst?: string;
  /** Drop-tail queue per host and direction. */
  queue?: string;
  /** GML or JSON topology. */
  topology?: string;
  /** Seed. */
  emulationSeed?: string;
  /** TCP congestion control in every host. */
  tcpCongestion?: string;
}

/** Adds the emulation flags to a command. */
export function addEmulationFlags(c: Command): Command {
  return c
    .option("--latency <d>", "with --netns: one-way latency between any two hosts (40ms)")
    .option("--jitter <d>", "with --netns: jitter, uniform ± (no reordering)")
    .option("--loss <p>", "with --netns: loss per one-way path (1% or 0.01)")
    .option("--loss-burst <n>", "with --netns: mean loss burst in packets (Gilbert-Elliott)")
    .option("--queue <d|size>", "with --netns: drop-tail queue per host link (100ms or 64KiB)")
    .option(
      "--topology <file>",
      "with --netns: Shadow GML graph (.gml) or per host/pair JSON (.json)",
    )
    .option("--emulation-seed <n>", "with --netns: seed of loss and jitter")
    .option(
      "--tcp-congestion <cc>",
      "with --netns: TCP congestion control in every host (cubic, bbr, reno; default the kernel's)",
    );
}

/** The emulation spec the flags ask for (validated: a bad value is a usage error). */
export async function emulationFromFlags(
  o: EmulationFlags,
  netns: boolean,
): Promise<EmulationSpec | undefined> {
  const given = Object.entries(o).filter(([k, v]) =>
    v !== undefined &&
    [
      "latency",
      "jitter",
      "loss",
      "lossBurst",
      "queue",
      "topology",
      "emulationSeed",
      "tcpCongestion",
    ]
      .includes(k)
  );
  if (!given.length) return undefined;
  if (!netns) {
    throw new UsageError(
      `--${
        given[0]![0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
      } needs --netns (links are emulated between hosts in namespaces)`,
    );
  }
  try {
    if (o.latency) parseDuration(o.latency);
    if (o.jitter) parseDuration(o.jitter);
    if (o.loss) parseLoss(o.loss);
    if (o.queue && !/b$/i.test(o.queue)) parseDuration(o.queue);
    if (o.queue && /b$/i.test(o.queue)) parseRate(o.queue);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (o.tcpCongestion && !/^[a-z0-9_]+$/.test(o.tcpCongestion)) {
    throw new UsageError(`--tcp-congestion: not an algorithm name: ${o.tcpCongestion}`);
  }
  const burst = o.lossBurst === undefined ? undefined : Number(o.lossBurst);
  if (burst !== undefined && !(burst >= 1)) {
    throw new UsageError(`--loss-burst must be a number ≥ 1: ${o.lossBurst}`);
  }
  const seed = o.emulationSeed === undefined ? undefined : Number(o.emulationSeed);
  if (seed !== undefined && !Number.isInteger(seed)) {
    throw new UsageError(`--emulation-seed must be an integer: ${o.emulationSeed}`);
  }
  let topo: EmulationSpec | undefined;
  if (o.topology) {
    try {
      await Deno.stat(o.topology);
    } catch {
      throw new UsageError(`no topology file ${o.topology}`);
    }
    topo = await loadTopology(o.topology);
  }
  return mergeSpecs(topo, {
    ...(o.latency ? { latency: o.latency } : {}),
    ...(o.jitter ? { jitter: o.jitter } : {}),
    ...(o.loss ? { loss: o.loss } : {}),
    ...(burst !== undefined ? { lossBurst: burst } : {}),
    ...(o.queue ? { queue: o.queue } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(o.tcpCongestion ? { tcpCongestion: o.tcpCongestion } : {}),
  });
}

/** Builds the `network` command. */
export function networkCommand(): Command {
  const net = new Command("network").description(
    "start, inspect and stop a private network (up|status|down)",
  );
  addEmulationFlags(net.command("up"))
    .description("start a directory, relays, a server and a client; return once traffic flows")
    .option("--relays <n>", "number of relays (≥ 3)", positiveInt, 3)
    .addOption(
      new Option(
        "--transport <t>",
        `relay transport (mixed: ${MIXED_TRANSPORTS.join(" and ")} alternating)`,
      )
        .choices([...TRANSPORT_NAMES, "mixed"]).default("tor"),
    )
    .option("--dir <dir>", "state folder", "./pctcp-net")
    .option(
      "--bandwidth <rate>",
      "relay rate limit per second (2MiB); with --netns every host's up and down rate (20Mbit)",
    )
    .option("--path <r1,r2,r3>", "pin the client's circuits")
    .option("--web-root <dir>", "folder of web pages for the server")
    .option("--json", "print the state as JSON")
    .addOption(
      new Option("--scheduler <s>", "every relay's cell scheduler (kist: Tor's since 0.3.2)")
        .choices([...SCHEDULER_KINDS]).default("vanilla"),
    )
    .option(
      "--netns",
      "every relay, the server and the client in its own network namespace (root), linked only through the user-space link emulator",
    )
    .option(
      "--ipsec",
      "with --netns: strongSwan IPsec between relay hosts, only IKE/ESP on the wire",
    )
    .option(
      "--insecure-lab",
      "pctcp per-circuit connections unencrypted (said in logs and records)",
    )
    .option(
      "--ctor",
      "a private network of Debian's tor (4 relays that are also authorities, a C tor client with a control port) with --ours relays of ours joined to it",
    )
    .option("--ours <n>", "with --ctor: relays of ours joined (default 2)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--ours must be 0 or more: ${v}`);
      return n;
    })
    .addHelpText(
      "after",
      `
Examples:
  pctcp network up --relays 3 --transport pctcp          # our relays only, on loopback
  pctcp network up --ctor --ours 2 --transport pctcp     # two of ours inside a C tor network
  pctcp network up --ctor --ours 2 --transport pctcp --netns --latency 10ms --ipsec
                                                         # ... every node on an emulated host
  pctcp network status --json; pctcp network down`,
    )
    .action((
      o: EmulationFlags & {
        netns?: boolean;
        ipsec?: boolean;
        insecureLab?: boolean;
        relays: number;
        transport: string;
        scheduler: SchedulerKind;
        dir: string;
        bandwidth?: string;
        path?: string;
        webRoot?: string;
        json?: boolean;
        ctor?: boolean;
        ours?: number;
      },
    ) =>
      run(async () => {
        if (o.ctor) {
          if (o.ipsec && !o.netns) {
            throw new UsageError("--ipsec needs --netns (IPsec between the hosts of our relays)");
          }
          const emulation = await emulationFromFlags(o, !!o.netns);
          if (o.transport !== "tor" && o.transport !== "pctcp") {
            throw new UsageError(`--ctor takes --transport tor or pctcp, not ${o.transport}`);
          }
          const s = await ctorNetworkUp({
            dir: o.dir,
            ours: o.ours ?? 2,
            transport: o.transport,
            scheduler: o.scheduler,
            ...(o.netns ? { netns: true } : {}),
            ...(emulation ? { emulation } : {}),
            ...(o.ipsec ? { ipsec: true } : {}),
            log: makeLogger("network", "info"),
          });
          if (o.json) return void console.log(JSON.stringify(s));
          const mine = s.relays.filter((r) => r.impl === "pctcp");
          console.log(
            `network up in ${s.dir}: ${
              s.relays.length - mine.length
            } C tor relays (${s.torVersion}), ${mine.length} of ours (${o.transport}), listed Running`,
          );
          for (const r of s.relays) {
            console.log(
              `  ${r.nickname.padEnd(8)} ${
                r.impl.padEnd(5)
              } ${r.fingerprint} ${r.address}:${r.orPort}`,
            );
          }
          console.log(
            `C tor client: SOCKS5 ${s.socks}, control ${s.control} (cookie ${s.cookieFile})`,
          );
          console.log(`server:       ${s.server}`);
          if (s.emulation) console.log(`links:        ${s.emulation.notes.join("; ")}`);
          return;
        }
        const emulation = await emulationFromFlags(o, !!o.netns);
        let bandwidth: number | undefined;
        try {
          bandwidth = o.bandwidth ? parseRate(o.bandwidth) : undefined;
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const s = await networkUp({
          ...(emulation ? { emulation } : {}),
          relays: o.relays,
          transport: o.transport,
          scheduler: o.scheduler,
          dir: o.dir,
          ...(o.netns ? { netns: true } : {}),
          ...(o.ipsec ? { ipsec: true } : {}),
          ...(o.insecureLab ? { insecureLab: true } : {}),
          ...(bandwidth && Number.isFinite(bandwidth) ? { bandwidth } : {}),
          ...(o.path ? { path: o.path.split(",") } : {}),
          ...(o.webRoot ? { webRoot: o.webRoot } : {}),
        });
        if (o.json) console.log(JSON.stringify(s));
        else {
          console.log(`network up in ${s.dir}: ${s.relays.length} relays (${o.transport})`);
          console.log(`SOCKS5 proxy: ${s.socks}`);
          console.log(`server:       ${s.server}   (try ${s.server}/bytes/5MiB)`);
          if (s.emulation?.engine !== "none") {
            console.log(`links:        ${s.emulation?.notes.at(-1)}`);
          }
        }
      })
    );
  net.command("status")
    .description("print the network's state: SOCKS address, server, relays and their statistics")
    .option("--dir <dir>", "state folder", "./pctcp-net")
    .option("--json", "print JSON")
    .action((o: { dir: string; json?: boolean }) =>
      run(async () => {
        const s = await networkStatus(o.dir);
        if (o.json) return void console.log(JSON.stringify(s));
        console.log(`SOCKS5 ${s.socks}  server ${s.server}`);
        for (const r of s.relays) {
          console.log(
            `${r.nickname.padEnd(8)} ${r.address}:${r.orPort}  ${
              r.transports.join("+").padEnd(9)
            } pid ${r.pid} ${s.alive[r.nickname] ? "up" : "DOWN"}`,
          );
        }
        for (const [nick, st] of Object.entries(s.stats)) {
          const x = st as {
            circuits: number;
            sockets: number;
            peers: {
              nickname: string;
              links: number;
              circuitConnections: number;
              fallbacks: number;
              bytesSent: number;
              queuedCells: number;
            }[];
          };
          console.log(`  ${nick}: ${x.circuits} circuits, ${x.sockets} sockets`);
          for (const p of x.peers) {
            console.log(
              `    → ${
                p.nickname.padEnd(8)
              } links ${p.links}  per-circuit ${p.circuitConnections}  fallbacks ${p.fallbacks}  sent ${p.bytesSent} B  queued ${p.queuedCells} cells`,
            );
          }
        }
        for (const p of s.processes.filter((p) => !p.name.startsWith("relay"))) {
          console.log(`${p.name.padEnd(8)} pid ${p.pid} ${s.alive[p.name] ? "up" : "DOWN"}`);
        }
        if (s.emulation) console.log(`links: ${s.emulation.notes.join("; ")}`);
        for (const b of s.broken) console.log(`BROKEN: ${b}`);
        if (s.broken.length) return 1;
      })
    );
  net.command("emulate", { hidden: true })
    .description("internal: the user-space link emulator process of a --netns network")
    .requiredOption("--config <file>", "emulator configuration written by network up")
    .action((o: { config: string }) =>
      run(async () => {
        const why = await runEmulator(await readEmulatorConfig(o.config));
        console.log(`emulator stopped: ${why}`);
      })
    );
  net.command("down")
    .description(
      "stop every process the network started (SIGTERM, SIGKILL after 3 s); return when all are gone",
    )
    .option("--dir <dir>", "state folder", "./pctcp-net")
    .action((o: { dir: string }) =>
      run(async () => {
        const r = await networkDown(o.dir);
        console.log(`network down: ${describeStop(r)}`);
      })
    );
  return net;
}
