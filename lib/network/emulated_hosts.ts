/**
 * The emulator under a network of hosts in namespaces: resolves the emulation spec for the
 * hosts (plus the root namespace, unshaped), writes the emulator's configuration, and reports
 * what ran (`emulation` in `network status --json` and in experiment folders).
 * @module
 */

import {
  describeNetwork,
  type EmulationSpec,
  type EmulatorConfig,
  loadGraph,
  type NetworkDescription,
  resolveNetwork,
} from "../emulate/mod.ts";
import { createHosts, destroyHosts, type NetnsHosts } from "./netns.ts";
import { runCommand } from "../util/command.ts";

/** Which engine emulates links. */
export type EmulationEngine = "userspace" | "netem" | "none";

/** How links are emulated, as `network status --json` prints it. */
export interface EmulationState extends NetworkDescription {
  /** The engine that ran: userspace (our TUN emulator), netem, or none (loopback). */
  engine: EmulationEngine;
  /** Whether the kernel has netem (probed). */
  netemAvailable: boolean;
  /** The emulator process (userspace). */
  pid?: number;
  /** Its folder: config.json, stats.json, log. */
  dir?: string;
  /** The spec as given (flags, scenario, topology). */
  spec?: EmulationSpec;
  /** Plain-language notes (what was used, what the kernel lacks). */
  notes: string[];
}

/** The name the root namespace has in the emulated network. */
export const ROOT_HOST = "root";

/** Options of `prepareEmulator`. */
export interface PrepareEmulatorOptions {
  /** The emulation (default: everything at zero). */
  spec?: EmulationSpec;
  /** The emulator exits when this process is gone. */
  ownerPid?: number;
}

/** Resolves the spec for these hosts and writes the emulator's config file; returns its path. */
export async function prepareEmulator(
  dir: string,
  hosts: NetnsHosts,
  options: PrepareEmulatorOptions = {},
): Promise<{ config: string; state: EmulationState; stateDir: string }> {
  const spec = options.spec ?? {};
  const ownerPid = options.ownerPid;
  const stateDir = `${Deno.realPathSync(dir)}/emulator`;
  await Deno.mkdir(stateDir, { recursive: true });
  await Deno.remove(`${stateDir}/ready`).catch(() => {});
  await Deno.remove(`${stateDir}/stats.json`).catch(() => {});
  const names = [...hosts.hosts.map((h) => h.name), ROOT_HOST];
  const graph = spec.topology ? await loadGraph(spec.topology) : undefined;
  const network = resolveNetwork(spec, names, {
    ...(graph ? { graph } : {}),
    unshaped: [ROOT_HOST],
  });
  const config: EmulatorConfig = {
    hosts: [
      ...hosts.hosts.map((h, i) => ({
        name: h.name,
        ns: h.ns,
        address: h.address,
        device: `${hosts.tag}t${i}`,
      })),
      { name: ROOT_HOST, address: hosts.rootAddress, device: `${hosts.tag}r` },
    ],
    prefixLength: 24,
    network,
    stateDir,
    ...(ownerPid ? { ownerPid } : {}),
  };
  // Infinity is not JSON: unlimited rates and queues travel as null.
  await Deno.writeTextFile(
    `${stateDir}/config.json`,
    JSON.stringify(config, (_k, v) => (v === Infinity ? null : v), 2) + "\n",
  );
  const d = describeNetwork(network);
  return {
    config: `${stateDir}/config.json`,
    stateDir,
    state: {
      engine: "userspace",
      netemAvailable: false,
      dir: stateDir,
      spec,
      hosts: d.hosts,
      paths: d.paths,
      notes: [],
    },
  };
}

/** Reads an emulator config file (nulls back to Infinity). */
export async function readEmulatorConfig(path: string): Promise<EmulatorConfig> {
  const c = JSON.parse(await Deno.readTextFile(path)) as EmulatorConfig;
  for (const h of c.network.hosts) {
    for (const k of ["upBps", "downBps", "upQueueBytes", "downQueueBytes"] as const) {
      if (h[k] === null) h[k] = Infinity;
    }
  }
  return c;
}

/**
 * Sets the TCP congestion control of every host (when asked) and says which one runs, e.g.
 * "cubic (asked)" or "bbr (kernel default)". A namespace may only make the algorithms of
 * `net.ipv4.tcp_allowed_congestion_control` its default (here reno and bbr), so the algorithm
 * is set on each route instead (`ip route … congctl`, which TCP applies to every connection
 * over it): the main table's routes, and table 220 (IPsec) if present — call again once the
 * IPsec routes exist.
 */
export async function setCongestion(
  hosts: NetnsHosts,
  algorithm?: string,
  only?: string[],
): Promise<string> {
  if (algorithm) {
    if (!/^[a-z0-9_]+$/.test(algorithm)) {
      throw new TypeError(`bad congestion control: ${algorithm}`);
    }
    for (const h of hosts.hosts.filter((x) => !only || only.includes(x.name))) {
      for (const table of ["main", "220"]) {
        const routes = await runCommand(
          ["ip", "-n", h.ns, "-4", "route", "show", "table", table],
          true,
        );
        for (const line of routes.split("\n").map((l) => l.trim()).filter(Boolean)) {
          if (line.includes(" congctl ")) continue;
          await runCommand([
            "ip",
            "-n",
            h.ns,
            "route",
            "replace",
            ...line.split(/\s+/),
            "table",
            table,
            "congctl",
            algorithm,
          ]);
        }
      }
    }
  }
  const first = hosts.hosts[0];
  const key = "net.ipv4.tcp_congestion_control";
  const def = first
    ? (await runCommand(["ip", "netns", "exec", first.ns, "sysctl", "-n", key], true)).trim()
    : "unknown";
  return algorithm
    ? `${algorithm} (asked; per route, kernel default ${def})`
    : `${def} (kernel default)`;
}

/** A one-line summary of the emulated links. */
export function emulationSummary(s: EmulationState): string {
  if (s.engine === "none") return s.notes.join("; ");
  const lat = s.paths.map((p) => p.latency_ms);
  const loss = s.paths.map((p) => p.loss);
  const rates = s.hosts.map((h) => h.up).filter((x): x is number => x !== null);
  const range = (xs: number[], f: (x: number) => string) =>
    xs.length
      ? (Math.min(...xs) === Math.max(...xs)
        ? f(xs[0]!)
        : `${f(Math.min(...xs))}–${f(Math.max(...xs))}`)
      : "0";
  return `${s.engine} emulator: one-way latency ${range(lat, (x) => `${x} ms`)}, loss ${
    range(loss, (x) => `${Number((x * 100).toFixed(3))} %`)
  }, host rates ${
    rates.length ? range(rates, (x) => `${Number((x * 8 / 1e6).toFixed(2))} Mbit/s`) : "unlimited"
  }`;
}

/** Hosts in namespaces linked by a running emulator process (for tests and benchmarks). */
export interface EmulatedHosts {
  /** The namespaces. */
  hosts: NetnsHosts;
  /** The emulator process. */
  emulator: Deno.ChildProcess;
  /** Its folder (stats.json). */
  stateDir: string;
  /** Stops the emulator and removes the namespaces. */
  close(): Promise<void>;
}

/** Options of `startEmulatedHosts`. */
export interface StartEmulatedHostsOptions {
  /** How to run this program (e.g. `selfCommand()` of the launcher). */
  command: string[];
  /** The emulation (default: everything at zero). */
  spec?: EmulationSpec;
}

/**
 * Creates namespaces `names` linked only through an emulator process, without relays or
 * servers (for tests and benchmarks).
 */
export async function startEmulatedHosts(
  dir: string,
  names: string[],
  options: StartEmulatedHostsOptions,
): Promise<EmulatedHosts> {
  const { command, spec = {} } = options;
  const hosts = await createHosts(dir, names, { links: "emulated" });
  let emulator: Deno.ChildProcess | undefined;
  const close = async () => {
    if (emulator) {
      try {
        emulator.kill("SIGTERM");
      } catch { /* gone */ }
      await emulator.status;
    }
    await destroyHosts(hosts);
  };
  try {
    // It exits with this process, even if this one is killed before close().
    const em = await prepareEmulator(dir, hosts, { spec, ownerPid: Deno.pid });
    emulator = new Deno.Command("nice", {
      args: ["-n", "-10", ...command, "network", "emulate", "--config", em.config],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const t0 = Date.now();
    for (;;) {
      if (await Deno.stat(`${em.stateDir}/ready`).then(() => true, () => false)) break;
      if (Date.now() - t0 > 20_000) throw new Error("emulator not ready after 20 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    return { hosts, emulator, stateDir: em.stateDir, close };
  } catch (e) {
    await close();
    throw e;
  }
}
