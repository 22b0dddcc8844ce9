/**
 * IMUX's transport (Geddes, Jansen & Hopper, "IMUX: Managing Tor Connections from Two to
 * Infinity, and Beyond", WPES 2014): several multiplexed connections per relay pair, as many
 * as the circuits between the pair call for within a share of the socket budget, so it keeps
 * most of PCTCP's isolation while a flood of circuits cannot exhaust the relay's sockets (the
 * paper's socket-exhaustion attack on PCTCP). A new circuit gets a connection of its own while
 * the budget lasts, else the pair's quietest; extra connections left without circuits close.
 *
 * Sources: the paper (§5, connection management and scheduling), and the authors' Tor fork,
 * `channelimux.c` (found through the code search; read for its rules, nothing copied):
 * `channel_imux_get_chan_max_connections` (the target), `channel_imux_housekeeping` (once a
 * second: open up to the target, close the newest surplus), `channel_imux_get_ewma_connection`
 * (EWMA mapping of circuits to connections).
 *
 * **The connection manager** ({@link imuxTarget}), as in the fork: a pair may have
 * `activeCircuits(pair) / activeCircuits(all) × budget` connections, at most twice what it
 * has now per pass, at most what the budget has left, at least one, at most `caps.perPeer`
 * (the fork's IMUXMaxConnections). Where we chose:
 * - `budget` is `caps.total` (multiplexed relay links in all: the fork's τ · ConnLimit, τ =
 *   IMUXConnLimitThreshold), and nothing is opened while the role's own socket budget is
 *   nearly spent (`socketsAvailable`, 90 % of the relay's fdBudget). The seam gives a
 *   transport that yes/no, not the relay's socket count.
 * - The target is also at most the pair's circuits plus one: a circuit stays on the
 *   connection it was placed on here (see below), so more than one connection per circuit
 *   would carry nothing; the one more is a spare, open ahead of the next circuit (as PCTCP's
 *   pre-opened link), so that circuit need not wait for a TCP and link handshake.
 * - A new circuit takes a connection with no circuit on it (the spare); else, while the
 *   target counting it allows one more, a connection opened for it (waited for); else the
 *   quietest (below). So while the budget lasts each circuit has a connection to itself, as
 *   under PCTCP, and past it circuits share, as under Tor. Placing circuits only on the
 *   connections already open let circuits built together all land on the first one (they
 *   stay there): in the first run of the quick interference experiment IMUX's web response
 *   p50 was −12 % against tor (CI −72 .. +3 %), PCTCP's −95 %; with this rule −95 % too.
 * - "Active circuits" are all circuits on the channels (both directions of a relay, as the
 *   fork counts n_circ_id and p_circ_id), not only those past an EWMA threshold.
 * - The manager runs when a circuit is placed (so connections follow circuits at once) and
 *   every `intervalMs` (default 1 s, the fork's housekeeping period).
 *
 * **Scheduling: EWMA placement, per circuit.** The fork can send each *cell* on any of the
 * pair's connections because it adds a sequence number to cells and reorders at the far end
 * (a link-protocol change). Our cells carry no sequence number, so a circuit's cells must stay
 * on one connection: a circuit is placed once, when it is built. Of the paper's schedulers we
 * take EWMA mapping (the circuit's EWMA rank picks the connection of the same rank by
 * connection EWMA) rather than round-robin, because at placement a new circuit has no cells
 * yet — rank zero — so EWMA mapping puts it on the connection with the lowest EWMA of recent
 * cells: new (mostly interactive) circuits keep away from connections busy with bulk ones,
 * which is the isolation the paper wants from several connections; round-robin would put
 * every n-th web circuit behind a bulk transfer. Ties (idle connections) go to the one with
 * fewest circuits. Connection EWMA counts cells both ways (the fork counts cells written; a
 * client's connection to its guard mostly receives) with the fork's half-life, 66 s.
 *
 * **Closing.** When a pair has more connections than its target, the newest ones this side
 * opened stop taking circuits (the fork's marked_for_close) and close once they have carried
 * no circuit for `idleMs`. The fork moves a closing connection's circuits elsewhere, which
 * needs the sequence numbers; ours drain instead. The pool's first shared link and links the
 * peer opened are never closed here (the relay's idle timer closes those, as Tor's does).
 *
 * Connections opened by either side count for the pair and carry circuits both ways, as a
 * Tor channel does. Peers whose directory entry lacks "imux" get the one shared link.
 * Circuits on IMUX connections are never "own": several share each connection.
 * @module
 */

import type { Channel } from "../channel/channel.ts";
import type { RelayEntry } from "../directory/document.ts";
import type { ChannelPool } from "./pool.ts";
import {
  type CircuitChannel,
  type CircuitTransport,
  SharedTransport,
  type TransportDefinition,
} from "./transport.ts";

/** Default caps on a relay pair's connections, and on multiplexed relay links in all. */
export const IMUX_DEFAULT_CAPS: Readonly<{ perPeer: number; total: number }> = {
  perPeer: 64,
  total: 2048,
};

/** A relay's or client's IMUX options (`options.imux`). */
export interface ImuxOptions {
  /**
   * Caps: connections to one peer (the fork's IMUXMaxConnections), and multiplexed relay
   * links in all, whose share each pair gets (default {@link IMUX_DEFAULT_CAPS}).
   */
  caps?: { perPeer: number; total: number };
  /** An extra connection over the target closes after carrying no circuit this long (default 10 s). */
  idleMs?: number;
  /** Period of the connection manager (default 1000 ms, the fork's housekeeping). */
  intervalMs?: number;
  /** Half-life of the connections' cell EWMA (default 66 s, the fork's EWMA_HALFLIFE). */
  halflifeMs?: number;
}

/** What the connection manager knows of one relay pair. */
export interface ImuxCounts {
  /** Circuits on the pair's connections (both directions). */
  pairCircuits: number;
  /** Circuits on all of this side's channels. */
  allCircuits: number;
  /** The pair's connections, open or opening. */
  have: number;
  /** Multiplexed relay links of this side in all, open or opening. */
  openAll: number;
  /** The caps. */
  caps: { perPeer: number; total: number };
}

/**
 * The number of connections a relay pair should have (the fork's
 * `channel_imux_get_chan_max_connections`, with the bound by circuits, plus a spare, that this
 * module adds).
 */
export function imuxTarget(c: ImuxCounts): number {
  if (c.pairCircuits <= 0 || c.allCircuits <= 0) return 1;
  let t = Math.floor(c.pairCircuits / c.allCircuits * c.caps.total);
  t = Math.min(t, c.pairCircuits + 1);
  t = Math.min(t, Math.max(1, 2 * c.have));
  t = Math.min(t, c.have + Math.max(0, c.caps.total - c.openAll));
  return Math.max(1, Math.min(t, c.caps.perPeer));
}

/** Options of the IMUX transport. */
export interface ImuxTransportOptions extends ImuxOptions {
  /** Where circuits go when the peer does not speak imux. */
  fallback: CircuitTransport;
  /** False when the role's socket budget leaves no room for another connection. */
  socketsAvailable?: () => boolean;
}

/** A connection's decaying cell count. */
interface Load {
  value: number;
  at: number;
  cells: number;
}

interface PeerState {
  peer: RelayEntry;
  /** The pool's shared link to the peer when last asked (never drained here). */
  base: Channel | undefined;
  opening: number;
  /** Circuits waiting for a link being opened for them. */
  waiting: number;
  draining: Set<Channel>;
}

/** Several shared connections per relay pair, as many as its circuits call for. */
export class ImuxTransport implements CircuitTransport {
  readonly name = "imux";
  #pool: ChannelPool;
  #o: ImuxTransportOptions;
  #peers = new Map<string, PeerState>();
  #load = new WeakMap<Channel, Load>();
  #ticking = false;

  /** IMUX over `pool`, falling back as `options` say. */
  constructor(pool: ChannelPool, options: ImuxTransportOptions) {
    this.#pool = pool;
    this.#o = options;
  }

  get #caps(): { perPeer: number; total: number } {
    return this.#o.caps ?? IMUX_DEFAULT_CAPS;
  }

  /** The open multiplexed connections to the relay with this fingerprint (either side opened). */
  links(fingerprint: string): Channel[] {
    const out: Channel[] = [];
    for (const c of this.#pool.channels()) {
      if (!c.closed && c.meta.purpose === "shared" && c.meta.peer.fingerprint === fingerprint) {
        out.push(c);
      }
    }
    return out;
  }

  /** The target number of connections to the relay with this fingerprint now. */
  target(fingerprint: string): number {
    const st = this.#peers.get(fingerprint);
    return imuxTarget(this.#counts(this.links(fingerprint), st?.opening ?? 0));
  }

  /**
   * A connection to `peer` for one new circuit when it speaks imux (an empty one, one opened
   * for it within the target, or the quietest); else the fallback's shared link.
   */
  async channelFor(peer: RelayEntry): Promise<CircuitChannel> {
    if (!peer.transports.includes("imux")) return this.#o.fallback.channelFor(peer);
    const fp = peer.fingerprint;
    let st = this.#peers.get(fp);
    if (!st) {
      this.#peers.set(
        fp,
        st = {
          peer,
          base: undefined,
          opening: 0,
          waiting: 0,
          draining: new Set(),
        },
      );
    }
    st.peer = peer;
    // The pool's one shared link, opened first (concurrent callers share the attempt).
    const base = st.base = await this.#pool.shared(peer);
    // A link that carries no circuit (the spare), else one opened for this circuit while the
    // target allows, else the quietest: while the budget lasts every circuit has a link to
    // itself, as under PCTCP; past it they share.
    const channel = this.#empty(st) ?? await this.#openFor(st) ??
      this.#quietest(this.#usable(st, base));
    const circId = channel.allocCircId();
    // Counted on the channel at once (the relay registers it there too; the client does not),
    // so the next placement and the manager see it.
    channel.circuits.add(circId);
    this.#charge(channel, 2); // its CREATE2 and CREATED2, before they are sent
    this.#manage(st);
    this.#tick();
    return { channel, circId, own: false };
  }

  #usable(st: PeerState, base: Channel): Channel[] {
    const usable = this.links(st.peer.fingerprint).filter((c) => !st.draining.has(c));
    return usable.length ? usable : [base];
  }

  #empty(st: PeerState): Channel | undefined {
    return this.links(st.peer.fingerprint).find((c) =>
      c.circuits.size === 0 && !st.draining.has(c)
    );
  }

  /** A new link for one circuit, when the target counting it (and those waiting) allows one. */
  async #openFor(st: PeerState): Promise<Channel | undefined> {
    const c = this.#counts(this.links(st.peer.fingerprint), st.opening);
    c.pairCircuits += st.waiting + 1;
    if (c.have >= imuxTarget(c) || !(this.#o.socketsAvailable?.() ?? true)) return undefined;
    st.opening++;
    st.waiting++;
    try {
      const chan = await this.#pool.openShared(st.peer);
      return chan.closed ? undefined : chan;
    } catch {
      return undefined; // refused, or the pool closed: the circuit shares a link
    } finally {
      st.opening--;
      st.waiting--;
    }
  }

  /** The connection with the lowest cell EWMA; ties to the one with fewest circuits. */
  #quietest(links: Channel[]): Channel {
    const now = performance.now();
    let best = links[0]!, bestLoad = this.#loadOf(best, now);
    for (const c of links.slice(1)) {
      const l = this.#loadOf(c, now);
      if (l < bestLoad || (l === bestLoad && c.circuits.size < best.circuits.size)) {
        best = c;
        bestLoad = l;
      }
    }
    return best;
  }

  /** The connection's cell EWMA now, folding in the cells it moved since last asked. */
  #loadOf(c: Channel, now: number): number {
    const cells = c.stats.cellsSent + c.stats.cellsReceived;
    const l = this.#load.get(c);
    if (!l) {
      this.#load.set(c, { value: 0, at: now, cells });
      return 0;
    }
    const h = this.#o.halflifeMs ?? 66_000;
    l.value = l.value * Math.pow(2, -(now - l.at) / h) + (cells - l.cells);
    l.at = now;
    l.cells = cells;
    // Rounded so that idle connections tie and the circuit count decides.
    return Math.round(l.value * 1000) / 1000;
  }

  #charge(c: Channel, n: number): void {
    const l = this.#load.get(c);
    if (l) l.value += n;
  }

  #counts(links: Channel[], opening: number): ImuxCounts {
    let pair = 0;
    for (const c of links) pair += c.circuits.size;
    let all = 0;
    for (const c of this.#pool.channels()) all += c.circuits.size;
    let openAll = 0;
    for (const p of this.#pool.peers()) openAll += p.shared;
    for (const s of this.#peers.values()) openAll += s.opening;
    return {
      pairCircuits: pair,
      allCircuits: all,
      have: links.length + opening,
      openAll,
      caps: this.#caps,
    };
  }

  /** Opens connections up to the pair's target, or drains and closes the newest surplus. */
  #manage(st: PeerState): void {
    const fp = st.peer.fingerprint;
    const links = this.links(fp);
    for (const c of st.draining) if (c.closed) st.draining.delete(c);
    const target = imuxTarget(this.#counts(links, st.opening));
    const have = links.length + st.opening;
    if (have < target) {
      st.draining.clear(); // wanted again
      for (let i = have; i < target && (this.#o.socketsAvailable?.() ?? true); i++) this.#open(st);
      return;
    }
    // Surplus: the newest links this side opened stop taking circuits (pool order is the
    // order links were adopted in), never the pool's shared link.
    const surplus = Math.max(0, links.length - target);
    const mine = links.filter((c) => c.meta.initiator && c !== st.base).reverse();
    const drain = new Set(mine.slice(0, surplus));
    for (const c of st.draining) if (!drain.has(c)) st.draining.delete(c);
    for (const c of drain) st.draining.add(c);
    const now = performance.now();
    const idle = this.#o.idleMs ?? 10_000;
    for (const c of st.draining) {
      if (c.circuits.size === 0 && now - c.lastActive >= idle) {
        st.draining.delete(c);
        c.close();
      }
    }
  }

  #open(st: PeerState): void {
    st.opening++;
    this.#pool.openShared(st.peer).then(
      () => st.opening--,
      () => st.opening--, // refused or the pool closed: the next pass tries again
    );
  }

  /** The periodic pass over every IMUX peer, while any has links opened beside the shared one. */
  #tick(): void {
    if (this.#ticking) return;
    this.#ticking = true;
    this.#pool.later(this.#o.intervalMs ?? 1000, () => {
      this.#ticking = false;
      let busy = false;
      for (const st of this.#peers.values()) {
        this.#manage(st);
        const extra = this.links(st.peer.fingerprint).some((c) =>
          c.meta.initiator && c !== st.base
        );
        if (st.opening || st.draining.size || extra) busy = true;
      }
      if (busy) this.#tick();
    });
  }
}

/**
 * IMUX in the registry: a relay running it advertises "tor" and "imux" (plain peers still
 * reach it over the shared link); its flags are the caps, for both roles.
 */
export const imuxDefinition: TransportDefinition<ImuxOptions> = {
  name: "imux",
  summary:
    "several shared connections per relay pair, as many as its circuits need within a socket budget (Geddes, Jansen & Hopper, WPES 2014)",
  advertises: ["tor", "imux"],
  flags: [
    {
      flags: "--imux-max-per-peer <n>",
      description: "connections to one peer at most (IMUX's per-pair cap)",
      roles: ["relay", "client"],
      integer: true,
      default: IMUX_DEFAULT_CAPS.perPeer,
    },
    {
      flags: "--imux-max-total <n>",
      description: "multiplexed relay links in all, shared among pairs by their circuits",
      roles: ["relay", "client"],
      integer: true,
      default: IMUX_DEFAULT_CAPS.total,
    },
  ],
  create: (pool, options, context) =>
    new ImuxTransport(pool, {
      ...options,
      fallback: new SharedTransport(pool),
      ...(context.socketsAvailable ? { socketsAvailable: context.socketsAvailable } : {}),
    }),
  fromFlags(flags) {
    const perPeer = flags.imuxMaxPerPeer as number | undefined;
    const total = flags.imuxMaxTotal as number | undefined;
    if (perPeer === undefined && total === undefined) return {};
    const caps = {
      perPeer: perPeer ?? IMUX_DEFAULT_CAPS.perPeer,
      total: total ?? IMUX_DEFAULT_CAPS.total,
    };
    if (caps.perPeer < 1 || caps.total < 1) {
      throw new TypeError(`IMUX caps must be at least 1: ${caps.perPeer}, ${caps.total}`);
    }
    return { caps };
  },
  launchArgs: (facts) =>
    facts.caps
      ? [
        "--imux-max-per-peer",
        String(facts.caps.perPeer),
        "--imux-max-total",
        String(facts.caps.total),
      ]
      : [],
};
