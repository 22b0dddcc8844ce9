/**
 * One model of an emulated network, configured three ways: uniform flags (`--latency 40ms
 * --jitter 5ms --loss 1% --bandwidth 20Mbit`), per host and per pair fields (scenario files,
 * JSON topologies), or Shadow's GML graph with hosts attached to its nodes. `resolveNetwork`
 * turns any of them into per-host bandwidths and queues and per-pair one-way paths.
 *
 * Precedence, later wins: uniform defaults → the GML graph (node bandwidths, shortest paths) →
 * `hosts` → `pairs`.
 * @module
 */

import { builtinNames, readBuiltin } from "../util/builtin.ts";
import { graphPaths, type NetworkGraph, parseNetworkGraph } from "./gml.ts";
import { parseDuration, parseLoss, parseRate } from "./units.ts";

/** A quantity as a number (ms, bytes/s, fraction) or as text (`40ms`, `20Mbit`, `1%`). */
export type Quantity = number | string;

/** Per-host settings. */
export interface HostSpec {
  /** Upload (send) rate. */
  up?: Quantity;
  /** Download (receive) rate. */
  down?: Quantity;
  /** Both directions' rate (up/down override it). */
  bandwidth?: Quantity;
  /** The GML node this host attaches to. */
  node?: number;
}

/** Per-pair settings (one-way, both directions unless `oneWay`). */
export interface PairSpec {
  /** One host. */
  a: string;
  /** The other. */
  b: string;
  /** One-way latency. */
  latency?: Quantity;
  /** Jitter (uniform ±, never reordering). */
  jitter?: Quantity;
  /** Loss probability. */
  loss?: Quantity;
  /** Only a → b. */
  oneWay?: boolean;
}

/** An emulation as configured (scenario field `emulation`, `--topology FILE.json`, flags). */
export interface EmulationSpec {
  /** One-way latency between any two hosts. */
  latency?: Quantity;
  /** Jitter on every path. */
  jitter?: Quantity;
  /** Loss on every path. */
  loss?: Quantity;
  /**
   * Mean length of a loss burst in packets: above 1, loss follows a Gilbert-Elliott chain
   * (a bad state that drops everything, entered so that the mean loss is `loss`).
   */
  lossBurst?: number;
  /** Up and down rate of every host. */
  bandwidth?: Quantity;
  /** Drop-tail queue per host and direction: a time at the rate (`100ms`) or bytes (`64KiB`). */
  queue?: Quantity;
  /** A Shadow GML graph file (relative paths from the file that names it). */
  topology?: string;
  /** Shadow's `use_shortest_path` (default true). */
  useShortestPath?: boolean;
  /** Per host. */
  hosts?: Record<string, HostSpec>;
  /** Per pair. */
  pairs?: PairSpec[];
  /** PRNG seed for loss and jitter. */
  seed?: number;
  /**
   * TCP congestion control of every host (`sysctl net.ipv4.tcp_congestion_control` in each
   * namespace: cubic, bbr, reno); default: the kernel's (bbr on this machine).
   */
  tcpCongestion?: string;
  /** Where the numbers come from (kept with the results). */
  sources?: string[];
  /** What it is. */
  description?: string;
}

/** A host's access link as resolved. */
export interface ResolvedHost {
  /** Host name. */
  name: string;
  /** Bytes/s sent (Infinity: unlimited). */
  upBps: number;
  /** Bytes/s received. */
  downBps: number;
  /** Drop-tail queue limit per direction, bytes (Infinity when the rate is unlimited). */
  upQueueBytes: number;
  /** Same for download. */
  downQueueBytes: number;
}

/** A one-way path as resolved. */
export interface ResolvedPath {
  /** One-way latency, ms. */
  latencyMs: number;
  /** Jitter amplitude, ms. */
  jitterMs: number;
  /** Mean loss probability. */
  loss: number;
  /** Mean loss burst length (packets); 1 = Bernoulli. */
  lossBurst: number;
}

/** The network the emulator runs. */
export interface ResolvedNetwork {
  /** Hosts in order (index = host id in the model). */
  hosts: ResolvedHost[];
  /** paths[i][j]: from host i to host j. */
  paths: ResolvedPath[][];
  /** PRNG seed. */
  seed: number;
}

/** Queue default: what the link sends in this long. */
export const DEFAULT_QUEUE_MS = 100;
/** Smallest queue: a few full-size packets. */
const MIN_QUEUE_BYTES = 4 * 1500;

function queueBytes(q: Quantity | undefined, rate: number): number {
  if (!Number.isFinite(rate)) return Infinity;
  if (q === undefined) return Math.max(MIN_QUEUE_BYTES, (rate * DEFAULT_QUEUE_MS) / 1000);
  if (typeof q === "string" && /b$/i.test(q.trim())) return parseRate(q);
  return Math.max(MIN_QUEUE_BYTES, (rate * parseDuration(q)) / 1000);
}

/** A topology file's text: the file, else the built-in topology of that name (`four-cities`,
 * `four-cities.gml`; measurements/topologies/, embedded in the program). */
async function readTopologyFile(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    const name = path.startsWith("builtin:") ? path.slice(8) : path;
    return await readBuiltin("topologies", name) ?? await readBuiltin("topologies", `${name}.json`);
  }
}

/** Loads a GML graph file. */
export async function loadGraph(path: string): Promise<NetworkGraph> {
  const text = await readTopologyFile(path);
  if (text === undefined) throw new Error(`no network graph at ${path}`);
  return parseNetworkGraph(text);
}

/**
 * Reads `--topology FILE`: a `.gml` graph (hosts attached to its nodes in order, node ids
 * sorted, wrapping around) or a `.json` EmulationSpec (its `topology` relative to it).
 */
export async function loadTopology(path: string): Promise<EmulationSpec> {
  if (/\.gml$/i.test(path)) return { topology: path };
  let spec: EmulationSpec;
  try {
    const text = await readTopologyFile(path);
    if (text === undefined) {
      throw new Error(
        `no such file or built-in topology (${builtinNames("topologies").join(", ")})`,
      );
    }
    spec = JSON.parse(text);
    // A built-in spec names its graph beside it, built in too.
    if (!(await Deno.stat(path).then(() => true, () => false))) {
      return spec.topology && !spec.topology.startsWith("/")
        ? { ...spec, topology: `builtin:${spec.topology}` }
        : spec;
    }
  } catch (e) {
    throw new SyntaxError(`topology ${path} is not readable JSON: ${(e as Error).message}`);
  }
  return withBase(spec, path);
}

/** Makes a spec's `topology` path absolute, relative to the file the spec came from. */
export function withBase(spec: EmulationSpec, file: string): EmulationSpec {
  if (!spec.topology || spec.topology.startsWith("/")) return spec;
  const base = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "./";
  return { ...spec, topology: base + spec.topology };
}

/** Layers specs: later fields win; hosts merge per host; pairs append. */
export function mergeSpecs(...specs: (EmulationSpec | undefined)[]): EmulationSpec {
  const out: EmulationSpec = {};
  for (const s of specs) {
    if (!s) continue;
    const { hosts, pairs, ...rest } = s;
    Object.assign(out, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
    if (hosts) {
      out.hosts ??= {};
      for (const [k, v] of Object.entries(hosts)) out.hosts[k] = { ...out.hosts[k], ...v };
    }
    if (pairs) out.pairs = [...(out.pairs ?? []), ...pairs];
  }
  return out;
}

/**
 * Resolves a spec for the given hosts. `unshaped` hosts (the root namespace, where the
 * measuring tool sits beside the client like a browser beside its Tor) get unlimited links and
 * zero-delay paths unless a pair names them.
 */
export function resolveNetwork(
  spec: EmulationSpec,
  names: string[],
  options: { graph?: NetworkGraph; unshaped?: string[] } = {},
): ResolvedNetwork {
  const unshaped = new Set(options.unshaped ?? []);
  const rate = spec.bandwidth === undefined ? Infinity : parseRate(spec.bandwidth);
  const base: ResolvedPath = {
    latencyMs: spec.latency === undefined ? 0 : parseDuration(spec.latency),
    jitterMs: spec.jitter === undefined ? 0 : parseDuration(spec.jitter),
    loss: spec.loss === undefined ? 0 : parseLoss(spec.loss),
    lossBurst: spec.lossBurst ?? 1,
  };
  if (!(base.lossBurst >= 1)) throw new RangeError(`lossBurst must be ≥ 1: ${base.lossBurst}`);
  for (const h of Object.keys(spec.hosts ?? {})) {
    if (!names.includes(h)) {
      throw new RangeError(
        `emulation names host ${h}, which is not in the network (${names.join(", ")})`,
      );
    }
  }
  const g = options.graph;
  const nodeOf = new Map<string, number>();
  if (g) {
    const ids = [...g.nodes.keys()].sort((a, b) => a - b);
    let k = 0;
    for (const n of names) {
      if (unshaped.has(n)) continue;
      const want = spec.hosts?.[n]?.node;
      if (want !== undefined && !g.nodes.has(want)) {
        throw new RangeError(`host ${n}: no node ${want} in the graph`);
      }
      nodeOf.set(n, want ?? ids[k++ % ids.length]!);
    }
  }
  const gp = g
    ? graphPaths(g, [...nodeOf.values()], { useShortestPath: spec.useShortestPath ?? true })
    : undefined;
  const hosts: ResolvedHost[] = names.map((name) => {
    if (unshaped.has(name) && !spec.hosts?.[name]) {
      return {
        name,
        upBps: Infinity,
        downBps: Infinity,
        upQueueBytes: Infinity,
        downQueueBytes: Infinity,
      };
    }
    const node = nodeOf.has(name) ? g!.nodes.get(nodeOf.get(name)!) : undefined;
    const h = spec.hosts?.[name] ?? {};
    const both = h.bandwidth === undefined ? undefined : parseRate(h.bandwidth);
    const upBps = h.up !== undefined ? parseRate(h.up) : both ?? node?.up ?? rate;
    const downBps = h.down !== undefined ? parseRate(h.down) : both ?? node?.down ?? rate;
    return {
      name,
      upBps,
      downBps,
      upQueueBytes: queueBytes(spec.queue, upBps),
      downQueueBytes: queueBytes(spec.queue, downBps),
    };
  });
  const zero: ResolvedPath = { latencyMs: 0, jitterMs: 0, loss: 0, lossBurst: 1 };
  const paths = names.map((a) =>
    names.map((b): ResolvedPath => {
      if (a === b) return zero;
      if (unshaped.has(a) || unshaped.has(b)) return zero;
      const p = gp?.get(`${nodeOf.get(a)}>${nodeOf.get(b)}`);
      return p ? { ...p, lossBurst: base.lossBurst } : { ...base };
    })
  );
  for (const p of spec.pairs ?? []) {
    const i = names.indexOf(p.a), j = names.indexOf(p.b);
    if (i < 0 || j < 0) {
      throw new RangeError(`emulation pair ${p.a}–${p.b} names a host not in the network`);
    }
    for (const [x, y] of p.oneWay ? [[i, j]] : [[i, j], [j, i]]) {
      const cur = paths[x!]![y!]!;
      paths[x!]![y!] = {
        latencyMs: p.latency === undefined ? cur.latencyMs : parseDuration(p.latency),
        jitterMs: p.jitter === undefined ? cur.jitterMs : parseDuration(p.jitter),
        loss: p.loss === undefined ? cur.loss : parseLoss(p.loss),
        lossBurst: cur.lossBurst,
      };
    }
  }
  return { hosts, paths, seed: spec.seed ?? 1 };
}

/** A resolved network as `status --json` and experiment folders print it. */
export interface NetworkDescription {
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
}

/** A summary of a resolved network for `status --json` and experiment folders. */
export function describeNetwork(net: ResolvedNetwork): NetworkDescription {
  const fin = (x: number) => (Number.isFinite(x) ? Math.round(x) : null);
  return {
    hosts: net.hosts.map((h) => ({
      name: h.name,
      up: fin(h.upBps),
      down: fin(h.downBps),
      queue_bytes: fin(h.upQueueBytes),
    })),
    paths: net.hosts.flatMap((a, i) =>
      net.hosts.flatMap((b, j) => {
        const p = net.paths[i]![j]!;
        if (i === j || (p.latencyMs === 0 && p.loss === 0 && p.jitterMs === 0)) return [];
        return [{
          from: a.name,
          to: b.name,
          latency_ms: p.latencyMs,
          jitter_ms: p.jitterMs,
          loss: p.loss,
          loss_burst: p.lossBurst,
        }];
      })
    ),
  };
}
