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
  resolveNetwork,
} from "../emulate/mod.ts";
import type { NetnsHosts } from "./netns.ts";

/** Which engine emulates links. */
export type EmulationEngine = "userspace" | "netem" | "none";

/** How links are emulated, as `network status --json` prints it. */
export interface EmulationState {
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
  /** Hosts' access links as resolved (bytes/s; null = unlimited). */
  hosts: { name: string; up: number | null; down: number | null; queue_bytes: number | null }[];
  /** One-way paths with delay or loss. */
  paths: {
    from: string;
    to: string;
    latency_ms: number;
    jitter_ms: number;
    loss: number;
    loss_burst: number;
  }[];
  /** Plain-language notes (what was used, what the kernel lacks). */
  notes: string[];
}

/** The name the root namespace has in the emulated network. */
export const ROOT_HOST = "root";

/** Resolves `spec` for these hosts and writes the emulator's config file; returns its path. */
export async function prepareEmulator(
  dir: string,
  hosts: NetnsHosts,
  spec: EmulationSpec,
  ownerPid?: number,
): Promise<{ config: string; state: EmulationState; stateDir: string }> {
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
