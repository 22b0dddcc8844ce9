/**
 * Debian's tor on the same emulated network as our relays (`experiment interference --netns`):
 * every node (each relay, which is also a directory authority, and the client) and the web
 * server in a network namespace of its own, linked only through the user-space emulator
 * (lib/emulate) with the same host names, so a scenario's rates, latencies and loss apply to
 * C tor's hosts exactly as to ours. It writes a `state.json` like `network up` does, so
 * `pctcp network down --dir DIR` stops it, and a watchdog removes the namespaces if the owner
 * dies without stopping it.
 * @module
 */

import { startTorTestnet, type TorTestnet, type TorTestnetOptions } from "./testnet.ts";
import {
  type EmulationState,
  emulationSummary,
  prepareEmulator,
  setCongestion,
} from "../network/emulated_hosts.ts";
import {
  createHosts,
  destroyHosts,
  type NetnsHost,
  type NetnsHosts,
  probeNetns,
} from "../network/netns.ts";
import {
  isAlive,
  networkDown,
  type NetworkState,
  type ProcessInfo,
  selfCommand,
} from "../network/launcher.ts";
import type { EmulationSpec } from "../emulate/config.ts";

/** Options of {@linkcode startTorOnEmulatedHosts}. */
export interface TorOnHostsOptions {
  /** State folder (namespaces are named after it; tor's data under `DIR/tor`). */
  dir: string;
  /** Relays (each also a directory authority); hosts relay1..relayN. */
  relays: number;
  /** Host rates (bytes/s) of relay1.., as our arms' relay hosts get them in the emulator. */
  bandwidths?: number[];
  /** The emulation (latency, loss, pairs, congestion control …), as for our arms. */
  emulation?: EmulationSpec;
  /** Passed to {@linkcode startTorTestnet} (BandwidthRate, torrc lines, attempts). */
  tor?: Omit<TorTestnetOptions, "dir" | "relays" | "hosts" | "exitAccept" | "readyUrl">;
  /** Everything exits when this process is gone (default: this process). */
  ownerPid?: number;
  /**
   * Wait for a fetch through a circuit tor picks itself before returning (default true).
   * False when the caller attaches streams itself (pinned paths) and checks readiness so.
   */
  readyFetch?: boolean;
}

/** C tor running on emulated hosts. */
export interface TorOnHosts {
  /** The private Tor network (SOCKS and control on the client host's address). */
  tor: TorTestnet;
  /** The web server's base URL (on the `server` host). */
  server: string;
  /** The namespaces. */
  hosts: NetnsHosts;
  /** How the links were emulated (as `network status --json` prints it). */
  emulation: EmulationState;
  /** Stops every process and removes the namespaces (idempotent). */
  stop(): Promise<void>;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Starts `cmd` in the background, output to `log`; its pid. */
async function spawnLogged(cmd: string[], log: string): Promise<number> {
  const line = cmd.map(shellQuote).join(" ");
  const out = await new Deno.Command("sh", {
    args: ["-c", `exec ${line} >>${shellQuote(log)} 2>&1 </dev/null & echo $!`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim());
  if (!pid) throw new Error(`could not start: ${line}`);
  return pid;
}

async function waitFor<T>(
  what: string,
  f: () => Promise<T | undefined>,
  alive: () => boolean,
  log: string,
  timeoutMs = 20_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const x = await f();
    if (x !== undefined) return x;
    if (!alive() || Date.now() - t0 > timeoutMs) {
      const tail = (await Deno.readTextFile(log).catch(() => "")).trim().split("\n").slice(-5);
      throw new Error(`${what} did not come up; ${log} ends:\n${tail.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Options of {@linkcode startTorHosts}. */
export interface TorHostsOptions {
  /** State folder (namespaces are named after it). */
  dir: string;
  /** C tor relays: hosts relay1..relayN. */
  relays: number;
  /** More hosts beside relay1..N, server and client (a mixed network's ours1..oursN). */
  extraHosts?: string[];
  /** Host rates (bytes/s) in the emulator, by host name, under the emulation's own `hosts`. */
  hostRates?: Record<string, number>;
  /** The emulation (latency, loss, pairs, congestion control …). */
  emulation?: EmulationSpec;
  /**
   * The emulator, the server and a watchdog that removes the namespaces end with this process
   * (none: they run until `network down`).
   */
  ownerPid?: number;
  /** The network's state: `processes`, `netns`, `emulation` and `server` are filled in. */
  state: Pick<NetworkState, "processes" | "netns" | "emulation" | "server">;
  /** Writes the state (called after every change, so `network down` finds what was started). */
  save: () => Promise<void>;
}

/** What {@linkcode startTorHosts} made. */
export interface TorHostsStep {
  /** The namespaces. */
  hosts: NetnsHosts;
  /** How the links are emulated. */
  emulation: EmulationState;
  /** The web server's base URL (on the `server` host). */
  server: string;
  /** A host by name (throws for an unknown one). */
  host(name: string): NetnsHost;
  /**
   * Also SIGKILLed by the watchdog when the owner dies (processes outside the namespaces'
   * removal, e.g. charons): appends their pids to the watchdog's list.
   */
  killOnOwnerExit(pids: number[]): Promise<void>;
}

/**
 * The shared first step of a C tor network on emulated hosts (`startTorOnEmulatedHosts`, and
 * `network up --ctor --netns` with relays of ours on hosts of their own): a namespace per host
 * (relay1..N, the extra hosts, server, client), the user-space emulator between them, TCP
 * congestion control, a watchdog (with an owner) and the web server on the `server` host.
 * The caller stops what the state lists on failure (`networkDown` or `stopProcesses` and
 * `destroyHosts(state.netns)`).
 */
export async function startTorHosts(o: TorHostsOptions): Promise<TorHostsStep> {
  const { dir, state, save, ownerPid } = o;
  if (!(await probeNetns()).netns) {
    throw new Error("C tor in namespaces needs root and iproute2 (ip netns add failed)");
  }
  await Deno.mkdir(dir, { recursive: true });
  const relayNames = Array.from({ length: o.relays }, (_, i) => `relay${i + 1}`);
  const hosts = await createHosts(dir, [
    ...relayNames,
    ...(o.extraHosts ?? []),
    "server",
    "client",
  ], { links: "emulated" });
  state.netns = hosts;
  const processes = state.processes;
  const host = (name: string) => {
    const h = hosts.hosts.find((x) => x.name === name);
    if (!h) throw new RangeError(`no host ${name} in ${hosts.tag}`);
    return h;
  };
  await save();
  const rates: EmulationSpec["hosts"] = {};
  for (const [name, r] of Object.entries(o.hostRates ?? {})) {
    if (r) rates[name] = { bandwidth: r };
  }
  const spec: EmulationSpec = { ...o.emulation, hosts: { ...rates, ...o.emulation?.hosts } };
  const em = await prepareEmulator(dir, hosts, { spec, ...(ownerPid ? { ownerPid } : {}) });
  const elog = `${em.stateDir}/emulator.log`;
  const epid = await spawnLogged(
    ["nice", "-n", "-10", ...selfCommand(), "network", "emulate", "--config", em.config],
    elog,
  );
  processes.push({ name: "emulator", pid: epid, log: elog });
  const emulation: EmulationState = {
    ...em.state,
    pid: epid,
    notes: [
      o.extraHosts?.length
        ? `hosts in network namespaces ${hosts.tag}-* (C tor's relay1..${o.relays}, ${
          o.extraHosts.join(", ")
        }, server, client), linked only through the user-space emulator (a TUN device per host)`
        : `C tor's hosts in network namespaces ${hosts.tag}-*, linked only through the user-space emulator (a TUN device per host), the same host names and spec as our arms`,
    ],
  };
  emulation.notes.push(emulationSummary(emulation));
  state.emulation = emulation;
  await save();
  await waitFor(
    "the emulator",
    () => Deno.stat(`${em.stateDir}/ready`).then(() => true, () => undefined),
    () => isAlive(epid),
    elog,
  );
  emulation.notes.push(
    `TCP congestion control in every host: ${await setCongestion(hosts, spec.tcpCongestion)}`,
  );
  // Namespaces outlive a killed owner: a watchdog removes them (as `network up`'s does) and
  // kills what is listed in its file (the emulator, and what the caller adds).
  const killList = `${Deno.realPathSync(dir)}/watchdog.pids`;
  await Deno.writeTextFile(killList, `${epid}\n`);
  if (ownerPid) {
    const script = [
      `while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done`,
      `kill -9 $(cat ${shellQuote(killList)}) 2>/dev/null`,
      ...hosts.hosts.map((h) => `ip netns del ${h.ns} 2>/dev/null`),
      `ip link del ${hosts.tag}r 2>/dev/null`,
      "true",
    ].join("; ");
    const wlog = `${dir}/watchdog.log`;
    processes.push({
      name: "watchdog",
      pid: await spawnLogged(["sh", "-c", script], wlog),
      log: wlog,
    });
    await save();
  }
  // The web server on the server host.
  const server = host("server");
  const slog = `${dir}/server.log`;
  await Deno.remove(slog).catch(() => {});
  const spid = await spawnLogged([
    "ip",
    "netns",
    "exec",
    server.ns,
    ...selfCommand(),
    "serve",
    "--address",
    server.address,
    ...(ownerPid ? ["--exit-with", String(ownerPid)] : []),
  ], slog);
  processes.push({ name: "server", pid: spid, log: slog });
  await save();
  state.server = await waitFor(
    "the server",
    async () => {
      const line = (await Deno.readTextFile(slog).catch(() => "")).split("\n")
        .find((l) => l.startsWith("{"));
      return line ? (JSON.parse(line) as { server: string }).server : undefined;
    },
    () => isAlive(spid),
    slog,
  );
  await save();
  return {
    hosts,
    emulation,
    server: state.server,
    host,
    killOnOwnerExit: (pids) =>
      Deno.writeTextFile(killList, pids.map((p) => `${p}\n`).join(""), { append: true }),
  };
}

/** Starts the hosts, the emulator, the server and C tor; on any failure stops all of it. */
export async function startTorOnEmulatedHosts(o: TorOnHostsOptions): Promise<TorOnHosts> {
  const { dir, relays: n } = o;
  const ownerPid = o.ownerPid ?? Deno.pid;
  await Deno.mkdir(dir, { recursive: true });
  const relayNames = Array.from({ length: n }, (_, i) => `relay${i + 1}`);
  const processes: ProcessInfo[] = [];
  const state: NetworkState = {
    socks: "",
    server: "",
    relays: [],
    processes,
    dir,
    directory: "",
    streams: "",
    started: new Date().toISOString(),
  };
  const save = () =>
    Deno.writeTextFile(`${dir}/state.json.tmp`, JSON.stringify(state, null, 2) + "\n")
      .then(() => Deno.rename(`${dir}/state.json.tmp`, `${dir}/state.json`));
  let tor: TorTestnet | undefined;
  const stop = async () => {
    await tor?.stop();
    await networkDown(dir).catch(() => {});
    if (state.netns) await destroyHosts(state.netns);
  };
  try {
    await save();
    // The same spec our arms' `network up` builds: relay host rates under the scenario's.
    const hostRates: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = o.bandwidths?.[i];
      if (r) hostRates[`relay${i + 1}`] = r;
    }
    const step = await startTorHosts({
      dir,
      relays: n,
      hostRates,
      ...(o.emulation ? { emulation: o.emulation } : {}),
      ownerPid,
      state,
      save,
    });
    const { hosts, emulation, host } = step;
    const server = host("server");
    // Fresh keys and data directories each time (tor-gencert refuses to overwrite).
    for (const d of [`${dir}/tor`, `${dir}/tor-retry2`]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
    tor = await startTorTestnet({
      ...o.tor,
      dir: `${dir}/tor`,
      relays: n,
      hosts: { relays: relayNames.map(host), client: host("client") },
      exitAccept: [`${server.address}:*`],
      ...(o.readyFetch === false ? {} : { readyUrl: `${state.server}/bytes/1KiB` }),
    });
    state.socks = tor.socks;
    state.relays = tor.relays.map((r, i) => ({
      nickname: r.nickname,
      address: host(relayNames[i]!).address,
      orPort: r.orPort,
      transports: ["tor"],
      pid: r.pid,
      fingerprint: r.fingerprint,
    }));
    processes.push(
      ...tor.relays.map((r) => ({
        name: r.nickname,
        pid: r.pid,
        log: `${tor!.dir}/${r.nickname}/notice.log`,
      })),
      { name: "client", pid: tor.clientPid, log: `${tor.dir}/client/notice.log` },
    );
    await save();
    await Deno.writeTextFile(`${dir}/emulation.json`, JSON.stringify(emulation, null, 2) + "\n");
    return { tor, server: state.server, hosts, emulation, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
