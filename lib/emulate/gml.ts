/**
 * Shadow's network graph (GML) and its routing semantics, so graphs made for Shadow or by
 * tornettools can be reused. From Shadow's "Network Graph Specification" and
 * src/main/network/graph/mod.rs:
 *
 * - `graph [ directed 0|1 node [...] edge [...] ]`; undirected by default.
 * - Nodes: `id` (required), `host_bandwidth_down` / `host_bandwidth_up` (strings like
 *   `"100 Mbit"`), the bandwidth of every host attached to the node.
 * - Edges: `source`, `target`, `latency` (a string, required, not zero), `jitter` (string,
 *   default 0), `packet_loss` (a float in [0, 1], default 0).
 * - Paths between two nodes: Dijkstra weighted by latency (ties by lower loss); along a path
 *   latencies add and losses combine as 1 − ∏(1 − pᵢ). Two hosts on one node use that
 *   node's self-loop, which must exist. With `useShortestPath: false` every pair needs a
 *   direct edge (exactly one).
 *
 * Jitter: Shadow reads it but does not apply it; we add the jitters along a path and apply
 * them (without reordering).
 * @module
 */

import { parseDuration, parseRate } from "./units.ts";

/** A GML value. */
export type GmlValue = number | string | GmlList;
/** A GML list: key/value pairs in order (keys repeat: `node [...] node [...]`). */
export type GmlList = [string, GmlValue][];

/** Parses GML text into nested key/value lists; a SyntaxError names the line. */
export function parseGmlText(text: string): GmlList {
  const tokens: { t: string; line: number; quoted: boolean }[] = [];
  let line = 1;
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "[" || c === "]") {
      tokens.push({ t: c, line, quoted: false });
      i++;
    } else if (c === '"') {
      const j = text.indexOf('"', i + 1);
      if (j < 0) throw new SyntaxError(`GML line ${line}: unterminated string`);
      const s = text.slice(i + 1, j);
      tokens.push({ t: s, line, quoted: true });
      line += s.split("\n").length - 1;
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s\[\]"]/.test(text[j]!)) j++;
      tokens.push({ t: text.slice(i, j), line, quoted: false });
      i = j;
    }
  }
  let k = 0;
  const list = (closing: boolean): GmlList => {
    const out: GmlList = [];
    for (;;) {
      const key = tokens[k];
      if (!key) {
        if (closing) throw new SyntaxError("GML: missing ]");
        return out;
      }
      if (key.t === "]" && !key.quoted) {
        if (!closing) throw new SyntaxError(`GML line ${key.line}: unexpected ]`);
        k++;
        return out;
      }
      if (key.quoted || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key.t)) {
        throw new SyntaxError(`GML line ${key.line}: expected a key, got ${JSON.stringify(key.t)}`);
      }
      k++;
      const v = tokens[k];
      if (!v) throw new SyntaxError(`GML line ${key.line}: ${key.t} has no value`);
      k++;
      if (v.t === "[" && !v.quoted) out.push([key.t, list(true)]);
      else if (v.quoted) out.push([key.t, v.t]);
      else if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v.t)) out.push([key.t, Number(v.t)]);
      else throw new SyntaxError(`GML line ${v.line}: bad value ${JSON.stringify(v.t)}`);
    }
  };
  return list(false);
}

/** A node of a Shadow network graph. */
export interface GraphNode {
  /** GML id. */
  id: number;
  /** Label, if any. */
  label?: string;
  /** Bytes/s down (receive) for hosts on this node (Infinity if unset). */
  down: number;
  /** Bytes/s up (send). */
  up: number;
}

/** An edge (one direction of an undirected edge is stored once, `directed` says). */
export interface GraphEdge {
  /** Source node id. */
  source: number;
  /** Target node id. */
  target: number;
  /** One-way latency, ms. */
  latencyMs: number;
  /** Jitter, ms. */
  jitterMs: number;
  /** Loss probability. */
  loss: number;
}

/** A parsed network graph. */
export interface NetworkGraph {
  /** Whether edges are one-way. */
  directed: boolean;
  /** Nodes by id. */
  nodes: Map<number, GraphNode>;
  /** Edges. */
  edges: GraphEdge[];
}

/** Characteristics of the path from one node to another. */
export interface PathProperties {
  /** One-way latency, ms. */
  latencyMs: number;
  /** Jitter, ms (sum along the path). */
  jitterMs: number;
  /** Loss probability, 1 − ∏(1 − pᵢ). */
  loss: number;
}

function field(list: GmlList, key: string): GmlValue | undefined {
  return list.find(([k]) => k === key)?.[1];
}

/** Parses Shadow's GML network graph; errors name what is wrong (Shadow's rules). */
export function parseNetworkGraph(text: string): NetworkGraph {
  const top = parseGmlText(text);
  const g = field(top, "graph");
  if (!Array.isArray(g)) throw new SyntaxError("GML: no graph [ … ]");
  const directed = field(g, "directed") === 1;
  const nodes = new Map<number, GraphNode>();
  const edges: GraphEdge[] = [];
  const str = (v: GmlValue | undefined, what: string): string => {
    if (typeof v !== "string") throw new TypeError(`GML: ${what} is not a string`);
    return v;
  };
  for (const [k, v] of g) {
    if (k === "node") {
      if (!Array.isArray(v)) throw new TypeError("GML: node is not a list");
      const id = field(v, "id");
      if (typeof id !== "number" || !Number.isInteger(id)) {
        throw new TypeError("GML: node 'id' was not provided");
      }
      if (nodes.has(id)) throw new TypeError(`GML: node id ${id} appears twice`);
      const down = field(v, "host_bandwidth_down");
      const up = field(v, "host_bandwidth_up");
      const label = field(v, "label");
      nodes.set(id, {
        id,
        ...(typeof label === "string" ? { label } : {}),
        down: down === undefined ? Infinity : parseRate(str(down, "host_bandwidth_down")),
        up: up === undefined ? Infinity : parseRate(str(up, "host_bandwidth_up")),
      });
    } else if (k === "edge") {
      if (!Array.isArray(v)) throw new TypeError("GML: edge is not a list");
      const source = field(v, "source"), target = field(v, "target");
      if (typeof source !== "number" || typeof target !== "number") {
        throw new TypeError("GML: edge without numeric source and target");
      }
      const lat = field(v, "latency");
      if (lat === undefined) throw new TypeError(`GML: edge ${source}→${target}: no latency`);
      const latencyMs = parseDuration(str(lat, "edge 'latency'"));
      if (latencyMs === 0) throw new RangeError(`GML: edge ${source}→${target}: latency is 0`);
      const jit = field(v, "jitter");
      const loss = field(v, "packet_loss") ?? 0;
      if (typeof loss !== "number" || loss < 0 || loss > 1) {
        throw new RangeError(`GML: edge ${source}→${target}: packet_loss not in [0, 1]`);
      }
      edges.push({
        source,
        target,
        latencyMs,
        jitterMs: jit === undefined ? 0 : parseDuration(str(jit, "edge 'jitter'")),
        loss,
      });
    }
  }
  for (const e of edges) {
    for (const n of [e.source, e.target]) {
      if (!nodes.has(n)) throw new RangeError(`GML: edge names node ${n}, which does not exist`);
    }
  }
  return { directed, nodes, edges };
}

function edgesBetween(g: NetworkGraph, a: number, b: number): GraphEdge[] {
  return g.edges.filter((e) =>
    (e.source === a && e.target === b) || (!g.directed && e.source === b && e.target === a)
  );
}

function directEdge(g: NetworkGraph, a: number, b: number): PathProperties {
  const es = edgesBetween(g, a, b);
  if (es.length !== 1) {
    throw new RangeError(
      es.length
        ? `GML: more than one edge connecting node ${a} to ${b}`
        : `GML: no edge connecting node ${a} to ${b}`,
    );
  }
  const e = es[0]!;
  return { latencyMs: e.latencyMs, jitterMs: e.jitterMs, loss: e.loss };
}

/**
 * Path properties between every pair of the given nodes, with Shadow's semantics (see the
 * module doc). Returns a map keyed `"a>b"`.
 */
export function graphPaths(
  g: NetworkGraph,
  used: number[],
  options: { useShortestPath?: boolean } = {},
): Map<string, PathProperties> {
  const out = new Map<string, PathProperties>();
  const ids = [...new Set(used)];
  for (const id of ids) {
    if (!g.nodes.has(id)) throw new RangeError(`GML: no node ${id} in the graph`);
  }
  if (options.useShortestPath === false) {
    for (const a of ids) for (const b of ids) out.set(`${a}>${b}`, directEdge(g, a, b));
    return out;
  }
  const adj = new Map<number, GraphEdge[]>();
  for (const e of g.edges) {
    if (e.source === e.target) continue;
    adj.set(e.source, [...(adj.get(e.source) ?? []), e]);
    if (!g.directed) {
      adj.set(e.target, [...(adj.get(e.target) ?? []), {
        ...e,
        source: e.target,
        target: e.source,
      }]);
    }
  }
  const better = (x: PathProperties, y: PathProperties) =>
    x.latencyMs < y.latencyMs || (x.latencyMs === y.latencyMs && x.loss < y.loss);
  for (const src of ids) {
    // Dijkstra (the graphs are small: a linear scan for the minimum is enough).
    const best = new Map<number, PathProperties>([[src, { latencyMs: 0, jitterMs: 0, loss: 0 }]]);
    const done = new Set<number>();
    for (;;) {
      let u: number | undefined;
      for (const [n, p] of best) {
        if (!done.has(n) && (u === undefined || better(p, best.get(u)!))) u = n;
      }
      if (u === undefined) break;
      done.add(u);
      const pu = best.get(u)!;
      for (const e of adj.get(u) ?? []) {
        const cand = {
          latencyMs: pu.latencyMs + e.latencyMs,
          jitterMs: pu.jitterMs + e.jitterMs,
          loss: 1 - (1 - pu.loss) * (1 - e.loss),
        };
        const cur = best.get(e.target);
        if (!done.has(e.target) && (!cur || better(cand, cur))) best.set(e.target, cand);
      }
    }
    for (const dst of ids) {
      if (dst === src) {
        // Hosts on one node: that node's self-loop (Shadow requires exactly one).
        out.set(`${src}>${dst}`, directEdge(g, src, src));
        continue;
      }
      const p = best.get(dst);
      if (!p) {
        throw new RangeError(`GML: the graph is not connected: no path from node ${src} to ${dst}`);
      }
      out.set(`${src}>${dst}`, p);
    }
  }
  return out;
}
