/**
 * The onion router: accepts links, creates and extends circuits, switches relay cells and
 * exits streams (tor-spec §5–6). Links use the `tor` transport (one shared channel per peer)
 * or `pctcp` (one channel, hence one kernel TCP connection, per circuit to a peer that
 * speaks pctcp too), behind the same cell, circuit and crypto code.
 * @module
 */

import { type Cell, CellCommand, DestroyReason } from "../cell/cell.ts";
import { decodeRelayCell, encodeRelayCell, EndReason, RelayCommand } from "../cell/relay_cell.ts";
import {
  decodeBegin,
  decodeCreate2,
  decodeCreated2,
  decodeExtend2,
  decodeSendme,
  encodeConnected,
  encodeCreate2,
  encodeCreated2,
  encodeSendme,
  HandshakeType,
} from "../cell/messages.ts";
import { ntorServer } from "../crypto/ntor.ts";
import { RelayCrypto } from "../crypto/relay_crypto.ts";
import {
  CircuitPackageWindow,
  CIRCWINDOW_INCREMENT,
  CIRCWINDOW_START,
  DeliverWindow,
} from "../circuit/flow.ts";
import { Channel } from "../channel/channel.ts";
import { TokenBucket } from "../channel/token_bucket.ts";
import { ChannelScheduler, type SchedulerKind, type SchedulerStats } from "../channel/scheduler.ts";
import { type Link, linkAccept, linkConnect } from "../transport/link.ts";
import { fingerprint, identityDigest, type RelayKeys } from "../directory/keys.ts";
import type { RelayEntry, SignedDocument, Transport } from "../directory/document.ts";
import { fromBase64, toHex } from "../util/bytes.ts";
import { EdgeStream } from "../edge/stream.ts";
import { ExitPolicy } from "./exit_policy.ts";
import { type Logger, nullLogger } from "../util/log.ts";

/** How a relay protects per-circuit connections (PCTCP). */
export type PctcpSecurity = "tls" | "ipsec" | "none";

/** Options of a relay. */
export interface RelayOptions {
  /** Long-term keys. */
  keys: RelayKeys;
  /** Nickname (for logs and stats). */
  nickname: string;
  /** Address to listen on (default 127.0.0.1). */
  address?: string;
  /** OR port (0: any free port). */
  orPort?: number;
  /** The signed network document, or a function giving the current one. */
  directory: SignedDocument | (() => SignedDocument);
  /** Link transport this relay speaks (default "tor"). */
  transport?: Transport;
  /** Protection of per-circuit connections (default "tls"). */
  pctcpSecurity?: PctcpSecurity;
  /** Checks that IPsec covers a peer address before a circuit is carried to it. */
  ipsecCheck?: (address: string) => boolean | Promise<boolean>;
  /** Write rate limit (bytes/s) and burst. */
  bandwidth?: { rate: number; burst?: number };
  /** Exit allow list (added to the default policy). */
  exitAllow?: string[];
  /** Caps on pctcp connections per peer and in all; past them circuits use the shared link. */
  pctcpCaps?: { perPeer: number; total: number };
  /**
   * Sockets this relay may hold (links, per-circuit connections, exit streams, handshakes in
   * progress). New links past it are refused; per-circuit connections stop at 90 % of it
   * (circuits fall back to the shared link), and exit streams end with RESOURCELIMIT.
   */
  fdBudget?: number;
  /** Drop a peer that has not finished the link handshake by then (default 10 s). */
  handshakeTimeoutMs?: number;
  /** EWMA half-life (ms); 0 disables EWMA. */
  ewmaHalflifeMs?: number;
  /** Cell scheduler across links (default "vanilla"; "kist" as Tor since 0.3.2). */
  scheduler?: SchedulerKind;
  /** Logger. */
  log?: Logger;
}

/** Per-peer statistics. */
export interface PeerStats {
  /** Peer nickname. */
  nickname: string;
  /** Shared links open. */
  links: number;
  /** Per-circuit connections open. */
  circuitConnections: number;
  /** Circuits that fell back to the shared link because a cap was reached. */
  fallbacks: number;
  /** Bytes written to the peer. */
  bytesSent: number;
  /** Cells queued to the peer now. */
  queuedCells: number;
  /** Largest queue seen on a link to the peer. */
  maxQueuedCells: number;
}

/** One end of a circuit at this relay: a channel and the circuit id on it. */
interface Hop {
  chan: Channel;
  circId: number;
}

/** A circuit through this relay. */
interface RelayCircuit {
  prev: Hop;
  next?: Hop | undefined;
  crypto: RelayCrypto;
  streams: Map<number, EdgeStream>;
  packageWindow: CircuitPackageWindow;
  deliverWindow: DeliverWindow;
  extending: boolean;
  /** The per-circuit connection made for `next`, closed with the circuit. */
  ownNext?: boolean;
  closed: boolean;
}

const MAX_QUEUE_BEFORE_BACKPRESSURE = 256;

/** An onion router. */
export class Relay {
  readonly nickname: string;
  /** The relay's long-term keys (to restart it with the same identity). */
  readonly keys: RelayKeys;
  /** Our fingerprint, to find ourselves in the directory. */
  readonly #fingerprint: string;
  #o: RelayOptions;
  #listener?: Deno.Listener;
  #bucket?: TokenBucket;
  #readBucket?: TokenBucket;
  #policy: ExitPolicy;
  /** Shared channels to relays, by fingerprint hex. */
  #shared = new Map<string, Channel>();
  #connecting = new Map<string, Promise<Channel>>();
  /** All channels, with their circuits. */
  #circuits = new Map<Channel, Map<number, RelayCircuit>>();
  #peerStats = new Map<string, PeerStats>();
  #pctcpTotal = 0;
  #handshaking = 0;
  #exitStreams = 0;
  #refused = 0;
  #stopped = false;
  #log: Logger;
  #tasks = new Set<Promise<unknown>>();
  #idleTimer?: ReturnType<typeof setInterval>;
  #scheduler: ChannelScheduler;

  constructor(options: RelayOptions) {
    this.#o = options;
    this.nickname = options.nickname;
    this.keys = options.keys;
    this.#fingerprint = fingerprint(options.keys.identity.public);
    this.#log = options.log ?? nullLogger;
    if (options.bandwidth) {
      this.#bucket = new TokenBucket(options.bandwidth.rate, options.bandwidth.burst);
      this.#readBucket = new TokenBucket(options.bandwidth.rate, options.bandwidth.burst);
    }
    this.#policy = new ExitPolicy(options.exitAllow ?? []);
    this.#scheduler = new ChannelScheduler({ kind: options.scheduler ?? "vanilla" });
  }

  get #dir(): SignedDocument {
    const d = this.#o.directory;
    return typeof d === "function" ? d() : d;
  }

  get #transport(): Transport {
    return this.#o.transport ?? "tor";
  }

  /** The port listened on (after start). */
  get port(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /** Starts listening; resolves once the OR port is open. */
  start(): Promise<void> {
    this.#listener = Deno.listen({
      hostname: this.#o.address ?? "127.0.0.1",
      port: this.#o.orPort ?? 0,
    });
    this.#track(this.#acceptLoop(this.#listener));
    this.#idleTimer = setInterval(() => this.#closeIdle(), 10_000);
    this.#log.info(
      `relay ${this.nickname} listening on ${
        this.#o.address ?? "127.0.0.1"
      }:${this.port} (${this.#transport}, scheduler ${this.#scheduler.kind})`,
    );
    return Promise.resolve();
  }

  /** Keeps a task for stop(); a failure is logged and never takes the relay down. */
  #track(p: Promise<unknown>, circ?: RelayCircuit): void {
    const q = p.catch((e) => {
      this.#log.warn(`${circ ? "circuit task" : "task"} failed: ${(e as Error).message}`);
      if (circ) this.#destroy(circ, DestroyReason.INTERNAL);
    });
    this.#tasks.add(q);
    q.finally(() => this.#tasks.delete(q));
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      if (this.#stopped) {
        conn.close();
        return;
      }
      this.#track(this.#onAccept(conn));
    }
  }

  #relayByIdentity(identity: Uint8Array): RelayEntry | undefined {
    const fp = fingerprint(identity);
    return this.#dir.relays.find((r) => r.fingerprint === fp);
  }

  /** Sockets held now. */
  #socketsInUse(): number {
    return this.#circuits.size + this.#handshaking + this.#exitStreams;
  }

  get #fdBudget(): number {
    return this.#o.fdBudget ?? 8192;
  }

  async #onAccept(conn: Deno.Conn): Promise<void> {
    if (this.#socketsInUse() >= this.#fdBudget) {
      this.#refused++;
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    (conn as Deno.TcpConn).setNoDelay?.(true);
    let link: Link;
    this.#handshaking++;
    try {
      link = await linkAccept(conn, {
        keys: { identity: this.#o.keys.identity.public, link: this.#o.keys.link },
        allowRelay: (id) => this.#relayByIdentity(id) !== undefined,
        ...(this.#o.handshakeTimeoutMs ? { timeoutMs: this.#o.handshakeTimeoutMs } : {}),
      });
    } catch (e) {
      this.#log.warn(
        `link from ${(conn.remoteAddr as Deno.NetAddr).hostname} refused: ${(e as Error).message}`,
      );
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    } finally {
      this.#handshaking--;
    }
    const peer = link.peer.identity ? this.#relayByIdentity(link.peer.identity) : undefined;
    const chan = this.#newChannel(link, false, peer?.nickname ?? "client", conn, !!peer);
    if (peer && link.purpose === "shared" && !this.#shared.has(peer.fingerprint)) {
      this.#shared.set(peer.fingerprint, chan);
    }
    if (peer) {
      this.#peer(
        peer.nickname,
        (s) => link.purpose === "shared" ? s.links++ : s.circuitConnections++,
      );
    }
    await chan.run();
  }

  #peer(nickname: string, f: (s: PeerStats) => void): void {
    let s = this.#peerStats.get(nickname);
    if (!s) {
      s = {
        nickname,
        links: 0,
        circuitConnections: 0,
        fallbacks: 0,
        bytesSent: 0,
        queuedCells: 0,
        maxQueuedCells: 0,
      };
      this.#peerStats.set(nickname, s);
    }
    f(s);
  }

  #newChannel(
    link: Link,
    initiator: boolean,
    label: string,
    conn: Deno.Conn,
    betweenRelays: boolean,
  ): Channel {
    const chan = new Channel(link, {
      scheduler: this.#scheduler,
      socket: { local: conn.localAddr as Deno.NetAddr, remote: conn.remoteAddr as Deno.NetAddr },
      betweenRelays,
      initiator,
      label,
      onCell: (cell, ch) => this.#onCell(cell, ch),
      onClose: (ch, err) => this.#onChannelClose(ch, err),
      ...(this.#bucket ? { bucket: this.#bucket } : {}),
      ...(this.#readBucket ? { readBucket: this.#readBucket } : {}),
      ...(this.#o.ewmaHalflifeMs !== undefined ? { ewmaHalflifeMs: this.#o.ewmaHalflifeMs } : {}),
    });
    this.#circuits.set(chan, new Map());
    return chan;
  }

  #onChannelClose(chan: Channel, err?: Error): void {
    if (err && !this.#stopped) this.#log.debug(`channel ${chan.label} closed: ${err.message}`);
    const circs = this.#circuits.get(chan);
    this.#circuits.delete(chan);
    for (const [fp, c] of this.#shared) if (c === chan) this.#shared.delete(fp);
    if (chan.link.purpose === "circuit" && chan.link.peer.identity) {
      const peer = this.#relayByIdentity(chan.link.peer.identity);
      if (peer) this.#peer(peer.nickname, (s) => s.circuitConnections--);
    } else if (chan.link.peer.identity) {
      const peer = this.#relayByIdentity(chan.link.peer.identity);
      if (peer) this.#peer(peer.nickname, (s) => s.links--);
    }
    if (!circs) return;
    for (const circ of new Set(circs.values())) {
      // The link is gone: tear the circuit down towards the other side (tor-spec §5.4).
      this.#destroy(circ, DestroyReason.CHANNEL_CLOSED, chan);
    }
  }

  #register(hop: Hop, circ: RelayCircuit): void {
    this.#circuits.get(hop.chan)?.set(hop.circId, circ);
    hop.chan.circuits.add(hop.circId);
  }

  #unregister(hop: Hop): void {
    this.#circuits.get(hop.chan)?.delete(hop.circId);
    hop.chan.freeCircId(hop.circId);
    hop.chan.dropCircuit(hop.circId);
  }

  #onCell(cell: Cell, chan: Channel): void {
    const circs = this.#circuits.get(chan);
    if (!circs) return;
    const circ = circs.get(cell.circId);
    try {
      switch (cell.command) {
        case CellCommand.CREATE2:
          return this.#onCreate2(cell, chan, circ);
        case CellCommand.CREATED2:
          return this.#onCreated2(cell, chan, circ);
        case CellCommand.RELAY:
        case CellCommand.RELAY_EARLY:
          if (!circ) return; // unknown circuit: drop (tor-spec §5.1)
          return this.#onRelay(cell, chan, circ);
        case CellCommand.DESTROY:
          if (circ) this.#destroy(circ, cell.payload[0] ?? 0, chan, true);
          return;
        default:
          return; // PADDING, VPADDING and unknown commands are dropped (tor-spec §3)
      }
    } catch (e) {
      this.#log.warn(`circuit ${cell.circId} on ${chan.label}: ${(e as Error).message}`);
      if (circ) this.#destroy(circ, DestroyReason.PROTOCOL);
      else {chan.sendControl({
          circId: cell.circId,
          command: CellCommand.DESTROY,
          payload: Uint8Array.of(DestroyReason.PROTOCOL),
        });}
    }
  }

  #onCreate2(cell: Cell, chan: Channel, existing?: RelayCircuit): void {
    const destroy = (reason: number) =>
      chan.sendControl({
        circId: cell.circId,
        command: CellCommand.DESTROY,
        payload: Uint8Array.of(reason),
      });
    if (existing || cell.circId === 0) return destroy(DestroyReason.PROTOCOL);
    const create = decodeCreate2(cell.payload);
    if (create.htype !== HandshakeType.NTOR) return destroy(DestroyReason.PROTOCOL);
    const [keys, reply] = ntorServer(
      {
        id: identityDigest(this.#o.keys.identity.public),
        onionKey: this.#o.keys.onion.public,
        onionSecret: this.#o.keys.onion.secret,
      },
      create.hdata,
    );
    const circ: RelayCircuit = {
      prev: { chan, circId: cell.circId },
      crypto: new RelayCrypto(keys),
      streams: new Map(),
      packageWindow: new CircuitPackageWindow(),
      deliverWindow: new DeliverWindow(CIRCWINDOW_START, CIRCWINDOW_INCREMENT),
      extending: false,
      closed: false,
    };
    this.#register(circ.prev, circ);
    chan.sendControl({
      circId: cell.circId,
      command: CellCommand.CREATED2,
      payload: encodeCreated2(reply),
    });
  }

  #onCreated2(cell: Cell, chan: Channel, circ?: RelayCircuit): void {
    if (!circ || !circ.next || circ.next.chan !== chan || !circ.extending) return;
    circ.extending = false;
    const hdata = decodeCreated2(cell.payload);
    // EXTENDED2 carries the CREATED2 body back to the client (tor-spec §5.1.2).
    this.#originate(circ, RelayCommand.EXTENDED2, 0, encodeCreated2(hdata));
  }

  /** Sends a relay cell from this hop towards the client. */
  #originate(circ: RelayCircuit, command: number, streamId: number, data: Uint8Array): void {
    if (circ.closed) return;
    const payload = encodeRelayCell({ command, streamId, data });
    circ.crypto.originateInbound(payload);
    circ.prev.chan.send(circ.prev.circId, CellCommand.RELAY, payload);
  }

  #onRelay(cell: Cell, chan: Channel, circ: RelayCircuit): void {
    if (chan === circ.prev.chan && cell.circId === circ.prev.circId) {
      // Outbound (tor-spec §5.5.2): peel our layer; ours if recognized, else pass on.
      const payload = cell.payload;
      if (circ.crypto.decryptOutbound(payload)) {
        return this.#handleRelay(circ, payload, cell.command === CellCommand.RELAY_EARLY);
      }
      if (!circ.next || circ.extending) throw new Error("unrecognized relay cell at the last hop");
      circ.next.chan.send(circ.next.circId, cell.command, payload);
      return;
    }
    // Inbound (tor-spec §5.5.3): add our layer and pass towards the client.
    circ.crypto.encryptInbound(cell.payload);
    circ.prev.chan.send(circ.prev.circId, CellCommand.RELAY, cell.payload);
  }

  #handleRelay(circ: RelayCircuit, payload: Uint8Array, early: boolean): void {
    const rc = decodeRelayCell(payload);
    switch (rc.command) {
      case RelayCommand.EXTEND2:
        if (!early) throw new Error("EXTEND2 outside RELAY_EARLY");
        this.#track(this.#extend(circ, rc.data), circ);
        return;
      case RelayCommand.BEGIN:
        this.#track(this.#begin(circ, rc.streamId, rc.data), circ);
        return;
      case RelayCommand.DATA: {
        const verdict = circ.deliverWindow.received();
        if (verdict === "violation") throw new Error("circuit deliver window overrun");
        if (verdict === "sendme") {
          this.#originate(
            circ,
            RelayCommand.SENDME,
            0,
            encodeSendme(circ.crypto.lastForwardDigest),
          );
        }
        const s = circ.streams.get(rc.streamId);
        if (s && !s.deliver(rc.data)) s.end(EndReason.TORPROTOCOL);
        return;
      }
      case RelayCommand.END:
        circ.streams.get(rc.streamId)?.remoteEnd();
        return;
      case RelayCommand.SENDME:
        if (rc.streamId === 0) {
          const verdict = circ.packageWindow.circuitSendme(decodeSendme(rc.data));
          if (verdict !== "ok") throw new Error(`circuit SENDME refused: ${verdict}`);
        } else {
          const s = circ.streams.get(rc.streamId);
          if (s && !s.sendme()) throw new Error("unexpected stream SENDME");
        }
        return;
      case RelayCommand.TRUNCATE:
        if (circ.next) this.#destroyNext(circ, DestroyReason.REQUESTED);
        this.#originate(circ, RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.REQUESTED));
        return;
      case RelayCommand.DROP:
        return;
      default:
        this.#log.debug(`ignoring relay command ${rc.command}`);
    }
  }

  async #extend(circ: RelayCircuit, data: Uint8Array): Promise<void> {
    if (circ.next || circ.extending) {
      this.#destroy(circ, DestroyReason.PROTOCOL);
      return;
    }
    const ext = decodeExtend2(data);
    const fp = toHex(ext.id).toUpperCase();
    const target = this.#dir.relays.find((r) => r.fingerprint === fp);
    if (!target || target.address !== ext.address || target.orPort !== ext.port) {
      this.#originate(circ, RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.OR_IDENTITY));
      return;
    }
    circ.extending = true;
    let chan: Channel;
    let own = false;
    let reserved = false;
    try {
      reserved = await this.#usePctcp(target);
      if (reserved) {
        chan = await this.#openChannel(target, "circuit");
        own = true;
      } else {
        chan = await this.#sharedChannel(target);
      }
    } catch (e) {
      if (reserved && !own) this.#release(target);
      this.#log.warn(`extend to ${target.nickname} failed: ${(e as Error).message}`);
      circ.extending = false;
      this.#originate(circ, RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.CONNECTFAILED));
      return;
    }
    if (circ.closed) {
      if (own) chan.close();
      return;
    }
    const circId = chan.allocCircId();
    circ.next = { chan, circId };
    circ.ownNext = own;
    this.#register(circ.next, circ);
    chan.sendControl({ circId, command: CellCommand.CREATE2, payload: encodeCreate2(ext.create) });
  }

  /** True when this hop should get its own connection (both speak pctcp, caps allow). */
  async #usePctcp(target: RelayEntry): Promise<boolean> {
    if (this.#transport !== "pctcp" || !target.transports.includes("pctcp")) return false;
    // IPsec fails open: without an SA covering the peer, refuse rather than send in the clear.
    if ((this.#o.pctcpSecurity ?? "tls") === "ipsec") {
      if (!(await this.#o.ipsecCheck?.(target.address))) {
        throw new Error(`no IPsec SA covers ${target.address}; refusing to carry the circuit`);
      }
    }
    // From here on no await: the cap check and the reservation happen together, so
    // concurrent extends cannot all pass the cap.
    const caps = this.#o.pctcpCaps ?? { perPeer: 512, total: 4096 };
    let perPeer = 0;
    this.#peer(target.nickname, (s) => perPeer = s.circuitConnections);
    if (
      perPeer >= caps.perPeer || this.#pctcpTotal >= caps.total ||
      this.#socketsInUse() >= this.#fdBudget * 0.9
    ) {
      this.#peer(target.nickname, (s) => s.fallbacks++);
      return false;
    }
    this.#pctcpTotal++;
    this.#peer(target.nickname, (s) => s.circuitConnections++);
    return true;
  }

  /** Gives back a reserved per-circuit slot whose connection was never made. */
  #release(target: RelayEntry): void {
    this.#pctcpTotal--;
    this.#peer(target.nickname, (s) => s.circuitConnections--);
  }

  #sharedChannel(target: RelayEntry): Promise<Channel> {
    const have = this.#shared.get(target.fingerprint);
    if (have && !have.closed) return Promise.resolve(have);
    let p = this.#connecting.get(target.fingerprint);
    if (!p) {
      p = this.#openChannel(target, "shared").then((chan) => {
        this.#shared.set(target.fingerprint, chan);
        return chan;
      }).finally(() => this.#connecting.delete(target.fingerprint));
      this.#connecting.set(target.fingerprint, p);
    }
    return p;
  }

  async #openChannel(target: RelayEntry, purpose: "shared" | "circuit"): Promise<Channel> {
    const conn = await Deno.connect({ hostname: target.address, port: target.orPort });
    conn.setNoDelay(true);
    const security = this.#o.pctcpSecurity ?? "tls";
    const link = await linkConnect(conn, {
      peer: { identity: fromBase64(target.identity), linkKey: fromBase64(target.linkKey) },
      self: this.#o.keys.identity,
      purpose,
      encrypt: purpose === "shared" || security === "tls",
    });
    const chan = this.#newChannel(link, true, target.nickname, conn, true);
    // A per-circuit connection was counted when #usePctcp reserved it.
    if (purpose === "shared") this.#peer(target.nickname, (s) => s.links++);
    this.#track(
      chan.run().finally(() => {
        if (purpose === "circuit") this.#pctcpTotal--;
      }),
    );
    return chan;
  }

  async #begin(circ: RelayCircuit, streamId: number, data: Uint8Array): Promise<void> {
    const end = (reason: number) =>
      this.#originate(circ, RelayCommand.END, streamId, Uint8Array.of(reason));
    if (streamId === 0 || circ.streams.has(streamId)) return end(EndReason.TORPROTOCOL);
    const me = this.#dir.relays.find((r) => r.fingerprint === this.#fingerprint);
    if (!me?.flags.includes("exit")) return end(EndReason.EXITPOLICY);
    let begin;
    try {
      begin = decodeBegin(data);
    } catch {
      return end(EndReason.TORPROTOCOL);
    }
    if (!this.#policy.allows(begin.host, begin.port)) return end(EndReason.EXITPOLICY);
    if (this.#socketsInUse() >= this.#fdBudget) return end(EndReason.RESOURCELIMIT);
    let conn: Deno.TcpConn;
    this.#exitStreams++;
    try {
      conn = await Deno.connect({ hostname: begin.host, port: begin.port });
    } catch (e) {
      this.#exitStreams--;
      const refused = e instanceof Deno.errors.ConnectionRefused;
      return end(refused ? EndReason.CONNECTREFUSED : EndReason.NOROUTE);
    }
    const addr = conn.remoteAddr as Deno.NetAddr;
    if (!this.#policy.allows(addr.hostname, begin.port)) {
      conn.close();
      this.#exitStreams--;
      return end(EndReason.EXITPOLICY);
    }
    if (circ.closed) {
      conn.close();
      this.#exitStreams--;
      return;
    }
    conn.setNoDelay(true);
    const stream = new EdgeStream(streamId, conn, this.#streamCircuit(circ));
    circ.streams.set(streamId, stream);
    this.#originate(circ, RelayCommand.CONNECTED, streamId, encodeConnected(addr.hostname));
    try {
      await stream.pump();
    } finally {
      this.#exitStreams--;
    }
  }

  #streamCircuit(circ: RelayCircuit) {
    return {
      sendRelay: (command: number, streamId: number, data: Uint8Array) =>
        this.#originate(circ, command, streamId, data),
      packageWindow: circ.packageWindow,
      onDataPackaged: () => {
        circ.packageWindow.packaged(() => circ.crypto.lastBackwardDigest);
      },
      drained: async () => {
        // Tor's local back-pressure: stop packaging while the circuit queue is long.
        while (
          !circ.closed && circ.prev.chan.queuedFor(circ.prev.circId) > MAX_QUEUE_BEFORE_BACKPRESSURE
        ) {
          await new Promise((r) => setTimeout(r, 2));
        }
      },
      removeStream: (id: number) => circ.streams.delete(id),
    };
  }

  #destroyNext(circ: RelayCircuit, reason: number): void {
    const next = circ.next;
    if (!next) return;
    circ.next = undefined;
    next.chan.sendControl({
      circId: next.circId,
      command: CellCommand.DESTROY,
      payload: Uint8Array.of(reason),
    });
    this.#unregister(next);
    if (circ.ownNext) next.chan.closeAfterFlush();
  }

  /**
   * Tears a circuit down: DESTROY to both neighbours except `from` (which already knows),
   * streams closed, per-circuit connections closed (tor-spec §5.4).
   */
  #destroy(circ: RelayCircuit, reason: number, from?: Channel, fromDestroy = false): void {
    if (circ.closed) return;
    circ.closed = true;
    circ.packageWindow.abort();
    for (const s of circ.streams.values()) s.abort();
    circ.streams.clear();
    const forward = fromDestroy ? DestroyReason.DESTROYED : reason;
    for (const hop of [circ.prev, circ.next]) {
      if (!hop) continue;
      if (hop.chan !== from && !hop.chan.closed) {
        hop.chan.sendControl({
          circId: hop.circId,
          command: CellCommand.DESTROY,
          payload: Uint8Array.of(forward),
        });
      }
      this.#unregister(hop);
      if (hop.chan.link.purpose === "circuit") hop.chan.closeAfterFlush();
    }
  }

  #closeIdle(): void {
    // Tor closes links with no circuits after a while; we use 3 minutes.
    const now = performance.now();
    for (const [chan, circs] of this.#circuits) {
      if (circs.size === 0 && now - chan.lastActive > 180_000) chan.close();
    }
  }

  /** Per-peer statistics. */
  stats(): {
    nickname: string;
    transport: Transport;
    circuits: number;
    sockets: number;
    fdBudget: number;
    refusedConnections: number;
    peers: PeerStats[];
    scheduler: SchedulerStats;
  } {
    const unique = new Set<RelayCircuit>();
    const queued = new Map<string, { q: number; max: number; bytes: number }>();
    for (const [chan, circs] of this.#circuits) {
      for (const c of circs.values()) unique.add(c);
      const peer = chan.link.peer.identity
        ? this.#relayByIdentity(chan.link.peer.identity)
        : undefined;
      if (!peer) continue;
      const e = queued.get(peer.nickname) ?? { q: 0, max: 0, bytes: 0 };
      e.q += chan.queued;
      e.max = Math.max(e.max, chan.stats.maxQueued);
      e.bytes += chan.stats.bytesSent;
      queued.set(peer.nickname, e);
    }
    for (const [nick, e] of queued) {
      this.#peer(nick, (s) => {
        s.queuedCells = e.q;
        s.maxQueuedCells = Math.max(s.maxQueuedCells, e.max);
        s.bytesSent = Math.max(s.bytesSent, e.bytes);
      });
    }
    return {
      nickname: this.nickname,
      transport: this.#transport,
      circuits: unique.size,
      sockets: this.#socketsInUse(),
      fdBudget: this.#fdBudget,
      refusedConnections: this.#refused,
      peers: [...this.#peerStats.values()].map((s) => ({ ...s })),
      scheduler: this.#scheduler.stats(),
    };
  }

  /** Stops: closes the listener and every channel, stream and task. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#idleTimer);
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    for (const chan of [...this.#circuits.keys()]) chan.close();
    this.#scheduler.close();
    this.#bucket?.close();
    this.#readBucket?.close();
    await Promise.allSettled([...this.#tasks]);
  }
}
