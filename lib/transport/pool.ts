/**
 * The channel pool, written once for both roles: it opens links, wraps every link — opened or
 * accepted — in a {@link Channel} made with the one set of channel options the role gave
 * (cell and close handlers, token buckets, EWMA, the scheduler), runs it, keeps one shared
 * channel per peer (reused by identity, tor-spec §2 "channels") and counts connections per
 * peer. Transports (transport.ts, pctcp.ts) ask it for channels.
 *
 * Two link kinds: a pair's shared links are Tor's own link protocol (tor_link.ts: TLS,
 * VERSIONS, CERTS, AUTH_CHALLENGE, AUTHENTICATE, NETINFO), whoever is at the other end — C tor
 * or ours; PCTCP's per-circuit connections between two of ours run the LINK2 handshake
 * (link.ts), keyed by the link key each of ours announces in band on the authenticated Tor
 * link (pctcp_hello.ts). The pool keeps what the Tor links proved (RSA fingerprint ↔ Ed25519
 * identity) and what the hellos said, so a per-circuit connection's Ed25519 identity maps to
 * the relay's fingerprint.
 * @module
 */

import { Channel, type ChannelOptions } from "../channel/channel.ts";
import type { ChannelLink, ChannelMeta, ChannelPurpose } from "../channel/link.ts";
import type { RelayEntry } from "../directory/document.ts";
import type { RelayKeys } from "../directory/keys.ts";
import { fromBase64, toBase64 } from "../util/bytes.ts";
import { type Link, linkConnect, type LinkPurpose } from "./link.ts";
import { type TorLink, torLinkConnect } from "./tor_link.ts";
import { decodePctcpHello, encodePctcpHello, type PctcpHello, VPADDING } from "./pctcp_hello.ts";
import type { Logger } from "../util/log.ts";

/**
 * A LINK2 link's authenticated facts as channel metadata: a per-circuit link is its bound
 * circuit's own on both sides (DESIGN.md "PCTCP specifics").
 */
export function linkMeta(
  link: Link,
  fingerprintOf?: (ed25519: Uint8Array) => string | undefined,
): ChannelMeta {
  const fp = link.peer.identity ? fingerprintOf?.(link.peer.identity) : undefined;
  return {
    peer: fp ? { role: "relay", fingerprint: fp } : { role: link.peer.role },
    initiator: link.initiator,
    purpose: link.purpose,
    boundCircId: link.boundCircId,
    own: link.purpose === "circuit",
  };
}

/** A Tor link's authenticated facts as channel metadata (a shared channel). */
export function torLinkMeta(link: TorLink): ChannelMeta {
  const fp = link.peer.role === "relay" ? link.peer.rsaFingerprint : undefined;
  return {
    peer: fp ? { role: "relay", fingerprint: fp } : { role: "client" },
    initiator: link.initiator,
    purpose: "shared",
    boundCircId: 0,
    own: false,
  };
}

/** Options of a channel pool. */
export interface ChannelPoolOptions {
  /** What every channel gets (handlers, buckets, scheduling); initiator and label are set here. */
  channel: Omit<ChannelOptions, "initiator" | "label">;
  /** Our keys when we are a relay (relays prove their identity on their links). */
  self?: RelayKeys;
  /**
   * What we announce on every Tor link we open or accept (we speak PCTCP: our link key and OR
   * port); nothing when absent. A C tor peer ignores it (VPADDING).
   */
  hello?: PctcpHello;
  /** Relays known besides those our links proved (our own directory): Ed25519 (base64) → fingerprint. */
  knownRelay?: (ed25519: Uint8Array) => string | undefined;
  /** Link handshake timeout (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Where handshake failures are logged. */
  log?: Logger;
}

/** How long a new Tor link to a relay waits for the peer's PCTCP hello at most, beyond its handshake time. */
const HELLO_WAIT_EXTRA_MS = 50;

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
  /** What we announce on every Tor link when we speak PCTCP (set once our OR port is known). */
  hello: PctcpHello | undefined;
  #shared = new Map<string, Channel>();
  #connecting = new Map<string, Promise<Channel>>();
  #all = new Map<Channel, Entry>();
  #counts = new Map<
    string,
    { nickname: string; shared: number; circuit: number; opened: number }
  >();
  #openedPerCircuit = 0;
  #opening = new Set<Promise<unknown>>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #closed = false;
  /** Ed25519 identity (base64) → RSA fingerprint, as Tor links proved them. */
  #edToFp = new Map<string, string>();
  /** Fingerprint → the peer's PCTCP hello and its Ed25519 identity. */
  #hellos = new Map<string, { hello: PctcpHello; ed25519: Uint8Array }>();
  #helloWaiters = new Map<string, (() => void)[]>();
  /** Fingerprints whose hello was awaited in vain on a link we opened (C tor peers). */
  #noHello = new Set<string>();

  /** A pool whose channels all get `options.channel`. */
  constructor(options: ChannelPoolOptions) {
    this.#o = options;
    this.hello = options.hello;
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
  peers(): {
    fingerprint: string;
    nickname: string;
    shared: number;
    circuit: number;
    opened: number;
  }[] {
    return [...this.#counts].map(([fingerprint, c]) => ({ fingerprint, ...c }));
  }

  /**
   * Wraps an established LINK2 link (opened or accepted) in a running channel, its metadata
   * from the link's handshake ({@link linkMeta}). `conn` is the TCP connection under the link
   * (a KIST scheduler reads that socket's state); `betweenRelays` says whether the peer is a
   * relay (default: it proved a relay identity).
   */
  adopt(link: Link, label: string, conn?: Deno.Conn, betweenRelays?: boolean): Channel {
    return this.adoptLink(
      link,
      linkMeta(link, (ed) => this.fingerprintOf(ed)),
      label,
      conn,
      betweenRelays,
    );
  }

  /** The fingerprint of the relay with this Ed25519 identity, when a link or the directory proved it. */
  fingerprintOf(ed25519: Uint8Array): string | undefined {
    return this.#edToFp.get(toBase64(ed25519)) ?? this.#o.knownRelay?.(ed25519);
  }

  /**
   * Wraps an established Tor link (opened or accepted) in a running channel: records what it
   * proved, listens for the peer's PCTCP hello, and sends ours when we speak PCTCP.
   */
  adoptTor(link: TorLink, label: string, conn?: Deno.Conn): Channel {
    const meta = torLinkMeta(link);
    const fp = meta.peer.fingerprint;
    const ed = link.peer.ed25519Identity;
    if (fp && ed) this.#edToFp.set(toBase64(ed), fp);
    link.onVariableCell = (command, payload) => {
      if (command !== VPADDING || !fp || !ed) return; // a client's hello says nothing we use
      const hello = decodePctcpHello(payload);
      if (!hello) return; // padding
      this.#hellos.set(fp, { hello, ed25519: ed });
      this.#noHello.delete(fp);
      for (const w of this.#helloWaiters.get(fp) ?? []) w();
      this.#helloWaiters.delete(fp);
    };
    const chan = this.adoptLink(link, meta, label, conn, fp !== undefined);
    if (this.hello) {
      link.sendVariableCell(VPADDING, encodePctcpHello(this.hello)).catch(() => {});
    }
    return chan;
  }

  /**
   * The relay `peer` as a PCTCP peer: the entry itself when it lists pctcp with a link key
   * (our own directory), else from the hello it sent on our Tor link to it — opened now if
   * need be, and its hello awaited a moment once (a C tor peer never sends one). Undefined when
   * the peer does not speak PCTCP.
   */
  async pctcpPeer(peer: RelayEntry): Promise<RelayEntry | undefined> {
    if (peer.transports.includes("pctcp") && peer.linkKey && peer.identity) return peer;
    const fp = peer.fingerprint;
    const have = () => {
      const h = this.#hellos.get(fp);
      if (!h || !h.hello.perCircuit) return undefined;
      return {
        ...peer,
        identity: toBase64(h.ed25519),
        linkKey: toBase64(h.hello.linkKey),
        transports: [...new Set([...peer.transports, "tor", "pctcp"])],
      } satisfies RelayEntry;
    };
    if (this.#hellos.has(fp) || this.#noHello.has(fp)) return have();
    const t0 = performance.now();
    await this.shared(peer);
    if (this.#hellos.has(fp)) return have();
    const wait = HELLO_WAIT_EXTRA_MS + (performance.now() - t0);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, wait);
      function done() {
        clearTimeout(t);
        resolve();
      }
      const list = this.#helloWaiters.get(fp) ?? [];
      list.push(done);
      this.#helloWaiters.set(fp, list);
    });
    if (!this.#hellos.has(fp)) this.#noHello.add(fp);
    return have();
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
    if (c && meta.purpose === "circuit" && meta.initiator) c.opened++;
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
    if (o.purpose === "shared") {
      // Tor's link protocol, the peer's identities checked against what we expect (the
      // directory entry, or EXTEND2's link specifiers: tor-spec §5.1.2).
      let tor: TorLink;
      try {
        tor = await torLinkConnect(conn, {
          ...(this.#o.self ? { keys: this.#o.self.tor } : {}),
          expect: {
            rsaFingerprint: peer.fingerprint,
            ...(peer.identity ? { ed25519Identity: fromBase64(peer.identity) } : {}),
          },
          ...(this.#o.handshakeTimeoutMs ? { timeoutMs: this.#o.handshakeTimeoutMs } : {}),
          ...(this.#o.log ? { log: this.#o.log } : {}),
        });
      } catch (e) {
        closeQuietly(conn);
        throw e;
      }
      if (this.#closed) {
        tor.close();
        throw new Error("channel pool closed");
      }
      return this.adoptTor(tor, peer.nickname, conn);
    }
    if (!peer.identity || !peer.linkKey) {
      conn.close();
      throw new Error(`no PCTCP link key known for ${peer.nickname}`);
    }
    let link: Link;
    try {
      link = await linkConnect(conn, {
        peer: { identity: fromBase64(peer.identity), linkKey: fromBase64(peer.linkKey) },
        ...(this.#o.self ? { self: this.#o.self.identity } : {}),
        purpose: o.purpose,
        ...(o.circuit !== undefined ? { circuit: o.circuit } : {}),
        encrypt: o.encrypt,
      });
    } catch (e) {
      closeQuietly(conn);
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
    if (!c) {
      this.#counts.set(fp, c = { nickname: nickname ?? fp, shared: 0, circuit: 0, opened: 0 });
    }
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

/** Closes a connection that may be closed already. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}
