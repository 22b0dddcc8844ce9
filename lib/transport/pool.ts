/**
 * The channel pool, written once for both roles: it opens links (TCP + the link handshake of
 * link.ts), wraps every link — opened or accepted — in a {@link Channel} made with the one
 * set of channel options the role gave (cell and close handlers, token buckets, EWMA, and
 * whatever scheduler the channel layer grows), runs it, keeps one shared channel per peer
 * and counts connections per peer. Transports (shared.ts, pctcp.ts) ask it for channels.
 * @module
 */

import { Channel, type ChannelOptions } from "../channel/channel.ts";
import type { ChannelLink, ChannelMeta, ChannelPurpose } from "../channel/link.ts";
import type { RelayEntry } from "../directory/document.ts";
import { fingerprint } from "../directory/keys.ts";
import { fromBase64 } from "../util/bytes.ts";
import { type Link, linkConnect, type LinkPurpose } from "./link.ts";

/**
 * A LINK2 link's authenticated facts as channel metadata: a per-circuit link is its bound
 * circuit's own on both sides (DESIGN.md "PCTCP specifics").
 */
export function linkMeta(link: Link): ChannelMeta {
  return {
    peer: link.peer.identity
      ? { role: "relay", fingerprint: fingerprint(link.peer.identity) }
      : { role: link.peer.role },
    initiator: link.initiator,
    purpose: link.purpose,
    boundCircId: link.boundCircId,
    own: link.purpose === "circuit",
  };
}

/** Options of a channel pool. */
export interface ChannelPoolOptions {
  /** What every channel gets (handlers, buckets, scheduling); initiator and label are set here. */
  channel: Omit<ChannelOptions, "initiator" | "label">;
  /** Our identity key pair when we are a relay (relays prove it on their links). */
  self?: { secret: Uint8Array; public: Uint8Array };
}

/** What the pool knows of one channel. */
interface Entry {
  fingerprint: string | undefined;
  purpose: ChannelPurpose;
  opened: boolean;
  run: Promise<void>;
}

/** Channels to peers: one shared channel per peer, any number of per-circuit ones. */
export class ChannelPool {
  #o: ChannelPoolOptions;
  #shared = new Map<string, Channel>();
  #connecting = new Map<string, Promise<Channel>>();
  #all = new Map<Channel, Entry>();
  #counts = new Map<string, { nickname: string; shared: number; circuit: number }>();
  #openedPerCircuit = 0;
  #opening = new Set<Promise<unknown>>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #closed = false;

  /** A pool whose channels all get `options.channel`. */
  constructor(options: ChannelPoolOptions) {
    this.#o = options;
  }

  /** Channels open now. */
  get size(): number {
    return this.#all.size;
  }

  /** Per-circuit channels this side opened that are still open. */
  get openedPerCircuit(): number {
    return this.#openedPerCircuit;
  }

  /** Every channel open now. */
  channels(): IterableIterator<Channel> {
    return this.#all.keys();
  }

  /** Connections to or from the relay with this fingerprint, by purpose. */
  count(fp: string): { shared: number; circuit: number } {
    const c = this.#counts.get(fp);
    return { shared: c?.shared ?? 0, circuit: c?.circuit ?? 0 };
  }

  /** Every relay peer seen (by fingerprint, with the label its channels had) and its counts. */
  peers(): { fingerprint: string; nickname: string; shared: number; circuit: number }[] {
    return [...this.#counts].map(([fingerprint, c]) => ({ fingerprint, ...c }));
  }

  /**
   * Wraps an established LINK2 link (opened or accepted) in a running channel, its metadata
   * from the link's handshake ({@link linkMeta}). `conn` is the TCP connection under the link
   * (a KIST scheduler reads that socket's state); `betweenRelays` says whether the peer is a
   * relay (default: it proved a relay identity).
   */
  adopt(link: Link, label: string, conn?: Deno.Conn, betweenRelays?: boolean): Channel {
    return this.adoptLink(link, linkMeta(link), label, conn, betweenRelays);
  }

  /**
   * Wraps any established link in a running channel with the metadata its transport
   * established (`meta`): the way a new link kind (Tor's TLS link, an in-memory link) joins
   * the pool.
   */
  adoptLink(
    link: ChannelLink,
    meta: ChannelMeta,
    label: string,
    conn?: Deno.Conn,
    betweenRelays?: boolean,
  ): Channel {
    const fp = meta.peer.fingerprint;
    const onClose = this.#o.channel.onClose;
    const chan = new Channel(link, {
      ...this.#o.channel,
      initiator: meta.initiator,
      meta,
      label,
      betweenRelays: betweenRelays ?? fp !== undefined,
      ...(conn
        ? {
          socket: {
            local: conn.localAddr as Deno.NetAddr,
            remote: conn.remoteAddr as Deno.NetAddr,
          },
        }
        : {}),
      onClose: (ch, err) => {
        this.#forget(ch);
        onClose?.(ch, err);
      },
    });
    const c = fp ? this.#countFor(fp, label) : undefined;
    if (c) meta.purpose === "shared" ? c.shared++ : c.circuit++;
    if (fp && meta.purpose === "shared" && !this.#shared.get(fp)) this.#shared.set(fp, chan);
    if (meta.purpose === "circuit" && meta.initiator) this.#openedPerCircuit++;
    const entry: Entry = {
      fingerprint: fp,
      purpose: meta.purpose,
      opened: meta.initiator,
      run: Promise.resolve(),
    };
    this.#all.set(chan, entry);
    entry.run = chan.run();
    return chan;
  }

  /** The shared channel to `peer`, opened once (concurrent callers share the attempt). */
  shared(peer: RelayEntry): Promise<Channel> {
    const have = this.#shared.get(peer.fingerprint);
    if (have && !have.closed) return Promise.resolve(have);
    let p = this.#connecting.get(peer.fingerprint);
    if (!p) {
      p = this.#open(peer, { purpose: "shared", encrypt: true }).then((chan) => {
        this.#shared.set(peer.fingerprint, chan);
        return chan;
      }).finally(() => this.#connecting.delete(peer.fingerprint));
      this.#connecting.set(peer.fingerprint, p);
    }
    return p;
  }

  /**
   * One more multiplexed (shared-purpose) connection to `peer`, besides the one
   * {@link shared} keeps: for transports that spread circuits over several links per peer
   * (IMUX). It is counted with the peer's shared links; the peer admits circuits on it like
   * on any shared link.
   */
  openShared(peer: RelayEntry): Promise<Channel> {
    return this.#open(peer, { purpose: "shared", encrypt: true });
  }

  /** A new connection to `peer` that carries the circuit `circId` alone. */
  perCircuit(peer: RelayEntry, circId: number, encrypt: boolean): Promise<Channel> {
    return this.#open(peer, { purpose: "circuit", circuit: circId, encrypt });
  }

  /** Runs `fn` after `ms` unless the pool closes first (work the pool's owner defers). */
  later(ms: number, fn: () => void): void {
    if (this.#closed) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(t);
  }

  /** Closes every channel and waits for their read loops to end. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    // Opens under way (e.g. a pre-opened per-circuit link) finish first; they close at once.
    await Promise.allSettled([...this.#opening]);
    const runs = [...this.#all.values()].map((e) => e.run);
    for (const chan of [...this.#all.keys()]) chan.close();
    await Promise.allSettled(runs);
  }

  #open(
    peer: RelayEntry,
    o: { purpose: LinkPurpose; circuit?: number; encrypt: boolean },
  ): Promise<Channel> {
    if (this.#closed) return Promise.reject(new Error("channel pool closed"));
    const p = this.#connect(peer, o);
    this.#opening.add(p);
    const done = () => this.#opening.delete(p);
    p.then(done, done);
    return p;
  }

  async #connect(
    peer: RelayEntry,
    o: { purpose: LinkPurpose; circuit?: number; encrypt: boolean },
  ): Promise<Channel> {
    const conn = await Deno.connect({ hostname: peer.address, port: peer.orPort });
    conn.setNoDelay(true);
    let link: Link;
    try {
      link = await linkConnect(conn, {
        peer: { identity: fromBase64(peer.identity), linkKey: fromBase64(peer.linkKey) },
        ...(this.#o.self ? { self: this.#o.self } : {}),
        purpose: o.purpose,
        ...(o.circuit !== undefined ? { circuit: o.circuit } : {}),
        encrypt: o.encrypt,
      });
    } catch (e) {
      try {
        conn.close();
      } catch { /* closed */ }
      throw e;
    }
    if (this.#closed) {
      link.close();
      throw new Error("channel pool closed");
    }
    return this.adopt(link, peer.nickname, conn, true);
  }

  #countFor(fp: string, nickname?: string) {
    let c = this.#counts.get(fp);
    if (!c) this.#counts.set(fp, c = { nickname: nickname ?? fp, shared: 0, circuit: 0 });
    return c;
  }

  #forget(chan: Channel): void {
    const e = this.#all.get(chan);
    if (!e) return;
    this.#all.delete(chan);
    if (e.purpose === "circuit" && e.opened) this.#openedPerCircuit--;
    if (e.fingerprint) {
      const c = this.#countFor(e.fingerprint);
      e.purpose === "shared" ? c.shared-- : c.circuit--;
      if (this.#shared.get(e.fingerprint) === chan) this.#shared.delete(e.fingerprint);
    }
  }
}
