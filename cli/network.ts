/**
 * `pctcp network up|status|down`: a private network on loopback.
 * @module
 */

import { SCHEDULER_KINDS, type SchedulerKind } from "../lib/channel/scheduler.ts";
import { Command, Option } from "commander";
import { positiveInt, run } from "./_common.ts";
import { networkDown, networkStatus, networkUp } from "../lib/network/launcher.ts";
import { parseSize } from "../lib/serve/sizes.ts";

/** Builds the `network` command. */
export function networkCommand(): Command {
  const net = new Command("network").description(
    "start, inspect and stop a private network (up|status|down)",
  );
  net.command("up")
    .description("start a directory, relays, a server and a client; return once traffic flows")
    .option("--relays <n>", "number of relays (≥ 3)", positiveInt, 3)
    .addOption(
      new Option("--transport <t>", "relay transport").choices(["tor", "pctcp", "mixed"]).default(
        "tor",
      ),
    )
    .option("--dir <dir>", "state folder", "./pctcp-net")
    .option("--bandwidth <rate>", "relay rate limit per second (e.g. 2MiB)")
    .option("--path <r1,r2,r3>", "pin the client's circuits")
    .option("--web-root <dir>", "folder of web pages for the server")
    .option("--json", "print the state as JSON")
    .addOption(
      new Option("--scheduler <s>", "every relay's cell scheduler (kist: Tor's since 0.3.2)")
        .choices([...SCHEDULER_KINDS]).default("vanilla"),
    )
    .option(
      "--netns",
      "every relay, the server and the client in its own network namespace (root); --bandwidth shapes links with tc",
    )
    .option(
      "--ipsec",
      "with --netns: strongSwan IPsec between relay hosts, only IKE/ESP on the wire",
    )
    .option(
      "--insecure-lab",
      "pctcp per-circuit connections unencrypted (said in logs and records)",
    )
    .action((
      o: {
        netns?: boolean;
        ipsec?: boolean;
        insecureLab?: boolean;
        relays: number;
        transport: "tor" | "pctcp" | "mixed";
        scheduler: SchedulerKind;
        dir: string;
        bandwidth?: string;
        path?: string;
        webRoot?: string;
        json?: boolean;
      },
    ) =>
      run(async () => {
        const s = await networkUp({
          relays: o.relays,
          transport: o.transport,
          scheduler: o.scheduler,
          dir: o.dir,
          ...(o.netns ? { netns: true } : {}),
          ...(o.ipsec ? { ipsec: true } : {}),
          ...(o.insecureLab ? { insecureLab: true } : {}),
          ...(o.bandwidth ? { bandwidth: parseSize(o.bandwidth) } : {}),
          ...(o.path ? { path: o.path.split(",") } : {}),
          ...(o.webRoot ? { webRoot: o.webRoot } : {}),
        });
        if (o.json) console.log(JSON.stringify(s));
        else {
          console.log(`network up in ${s.dir}: ${s.relays.length} relays (${o.transport})`);
          console.log(`SOCKS5 proxy: ${s.socks}`);
          console.log(`server:       ${s.server}   (try ${s.server}/bytes/5MiB)`);
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
      })
    );
  net.command("down")
    .description("stop every process the network started")
    .option("--dir <dir>", "state folder", "./pctcp-net")
    .action((o: { dir: string }) =>
      run(async () => {
        const r = await networkDown(o.dir);
        console.log(`network down: ${r.stopped} processes stopped`);
      })
    );
  return net;
}
