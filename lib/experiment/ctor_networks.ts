/**
 * The emulated network of a C tor network experiment (lib/experiment/ctor_run.ts), hop by
 * hop, so that the arms differ only in the relays under test:
 *
 * * **Slots.** A circuit runs client → A → B → C → server. With the pair under test at
 *   middle–exit, A is C tor's guard (host relay1, shared by every arm) and B, C are the arm's
 *   pair; at guard–middle, A, B are the pair and C is C tor's exit (host relay4). The pair's
 *   hosts are `relay2`/`relay3` (arm ctor), `ours1`/`ours2` (ours-tor), `ours3`/`ours4`
 *   (ours-pctcp).
 * * **The scenario's per-pair settings** name our own networks' hosts along its `path`
 *   (relay1 → relay2 → relay3): the i-th relay of the path is slot A, B, C here. A pair's
 *   setting is applied to every arm's hosts of those slots, so every arm's circuit sees the
 *   same latency and loss hop by hop.
 * * **Sampled networks** (`--networks K`): network k draws, from its own seed, each hop's
 *   one-way latency and loss and the pair's host rate from the scenario's `sample`
 *   distributions (uniform between the bounds given); the scenario's uniform settings stay on
 *   every other path (directory traffic).
 * * **A check** of the emulator's resolved network before anything is measured: only the
 *   pairs' hosts are rate-limited, all at the same rate, and every arm's circuit has the same
 *   latency and loss hop by hop ({@linkcode checkArmsAlike}).
 * @module
 */

import type { EmulationSpec, NetworkDescription, PairSpec, Quantity } from "../emulate/config.ts";
import { parseDuration, parseLoss, parseRate } from "../emulate/units.ts";
import { seededRandom } from "../util/random.ts";

/** An arm of a C tor network experiment. */
export type CtorArm = "ctor" | "ours-tor" | "ours-pctcp";
/** Where the pair under test sits. */
export type PairPositions = "middle-exit" | "guard-middle";

/** The hosts of each arm's pair (first, second on the path). */
export const PAIR_HOSTS: Record<CtorArm, [string, string]> = {
  "ctor": ["relay2", "relay3"],
  "ours-tor": ["ours1", "ours2"],
  "ours-pctcp": ["ours3", "ours4"],
};

/** The slots of a circuit, client to server. */
export const SLOTS = ["client", "A", "B", "C", "server"] as const;
/** A slot. */
export type Slot = typeof SLOTS[number];

/** The host of `slot` on `arm`'s circuit. */
export function slotHost(slot: Slot, arm: CtorArm, positions: PairPositions): string {
  const [x, y] = PAIR_HOSTS[arm];
  if (slot === "client" || slot === "server") return slot;
  if (positions === "middle-exit") return slot === "A" ? "relay1" : slot === "B" ? x : y;
  return slot === "A" ? x : slot === "B" ? y : "relay4";
}

/** The distributions a sampled network is drawn from (scenario field `sample`). */
export interface NetworkDistribution {
  /** One-way latency of each hop of the circuit, uniform in [lo, hi]. */
  latency?: [Quantity, Quantity];
  /** Loss of each hop, uniform in [lo, hi]. */
  loss?: [Quantity, Quantity];
  /** The pair's hosts' rate (each way), uniform in [lo, hi]. */
  rate?: [Quantity, Quantity];
}

/** One hop of the circuit as emulated. */
export interface Hop {
  /** From slot … to slot. */
  from: Slot;
  to: Slot;
  /** One-way latency, ms. */
  latencyMs?: number;
  /** Loss probability. */
  loss?: number;
}

/** What one network is: its hops and the pair's rate. */
export interface NetworkDraw {
  /** 1-based. */
  network: number;
  /** The seed it was drawn from (0: not sampled, the scenario's own). */
  seed: number;
  /** Hops with a setting of their own (the scenario's, or drawn). */
  hops: Hop[];
  /** The pair's hosts' rate, bytes/s. */
  rateBps: number;
  /** In words. */
  words: string;
}

const HOPS: [Slot, Slot][] = [["client", "A"], ["A", "B"], ["B", "C"], ["C", "server"]];

const ms = parseDuration, lossOf = parseLoss, rateOf = parseRate;

function words(d: Omit<NetworkDraw, "words">, uniform: EmulationSpec): string {
  const lat = uniform.latency !== undefined ? ms(uniform.latency) : 0;
  const loss = uniform.loss !== undefined ? lossOf(uniform.loss) : 0;
  const hop = (h: [Slot, Slot]) => {
    const x = d.hops.find((y) => y.from === h[0] && y.to === h[1]);
    const l = x?.latencyMs ?? lat, p = x?.loss ?? loss;
    return `${h[0]}→${h[1]} ${Number(l.toFixed(1))} ms${
      p ? ` ${Number((p * 100).toFixed(2))} %` : ""
    }`;
  };
  return `network ${d.network}${d.seed ? ` (seed ${d.seed})` : ""}: one way ${
    HOPS.map(hop).join(", ")
  }; the pair's hosts at ${Number((d.rateBps / 1048576).toFixed(2))} MiB/s`;
}

/**
 * The scenario's own network (no sampling): its per-pair settings along `path` mapped to the
 * slots (pairs naming other hosts are returned apart, unapplied).
 */
export function scenarioNetwork(
  o: { pairs?: PairSpec[]; path?: string[]; rateBps: number; uniform: EmulationSpec },
): { draw: NetworkDraw; unapplied: PairSpec[] } {
  const path = o.path ?? ["relay1", "relay2", "relay3"];
  const slotOf = (name: string): Slot | undefined =>
    name === "client" || name === "server" ? name : (["A", "B", "C"] as const)[path.indexOf(name)];
  const hops: Hop[] = [];
  const unapplied: PairSpec[] = [];
  for (const p of o.pairs ?? []) {
    const a = slotOf(p.a), b = slotOf(p.b);
    const i = HOPS.findIndex(([x, y]) => (x === a && y === b) || (x === b && y === a));
    if (!a || !b || i < 0 || p.oneWay || p.jitter !== undefined) {
      unapplied.push(p);
      continue;
    }
    const [from, to] = HOPS[i]!;
    hops.push({
      from,
      to,
      ...(p.latency !== undefined ? { latencyMs: ms(p.latency) } : {}),
      ...(p.loss !== undefined ? { loss: lossOf(p.loss) } : {}),
    });
  }
  const d = { network: 1, seed: 0, hops, rateBps: o.rateBps };
  return { draw: { ...d, words: words(d, o.uniform) }, unapplied };
}

/** Network `k` (1-based) drawn from `dist` with a seed of its own (`seed` and `k`). */
export function sampleNetwork(
  dist: NetworkDistribution,
  k: number,
  seed: number,
  o: { rateBps: number; uniform: EmulationSpec },
): NetworkDraw {
  const netSeed = seed * 1000 + k;
  const rnd = seededRandom(netSeed);
  const between = (lo: number, hi: number) => lo + (hi - lo) * rnd();
  const hops: Hop[] = HOPS.map(([from, to]) => {
    const h: Hop = { from, to };
    if (dist.latency) {
      h.latencyMs = Math.round(between(ms(dist.latency[0]), ms(dist.latency[1])) * 10) / 10;
    }
    if (dist.loss) {
      h.loss = Math.round(between(lossOf(dist.loss[0]), lossOf(dist.loss[1])) * 1e5) / 1e5;
    }
    return h;
  });
  const rateBps = dist.rate
    ? Math.round(between(rateOf(dist.rate[0]), rateOf(dist.rate[1])))
    : o.rateBps;
  const d = { network: k, seed: netSeed, hops, rateBps };
  return { ...d, words: words(d, o.uniform) };
}

/** The emulator's per-pair settings of a network: every arm's hosts of each hop. */
export function networkPairs(
  draw: NetworkDraw,
  positions: PairPositions,
  arms: readonly CtorArm[] = ["ctor", "ours-tor", "ours-pctcp"],
): PairSpec[] {
  const out: PairSpec[] = [];
  const seen = new Set<string>();
  for (const h of draw.hops) {
    if (h.latencyMs === undefined && h.loss === undefined) continue;
    for (const arm of arms) {
      const a = slotHost(h.from, arm, positions), b = slotHost(h.to, arm, positions);
      const key = [a, b].sort().join("|");
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        a,
        b,
        ...(h.latencyMs !== undefined ? { latency: h.latencyMs } : {}),
        ...(h.loss !== undefined ? { loss: h.loss } : {}),
      });
    }
  }
  return out;
}

/** The host rates of a network: the pairs' hosts only. */
export function networkHostRates(
  draw: NetworkDraw,
  arms: readonly CtorArm[] = ["ctor", "ours-tor", "ours-pctcp"],
): Record<string, number> {
  return Object.fromEntries(arms.flatMap((a) => PAIR_HOSTS[a].map((h) => [h, draw.rateBps])));
}

/**
 * Checks the emulator's resolved network: only the pairs' hosts rate-limited (each way, at
 * `rateBps`), and each arm's circuit alike hop by hop (latency and loss, both ways). Returns
 * the problems (none: the arms differ only in their pair's relays).
 */
export function checkArmsAlike(
  net: NetworkDescription,
  positions: PairPositions,
  rateBps: number,
  arms: readonly CtorArm[] = ["ctor", "ours-tor", "ours-pctcp"],
): string[] {
  const problems: string[] = [];
  const pairHosts = new Set(arms.flatMap((a) => PAIR_HOSTS[a]));
  for (const h of net.hosts) {
    if (h.name === "root") continue;
    const limited = h.up !== null || h.down !== null;
    if (pairHosts.has(h.name)) {
      if (
        h.up === null || h.down === null || Math.abs(h.up - rateBps) > 1 ||
        Math.abs(h.down - rateBps) > 1
      ) {
        problems.push(`pair host ${h.name} at ${h.up}/${h.down} B/s, not ${rateBps}`);
      }
    } else if (limited) {
      problems.push(`host ${h.name} is rate-limited (${h.up}/${h.down} B/s) but is not a pair's`);
    }
  }
  for (const h of pairHosts) {
    if (!net.hosts.some((x) => x.name === h)) problems.push(`no host ${h} in the emulator`);
  }
  const path = (from: string, to: string) => {
    const p = net.paths.find((x) => x.from === from && x.to === to);
    return `${p?.latency_ms ?? 0} ms, loss ${p?.loss ?? 0}, jitter ${p?.jitter_ms ?? 0}`;
  };
  for (const [from, to] of HOPS) {
    for (const dir of [[from, to], [to, from]] as const) {
      const seen = arms.map((a) =>
        path(slotHost(dir[0], a, positions), slotHost(dir[1], a, positions))
      );
      if (new Set(seen).size > 1) {
        problems.push(
          `hop ${dir[0]}→${dir[1]} differs between arms: ${
            arms.map((a, i) => `${a} ${seen[i]}`).join("; ")
          }`,
        );
      }
    }
  }
  return problems;
}
