/**
 * The onion router: accepts links, creates and extends circuits, switches relay cells and
 * exits streams (tor-spec §5–6). Links use the `tor` transport (one shared channel per peer)
 * or `pctcp` (one channel, hence one kernel TCP connection, per circuit to a peer that
 * speaks pctcp too), behind the same cell, circuit and crypto code.
 * @module
 */

import { type Cell, CellCommand, DestroyReason, type DestroyReasonCode } from "../cell/cell.ts";
import { EndReason } from "../cell/relay_cell.ts";
import {
  type Begin,
  type Create2,
  encodeConnected,
  encodeCreate2,
  encodeCreated2,
  encodeResolved,
  type Extend2,
} from "../cell/messages.ts";
import {
  admitCreate2,
  admitCreateFast,
  answerCreate2,
  destroyStep,
  RelayCircuitCore,
} from "../circuit/mod.ts";
import { createFastServer } from "../crypto/create_fast.ts";
import type { Channel } from "../channel/channel.ts";
import { TokenBucket } from "../channel/token_bucket.ts";
import { ChannelScheduler, type SchedulerKind, type SchedulerStats } from "../channel/scheduler.ts";
import { type Link, linkAccept } from "../transport/link.ts";
import { type TorLink, torLinkAccept } from "../transport/tor_link.ts";
import { ReplayConn } from "../transport/replay_conn.ts";
import { installNativeCrypto } from "../transport/openssl.ts";
import { ChannelPool } from "../transport/pool.ts";
import type { CircuitTransport } from "../transport/transport.ts";
import { createTransport, type TransportOptions } from "../transport/registry.ts";
import { fingerprintDigest, relayFingerprint, type RelayKeys } from "../directory/keys.ts";
import type { RelayEntry, SignedDocument, Transport } from "../directory/document.ts";
import { toBase64, toHex } from "../util/bytes.ts";
import type { DirAuthority } from "../dirauth/authorities.ts";
import type { PublishResult } from "../dirauth/publish.ts";
import { exitPolicyLines, TorNetworkMembership } from "./tor_join.ts";
import { EdgeStream, type StreamCircuit } from "../edge/stream.ts";
import { ExitPolicy } from "./exit_policy.ts";
import { circuitQueueOverfull, RELAY_CIRC_CELL_QUEUE_SIZE } from "../circuit/queue.ts";
import { defaultMaxMemInQueues, oomVictims } from "./oom.ts";
import { ExtendAttempts } from "../circuit/extend_attempt.ts";
import { exitDecision, resolveIpv4 } from "./exit_connect.ts";
import { ed25519Matches, extendLoop } from "./extend_check.ts";
import { DosGuard, type DosOptions, type TokenCounter } from "./dos.ts";
import { OnionQueue, type OnionQueueOptions } from "./onion_queue.ts";
import { type Logger, nullLogger, rateLimitWarnings } from "../util/log.ts";

/**
 * Options of a relay. The transport and its own options come nested by name
 * (`{ transport: "pctcp", pctcp: { security, ipsecCheck, caps, preopen } }`, see
 * lib/transport/registry.ts).
 */
export interface RelayOptions extends TransportOptions {
  /** Long-term keys. */
  keys: RelayKeys;
  /** Nickname (for logs and stats). */
  nickname: string;
  /** Address to listen on (default 127.0.0.1). */
  address?: string;
  /** OR port (0: any free port). */
  orPort?: number;
  /**
   * The signed network document of a network of only our relays, or a function giving the
   * current one. Absent in a C tor network (`authorities`): next hops are then found by
   * EXTEND2's link specifiers and verified by their link handshake.
   */
  directory?: SignedDocument | (() => SignedDocument);
  /**
   * The directory authorities of a C tor network to join: the relay publishes its descriptor
   * to them (and keeps it published) once it listens, and answers their reachability tests.
   */
  authorities?: DirAuthority[];
  /** Serve exit streams (default: when the directory flags us exit, or with `authorities`, when `exitAllow` is set). */
  exit?: boolean;
  /** Called after a key renewal (e.g. to write the keys file back). */
  onKeysRenewed?: (keys: RelayKeys) => void;
  /** Write rate limit (bytes/s) and burst. */
  bandwidth?: { rate: number; burst?: number };
  /** Exit allow list (added to the default policy). */
  exitAllow?: string[];
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
  /**
   * Cells queued for one circuit towards one hop past which the circuit is closed
   * (default 2500, C tor's RELAY_CIRC_CELL_QUEUE_SIZE_DEFAULT; see lib/circuit/queue.ts).
   */
  maxCircuitQueue?: number;
  /**
   * Bytes in circuit queues and edge buffers past which circuits with the oldest queued data
   * are closed (tor-spec §8.1; default as C tor's MaxMemInQueues auto, see lib/relay/oom.ts).
   */
  maxMemInQueues?: number;
  /** Per-address DoS budgets for clients (C tor's DoS subsystem; see lib/relay/dos.ts). */
  dos?: DosOptions;
  /** The CREATE2 handshake queue's overload limits (C tor onion_queue.c; onion_queue.ts). */
  onionQueue?: OnionQueueOptions;
  /**
   * A link with this many CREATE2 handshakes waiting is not read until they fall to a quarter
   * of it (default 64). Ours, not C tor's: C tor reads on while worker threads run ntor; here
   * ntor shares the one event loop, and reading a one-link flood at line rate (refusing most of
   * it) took the relay's whole CPU for seconds. Paused, the link's sender waits on TCP.
   */
  maxPendingHandshakesPerLink?: number;
  /**
   * Circuits one client link (not a relay's) may hold, default 1000: past it CREATE2 is
   * answered DESTROY RESOURCELIMIT. Ours, not C tor's (its DoS defense leaves an address with
   * fewer than 3 links alone): without it one link adds a circuit (≈ 4 KB) per handshake the
   * relay can run, about a thousand a second, for as long as it lives.
   */
  maxCircuitsPerClientLink?: number;
  /** Logger. */
  log?: Logger;
}

/** Per-peer statistics. */
export interface PeerStats {
  /** Peer nickname (our directory's), or `$` and its fingerprint's first 8 digits. */
  nickname: string;
  /** Peer fingerprint. */
  fingerprint?: string;
  /** Per-circuit connections this relay opened to the peer since it started. */
  circuitLinksOpened?: number;
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

/** A circuit through this relay: its links and streams; its protocol rules are in `core`. */
interface RelayCircuit {
  prev: Hop;
  next?: Hop | undefined;
  core: RelayCircuitCore;
  streams: Map<number, EdgeStream>;
  closed: boolean;
  /** When cells were queued for it after both its queues were empty (for the OOM order). */
  queuedSince?: number | undefined;
  /** Its EXTEND2 still wanted (a TRUNCATE cancels one pending). */
  extends: ExtendAttempts;
  /** Exit streams still resolving or connecting; an END marks one abandoned. */
  connecting: Map<number, { abandoned: boolean }>;
  /** Its BEGIN/RESOLVE budget (DoSStreamCreation), made at the first one. */
  streamBucket?: TokenCounter;
}

/** Exit streams stop packaging at this many queued cells (tor's relay.c CELL_QUEUE_HIGHWATER_SIZE). */
const MAX_QUEUE_BEFORE_BACKPRESSURE = 256;
/** ...and resume at this many (relay.c CELL_QUEUE_LOWWATER_SIZE). */
const RESUME_QUEUE_AT = 64;

/** The relays of a network with no directory of ours (a C tor network). */
const NO_DIRECTORY: { relays: RelayEntry[] } = { relays: [] };

/** How often the memory watchdog looks at the queues (C tor checks on every queued cell). */
const OOM_CHECK_MS = 250;

/** An onion router. */
export class Relay {
  /** Our nickname. */
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
  /** Every channel, opened or accepted (the one place channels are made). */
  #pool: ChannelPool;
  /** How circuits reach their next hop (from the transport registry). */
  #transport: CircuitTransport;
  /** Channels with their circuits. */
  #circuits = new Map<Channel, Map<number, RelayCircuit>>();
  #peerStats = new Map<string, PeerStats>();
  #handshaking = 0;
  #exitStreams = 0;
  #refused = 0;
  #stopped = false;
  #log: Logger;
  #tasks = new Set<Promise<unknown>>();
  #idleTimer?: ReturnType<typeof setInterval>;
  #oomTimer?: ReturnType<typeof setInterval>;
  #oomKilled = 0;
  #dos: DosGuard;
  /** Client links (not relays) with the address they came from, for the DoS budgets. */
  #clients = new Map<Channel, { address: string; purpose: "shared" | "circuit" }>();
  /** CREATE2 handshakes waiting for the CPU, and the circuit ids they hold per channel. */
  #onionQueue: OnionQueue;
  /** Times a link was paused for its waiting handshakes (maxPendingHandshakesPerLink). */
  #linkPauses = 0;
  /** Client links not read for a while after a refused CREATE2 (see #throttle). */
  #throttled = new Map<Channel, { refused: number; timer?: ReturnType<typeof setTimeout> }>();
  #creating = new Map<Channel, Set<number>>();
  #scheduler: ChannelScheduler;
  #membership?: TorNetworkMembership;

  /** A relay with its keys, directory and transport; call {@link start} to listen. */
  constructor(options: RelayOptions) {
    this.#o = options;
    this.nickname = options.nickname;
    this.keys = options.keys;
    this.#fingerprint = relayFingerprint(options.keys);
    // Refusals under a flood come by the thousand: one line per shape and window, as C tor.
    this.#log = rateLimitWarnings(options.log ?? nullLogger);
    if (options.bandwidth) {
      this.#bucket = new TokenBucket(options.bandwidth.rate, options.bandwidth.burst);
      this.#readBucket = new TokenBucket(options.bandwidth.rate, options.bandwidth.burst);
    }
    this.#policy = new ExitPolicy(options.exitAllow ?? []);
    this.#dos = new DosGuard(options.dos);
    this.#onionQueue = new OnionQueue(options.onionQueue);
    this.#scheduler = new ChannelScheduler({ kind: options.scheduler ?? "vanilla" });
    this.#pool = new ChannelPool({
      self: options.keys,
      knownRelay: (ed) => this.#relayByIdentity(ed)?.fingerprint,
      ...(options.handshakeTimeoutMs ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
      log: this.#log,
      channel: {
        onCell: (cell, ch) => this.#onCell(cell, ch),
        onClose: (ch, err) => this.#onChannelClose(ch, err),
        scheduler: this.#scheduler,
        ...(this.#bucket ? { bucket: this.#bucket } : {}),
        ...(this.#readBucket ? { readBucket: this.#readBucket } : {}),
        ...(options.ewmaHalflifeMs !== undefined ? { ewmaHalflifeMs: options.ewmaHalflifeMs } : {}),
      },
    });
    this.#transport = createTransport(this.#transportName, this.#pool, {
      ...options,
      role: "relay",
      socketsAvailable: () => this.#socketsInUse() < this.#fdBudget * 0.9,
    });
  }

  get #dir(): { relays: RelayEntry[] } {
    const d = this.#o.directory;
    if (!d) return NO_DIRECTORY;
    return typeof d === "function" ? d() : d;
  }

  /** Whether we serve exit streams. */
  get #isExit(): boolean {
    if (this.#o.exit !== undefined) return this.#o.exit;
    const me = this.#dir.relays.find((r) => r.fingerprint === this.#fingerprint);
    if (me) return me.flags.includes("exit");
    return !!this.#o.authorities && (this.#o.exitAllow?.length ?? 0) > 0;
  }

  /** Our fingerprint (SHA-1 of the RSA identity key, 40 upper-case hex). */
  get fingerprint(): string {
    return this.#fingerprint;
  }

  /** What each authority answered to our descriptor (empty outside a C tor network). */
  get published(): PublishResult[] {
    return this.#membership?.published ?? [];
  }

  get #transportName(): Transport {
    return this.#o.transport ?? "tor";
  }

  /** The port listened on (after start). */
  get port(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /**
   * Starts listening; resolves once the OR port is open (and, in a C tor network, once every
   * authority has answered our descriptor: see {@link published}).
   */
  async start(): Promise<void> {
    // Relay-cell AES and SHA-1 through OpenSSL when it loads (explicit, not an import effect).
    installNativeCrypto();
    this.#listener = Deno.listen({
      hostname: this.#o.address ?? "127.0.0.1",
      port: this.#o.orPort ?? 0,
    });
    this.#track(this.#acceptLoop(this.#listener));
    this.#idleTimer = setInterval(() => this.#closeIdle(), 10_000);
    this.#oomTimer = setInterval(() => this.#checkMemory(), OOM_CHECK_MS);
    const address = this.#o.address ?? "127.0.0.1";
    if (this.#transportName === "pctcp") {
      // Announced in band on every Tor link (pctcp_hello.ts): C tor peers ignore it.
      this.#pool.hello = {
        linkKey: this.#o.keys.link.public,
        address,
        orPort: this.port,
        perCircuit: true,
      };
    }
    this.#log.info(
      `relay ${this.nickname} ${this.#fingerprint} listening on ${address}:${this.port} (${this.#transportName}, scheduler ${this.#scheduler.kind})`,
    );
    if (this.#o.authorities?.length) {
      this.#membership = new TorNetworkMembership({
        authorities: this.#o.authorities,
        keys: this.#o.keys,
        nickname: this.nickname,
        address,
        orPort: () => this.port,
        ...(this.#o.bandwidth
          ? {
            bandwidth: {
              rate: this.#o.bandwidth.rate,
              burst: this.#o.bandwidth.burst ?? this.#o.bandwidth.rate,
            },
          }
          : {}),
        exitPolicy: exitPolicyLines(this.#o.exitAllow ?? [], this.#isExit),
        contact: "pctcp relay (not Tor; research)",
        onRenewed: () => this.#o.onKeysRenewed?.(this.#o.keys),
        log: this.#log,
      });
      await this.#membership.start();
      for (const r of this.#membership.published) {
        this.#log.info(
          `descriptor to ${r.authority}: ${r.status} ${r.reason}${
            r.accepted ? "" : " (not stored)"
          }`,
        );
      }
    }
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

  /** The directory's relay with this Ed25519 identity. */
  #relayByIdentity(identity: Uint8Array): RelayEntry | undefined {
    const id = toBase64(identity);
    return this.#dir.relays.find((r) => r.identity === id);
  }

  /** A peer's name for logs and stats: its directory nickname, else its fingerprint's start. */
  #label(fp: string | undefined): string {
    if (!fp) return "client";
    return this.#dir.relays.find((r) => r.fingerprint === fp)?.nickname ?? `$${fp.slice(0, 8)}`;
  }

  /** Sockets held now. */
  #socketsInUse(): number {
    return this.#pool.size + this.#handshaking + this.#exitStreams;
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
    const address = (conn.remoteAddr as Deno.NetAddr).hostname;
    // C tor checks the concurrent-connection budget at accept (connection.c, dos.c).
    if (!this.#dos.connectionAllowed(address)) {
      this.#refused++;
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    // No Nagle on any relay socket (TOR-INTEROP.md: a handshake took ≈ 50 ms with it).
    (conn as Deno.TcpConn).setNoDelay?.(true);
    this.#handshaking++;
    try {
      // Tor's link protocol starts with a TLS ClientHello (record type 22); PCTCP's
      // per-circuit connections between two of ours with the LINK2 hello (link.ts).
      const replay = new ReplayConn(conn);
      const first = await replay.peekByte(this.#o.handshakeTimeoutMs ?? 10_000);
      if (first === 0x16) return await this.#acceptTor(replay, conn, address);
      if (first === 0x50) return await this.#acceptLink2(replay, conn, address);
      throw new Error(
        first === null ? "closed before a handshake" : `not a link: first byte ${first}`,
      );
    } catch (e) {
      this.#log.warn(`link from ${address} refused: ${(e as Error).message}`);
      try {
        conn.close();
      } catch { /* closed */ }
    } finally {
      this.#handshaking--;
    }
  }

  async #acceptTor(replay: ReplayConn, conn: Deno.Conn, address: string): Promise<void> {
    const link: TorLink = await torLinkAccept(replay as unknown as Deno.Conn, {
      keys: this.#o.keys.tor,
      ...(this.#o.handshakeTimeoutMs ? { timeoutMs: this.#o.handshakeTimeoutMs } : {}),
      log: this.#log,
    });
    if (this.#stopped) return link.close();
    this.#log.debug(
      `Tor link from ${address}: ${link.peer.role} ${link.peer.rsaFingerprint ?? ""}`,
    );
    // Client links (not relays) count against their address's budget (dos.c).
    const relay = link.peer.role === "relay";
    if (!relay && !this.#dos.clientLinkOpened(address, "shared")) {
      this.#refused++;
      link.close();
      return;
    }
    const chan = this.#pool.adoptTor(link, this.#label(link.peer.rsaFingerprint), conn);
    if (!relay) this.#clients.set(chan, { address, purpose: "shared" });
  }

  /** A per-circuit connection (LINK2): only from a relay whose identity a Tor link or our directory proved. */
  async #acceptLink2(replay: ReplayConn, conn: Deno.Conn, address: string): Promise<void> {
    const link: Link = await linkAccept(replay, {
      keys: { identity: this.#o.keys.identity.public, link: this.#o.keys.link },
      allowRelay: (id) => this.#pool.fingerprintOf(id) !== undefined,
      // Our transport's own policy, whatever the peer asked (pctcp: plaintext only where
      // IPsec covers the peer now, or in insecure lab mode; tor: never).
      allowPlaintext: async (addr) => (await this.#transport.allowPlaintext?.(addr)) ?? false,
      remoteAddress: address,
      ...(this.#o.handshakeTimeoutMs ? { timeoutMs: this.#o.handshakeTimeoutMs } : {}),
    });
    if (link.purpose !== "circuit") {
      // Shared links are Tor's link protocol now; LINK2 carries per-circuit connections only.
      link.close();
      throw new Error("LINK2 is only for per-circuit connections");
    }
    const fp = link.peer.identity ? this.#pool.fingerprintOf(link.peer.identity) : undefined;
    if (!fp && !this.#dos.clientLinkOpened(address, "circuit")) {
      this.#refused++;
      link.close();
      return;
    }
    const chan = this.#pool.adopt(link, this.#label(fp), conn, !!fp);
    if (!fp) this.#clients.set(chan, { address, purpose: "circuit" });
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

  #onChannelClose(chan: Channel, err?: Error): void {
    if (err && !this.#stopped) this.#log.debug(`channel ${chan.label} closed: ${err.message}`);
    const client = this.#clients.get(chan);
    if (client) this.#dos.clientLinkClosed(client.address, client.purpose);
    this.#clients.delete(chan);
    this.#creating.delete(chan);
    clearTimeout(this.#throttled.get(chan)?.timer);
    this.#throttled.delete(chan);
    const circs = this.#circuits.get(chan);
    this.#circuits.delete(chan);
    if (!circs) return;
    for (const circ of new Set(circs.values())) {
      // The link is gone: tear the circuit down towards the other side (tor-spec §5.4).
      this.#destroy(circ, DestroyReason.CHANNEL_CLOSED, chan);
    }
  }

  #register(hop: Hop, circ: RelayCircuit): void {
    if (hop.chan.closed) return;
    let circs = this.#circuits.get(hop.chan);
    if (!circs) this.#circuits.set(hop.chan, circs = new Map());
    circs.set(hop.circId, circ);
    hop.chan.circuits.add(hop.circId);
  }

  /** The circuit leaves `hop`'s channel; a per-circuit connection closes with its own circuit. */
  #unregister(hop: Hop): void {
    this.#circuits.get(hop.chan)?.delete(hop.circId);
    hop.chan.circuitEnded(hop.circId);
  }

  #onCell(cell: Cell, chan: Channel): void {
    const circ = this.#circuits.get(chan)?.get(cell.circId);
    switch (cell.command) {
      case CellCommand.CREATE2:
        return this.#onCreate2(cell, chan, circ);
      case CellCommand.CREATE_FAST:
        return this.#onCreateFast(cell, chan, circ);
      case CellCommand.CREATED2:
        if (circ?.next && circ.next.chan === chan && circ.next.circId === cell.circId) {
          circ.core.created(cell.payload);
        }
        return;
      case CellCommand.RELAY:
      case CellCommand.RELAY_EARLY:
        if (!circ) return; // unknown circuit: drop (tor-spec §5.1)
        if (chan === circ.prev.chan && cell.circId === circ.prev.circId) {
          return circ.core.fromPrev(cell.command, cell.payload);
        }
        return circ.core.fromNext(cell.command, cell.payload);
      case CellCommand.DESTROY:
        if (circ) this.#destroy(circ, cell.payload[0] ?? 0, chan, true);
        else this.#creating.get(chan)?.delete(cell.circId); // a handshake still waiting
        return;
      default:
        return; // PADDING, VPADDING and unknown commands are dropped (tor-spec §3)
    }
  }

  #onCreate2(cell: Cell, chan: Channel, existing?: RelayCircuit): void {
    const destroy = (reason: number) =>
      chan.sendControl({
        circId: cell.circId,
        command: CellCommand.DESTROY,
        payload: Uint8Array.of(reason),
      });
    // Circuit creation budget per client address (C tor command.c, dos_cc_new_create_cell).
    const client = this.#clients.get(chan);
    if (client?.purpose === "shared" && !this.#dos.createAllowed(client.address)) {
      this.#throttle(chan);
      return destroy(DestroyReason.RESOURCELIMIT);
    }
    const creating = this.#creating.get(chan);
    const holds = (this.#circuits.get(chan)?.size ?? 0) + (creating?.size ?? 0);
    if (client?.purpose === "shared" && holds >= (this.#o.maxCircuitsPerClientLink ?? 1000)) {
      this.#dos.refused.circuits++;
      this.#log.warn(`CREATE2 ${cell.circId} on ${chan.label} refused: the link holds ${holds}`);
      this.#throttle(chan);
      return destroy(DestroyReason.RESOURCELIMIT);
    }
    if (existing || creating?.has(cell.circId)) {
      // C tor command.c: "Received CREATE cell for known circ. Dropping." A DESTROY here would
      // tell the peer a circuit is gone that stays.
      this.#log.warn(`CREATE2 ${cell.circId} on ${chan.label} for a circuit in use: dropped`);
      return;
    }
    // Admission is lib/circuit's rule (create.ts); this only acts.
    const admitted = admitCreate2(cell.circId, cell.payload, {
      ...chan.meta,
      carried: (this.#circuits.get(chan)?.size ?? 0) + (creating?.size ?? 0),
      inUse: false,
    });
    if (!admitted.ok) {
      this.#log.warn(`CREATE2 ${cell.circId} on ${chan.label} refused: ${admitted.why}`);
      return destroy(admitted.refuse);
    }
    const create = admitted.create;
    // The handshake waits its turn for the CPU (lib/relay/onion_queue.ts, C tor onion_queue.c);
    // the circuit id is held meanwhile (a DESTROY or the link closing lets it go).
    let held = creating;
    if (!held) this.#creating.set(chan, held = new Set());
    const ids = held;
    ids.add(cell.circId);
    // Back-pressure per link (maxPendingHandshakesPerLink): past the mark the link is not read
    // until its handshakes drain to a quarter of it.
    const high = this.#o.maxPendingHandshakesPerLink ?? 64;
    const drained = () => {
      if (chan.readPaused && ids.size <= high >> 2 && !this.#throttled.get(chan)?.timer) {
        chan.resumeReading();
      }
    };
    const queued = this.#onionQueue.add({
      run: () => {
        if (!ids.delete(cell.circId) || chan.closed) return drained();
        this.#answerCreate2(cell.circId, chan, create, destroy);
        drained();
      },
      expire: () => {
        if (ids.delete(cell.circId) && !chan.closed) destroy(DestroyReason.RESOURCELIMIT);
        drained();
      },
    });
    if (queued && ids.size >= high && !chan.readPaused) {
      this.#linkPauses++;
      chan.pauseReading();
    }
    if (!queued) {
      ids.delete(cell.circId);
      this.#log.warn(`CREATE2 ${cell.circId} on ${chan.label} refused: onion queue full`);
      destroy(DestroyReason.RESOURCELIMIT);
    }
  }

  /**
   * Counts a CREATE2 refused on a client link for a budget (the address's, or the link's own
   * circuit cap); after 256 such refusals the link is not read for 250 ms. Refusing takes CPU
   * too (≈ 50 µs a cell here), and a flood past its budget was read and refused at line rate,
   * a second of the relay's CPU per 20,000 cells; so a link's refusals cost at most ≈ 5 % of a
   * core. Ours, not C tor's (it reads on and refuses; its reads are bounded by token buckets).
   */
  #throttle(chan: Channel): void {
    if (chan.closed) return;
    let t = this.#throttled.get(chan);
    if (!t) this.#throttled.set(chan, t = { refused: 0 });
    if (++t.refused < 256 || t.timer !== undefined) return;
    chan.pauseReading();
    t.timer = setTimeout(() => {
      this.#throttled.delete(chan);
      const waiting = this.#creating.get(chan)?.size ?? 0;
      if (waiting <= (this.#o.maxPendingHandshakesPerLink ?? 64) >> 2) chan.resumeReading();
    }, 250);
  }

  /** Runs the ntor handshake of a CREATE2 (current onion key, then the previous one) and answers. */
  #answerCreate2(
    circId: number,
    chan: Channel,
    create: Create2,
    destroy: (reason: number) => void,
  ): void {
    const id = fingerprintDigest(this.#fingerprint);
    const tor = this.#o.keys.tor;
    const answer = answerCreate2(create, [
      { id, onionKey: this.#o.keys.onion.public, onionSecret: this.#o.keys.onion.secret },
      ...(tor.previousNtor
        ? [{ id, onionKey: tor.previousNtor.key.public, onionSecret: tor.previousNtor.key.secret }]
        : []),
    ]);
    if (!answer.ok) {
      this.#log.warn(`CREATE2 ${circId} on ${chan.label} refused: ${answer.why}`);
      return destroy(answer.refuse);
    }
    this.#newCircuit(chan, circId, answer.keys);
    chan.sendControl({
      circId,
      command: CellCommand.CREATED2,
      payload: encodeCreated2(answer.reply),
    });
  }

  /** CREATE_FAST (tor-spec §5.1.3): a first hop's handshake without the onion key. */
  #onCreateFast(cell: Cell, chan: Channel, existing?: RelayCircuit): void {
    const admitted = admitCreateFast(cell.circId, cell.payload, {
      ...chan.meta,
      carried: this.#circuits.get(chan)?.size ?? 0,
      inUse: existing !== undefined,
    });
    if (!admitted.ok) {
      this.#log.warn(`CREATE_FAST ${cell.circId} on ${chan.label} refused: ${admitted.why}`);
      return chan.sendControl({
        circId: cell.circId,
        command: CellCommand.DESTROY,
        payload: Uint8Array.of(admitted.refuse),
      });
    }
    const { keys, reply } = createFastServer(admitted.x);
    this.#newCircuit(chan, cell.circId, keys);
    const payload = new Uint8Array(509);
    payload.set(reply);
    chan.sendControl({ circId: cell.circId, command: CellCommand.CREATED_FAST, payload });
  }

  /** A circuit whose previous hop is (`chan`, `circId`), with its relay-crypto keys. */
  #newCircuit(chan: Channel, circId: number, keys: Uint8Array): RelayCircuit {
    const circ = {
      prev: { chan, circId },
      streams: new Map(),
      closed: false,
      extends: new ExtendAttempts(),
      connecting: new Map(),
    } as
      & Omit<RelayCircuit, "core">
      & { core?: RelayCircuitCore };
    circ.core = new RelayCircuitCore(keys, this.#circuitIO(circ as RelayCircuit));
    this.#register(circ.prev, circ as RelayCircuit);
    return circ as RelayCircuit;
  }

  /** What the circuit core asks of this role, for one circuit. */
  #circuitIO(circ: RelayCircuit) {
    return {
      toClient: (payload: Uint8Array) => this.#queue(circ, circ.prev, CellCommand.RELAY, payload),
      toNext: (command: number, payload: Uint8Array) => {
        if (circ.next) this.#queue(circ, circ.next, command, payload);
      },
      deliver: (id: number, data: Uint8Array) => circ.streams.get(id)?.deliver(data) ?? true,
      streamSendme: (id: number) => circ.streams.get(id)?.sendme() ?? true,
      streamEnd: (id: number) => {
        // An END for a stream still connecting abandons it (C tor closes the exit connection
        // in any state): its socket, when it comes, is closed, never joined to the stream id.
        const pending = circ.connecting.get(id);
        if (pending) pending.abandoned = true;
        circ.connecting.delete(id);
        circ.streams.get(id)?.remoteEnd();
      },
      resolve: (id: number, host: string) => this.#track(this.#resolve(circ, id, host), circ),
      begin: (id: number, begin: Begin) => this.#track(this.#begin(circ, id, begin), circ),
      extend: (ext: Extend2) => this.#track(this.#extend(circ, ext), circ),
      truncateNext: (reason: DestroyReasonCode) => {
        circ.extends.cancel();
        this.#destroyNext(circ, reason);
      },
      destroy: (reason: DestroyReasonCode, why: string) => {
        this.#log.warn(`circuit ${circ.prev.circId} on ${circ.prev.chan.label}: ${why}`);
        this.#destroy(circ, reason);
      },
    };
  }

  /**
   * Queues a cell of `circ` towards `hop`; past the per-circuit queue limit the circuit is
   * closed with RESOURCELIMIT (C tor relay.c append_cell_to_circuit_queue).
   */
  #queue(circ: RelayCircuit, hop: Hop, command: number, payload: Uint8Array): void {
    const queued = hop.chan.queuedFor(hop.circId);
    if (queued === 0 && circ.queuedSince === undefined) circ.queuedSince = performance.now();
    hop.chan.send(hop.circId, command, payload);
    const limit = this.#o.maxCircuitQueue ?? RELAY_CIRC_CELL_QUEUE_SIZE;
    if (circuitQueueOverfull(queued + 1, limit)) {
      this.#log.warn(`circuit ${circ.prev.circId}: more than ${limit} cells queued; closing it`);
      this.#destroy(circ, DestroyReason.RESOURCELIMIT);
    }
  }

  /**
   * The memory watchdog (tor-spec §8.1, C tor circuits_handle_oom): past `maxMemInQueues`
   * bytes queued, closes the circuits with the oldest queued data (lib/relay/oom.ts).
   */
  #checkMemory(): void {
    const limit = this.#o.maxMemInQueues ?? (this.#defaultMem ??= defaultMaxMemInQueues());
    const seen = new Set<RelayCircuit>();
    const cands: { circ: RelayCircuit; queuedBytes: number; oldestMs: number }[] = [];
    for (const circs of this.#circuits.values()) {
      for (const circ of circs.values()) {
        if (seen.has(circ)) continue;
        seen.add(circ);
        let bytes = 0;
        for (const hop of [circ.prev, circ.next]) {
          if (hop) bytes += hop.chan.queuedFor(hop.circId) * 514;
        }
        if (bytes === 0) circ.queuedSince = undefined;
        for (const s of circ.streams.values()) bytes += s.bufferedBytes;
        if (bytes > 0) {
          cands.push({ circ, queuedBytes: bytes, oldestMs: circ.queuedSince ?? performance.now() });
        }
      }
    }
    for (const v of oomVictims(cands, limit)) {
      this.#oomKilled++;
      this.#log.warn(`out of memory for queues: closing circuit ${v.circ.prev.circId}`);
      this.#destroy(v.circ, DestroyReason.RESOURCELIMIT);
    }
  }

  #defaultMem?: number;

  async #extend(circ: RelayCircuit, ext: Extend2): Promise<void> {
    const fp = toHex(ext.id).toUpperCase();
    // Loops (C tor circuitbuild_relay.c circuit_extend_lspec_valid_helper): a relay does not
    // extend to itself, nor back to the circuit's previous hop.
    const loop = extendLoop(fp, this.#fingerprint, this.#peerFingerprint(circ.prev.chan));
    if (loop) {
      this.#log.warn(`circuit ${circ.prev.circId} on ${circ.prev.chan.label}: ${loop}`);
      return this.#destroy(circ, DestroyReason.PROTOCOL);
    }
    const listed = this.#dir.relays.find((r) => r.fingerprint === fp);
    if (
      listed &&
      (listed.address !== ext.address || listed.orPort !== ext.port ||
        !ed25519Matches(ext.ed25519, listed))
    ) {
      return circ.core.extendFailed(DestroyReason.OR_IDENTITY);
    }
    if (!listed && this.#o.directory) return circ.core.extendFailed(DestroyReason.OR_IDENTITY);
    // Not in our directory (a C tor network): the next hop as EXTEND2 names it; its link
    // handshake must prove the RSA identity and, when given, the Ed25519 one (tor-spec §5.1.2).
    const target: RelayEntry = listed ?? {
      nickname: `$${fp.slice(0, 8)}`,
      address: ext.address,
      orPort: ext.port,
      identity: ext.ed25519 ? toBase64(ext.ed25519) : "",
      fingerprint: fp,
      rsaIdentity: "",
      onionKey: "",
      linkKey: "",
      flags: [],
      bandwidth: 0,
      transports: ["tor"],
    };
    // One channel opening per circuit at a time (lib/circuit/extend_attempt.ts).
    if (circ.extends.opening > 0) {
      this.#log.warn(`circuit ${circ.prev.circId}: EXTEND2 while an earlier one still connects`);
      return circ.core.extendFailed(DestroyReason.RESOURCELIMIT);
    }
    const ticket = circ.extends.begin();
    let got;
    try {
      got = await this.#transport.channelFor(target);
    } catch (e) {
      this.#log.warn(`extend to ${target.nickname} failed: ${(e as Error).message}`);
      if (!circ.extends.wanted(ticket)) return;
      return circ.core.extendFailed(DestroyReason.CONNECTFAILED);
    } finally {
      circ.extends.settled();
    }
    const { channel: chan, circId, own } = got;
    // Closed, or truncated (or extended anew) while the channel opened: give it back.
    const wanted = circ.extends.wanted(ticket);
    if (circ.closed || chan.closed || !wanted) {
      if (own) chan.close();
      else chan.freeCircId(circId);
      if (!circ.closed && wanted) circ.core.extendFailed(DestroyReason.CONNECTFAILED);
      return;
    }
    circ.extends.done(ticket);
    circ.next = { chan, circId };
    this.#register(circ.next, circ);
    chan.sendControl({ circId, command: CellCommand.CREATE2, payload: encodeCreate2(ext.create) });
  }

  async #begin(circ: RelayCircuit, streamId: number, begin: Begin): Promise<void> {
    const end = (reason: number) => circ.core.endStream(streamId, reason);
    if (!this.#isExit) return end(EndReason.EXITPOLICY);
    // Stream creation budget per circuit (DoSStreamCreation, lib/relay/dos.ts).
    if (!(circ.streamBucket ??= this.#dos.streamBucket()).take()) {
      this.#dos.refused.streams++;
      return end(EndReason.RESOURCELIMIT);
    }
    if (this.#socketsInUse() >= this.#fdBudget) return end(EndReason.RESOURCELIMIT);
    const pending = { abandoned: false };
    circ.connecting.set(streamId, pending);
    // Gone: the circuit closed, or the client ended this stream (and may reuse its id).
    const gone = () => circ.closed || pending.abandoned;
    let conn: Deno.TcpConn | undefined;
    this.#exitStreams++;
    try {
      // Resolve, check, then connect (lib/relay/exit_connect.ts).
      const decision = await exitDecision(begin.host, begin.port, {
        policy: this.#policy,
        isRelayPort: (a, p) => this.#dir.relays.some((r) => r.address === a && r.orPort === p),
        fromRelay: this.#isRelayChannel(circ.prev.chan),
        self: [this.#o.address ?? "127.0.0.1"],
      });
      if (gone()) return;
      if ("reason" in decision) return end(decision.reason);
      try {
        conn = await Deno.connect({ hostname: decision.address, port: begin.port });
      } catch (e) {
        if (gone()) return;
        const refused = e instanceof Deno.errors.ConnectionRefused;
        return end(refused ? EndReason.CONNECTREFUSED : EndReason.NOROUTE);
      }
    } finally {
      if (circ.connecting.get(streamId) === pending) circ.connecting.delete(streamId);
      if (!conn) this.#exitStreams--;
    }
    if (gone()) {
      conn.close();
      this.#exitStreams--;
      return;
    }
    const addr = conn.remoteAddr as Deno.NetAddr;
    conn.setNoDelay(true);
    const stream = new EdgeStream(streamId, conn, this.#streamCircuit(circ));
    circ.streams.set(streamId, stream);
    circ.core.connected(streamId, encodeConnected(addr.hostname));
    try {
      await stream.pump();
    } finally {
      this.#exitStreams--;
    }
  }

  /** The fingerprint of `chan`'s peer when it authenticated as a relay. */
  #peerFingerprint(chan: Channel): string | undefined {
    return chan.meta.peer.fingerprint;
  }

  /** True when `chan`'s peer authenticated as a relay (its link handshake proved an identity). */
  #isRelayChannel(chan: Channel): boolean {
    return chan.meta.peer.role === "relay" && chan.meta.peer.fingerprint !== undefined;
  }

  /**
   * RESOLVE (tor-spec §6.4): an exit answers with RESOLVED, the IPv4 address or an error
   * (C tor connection_exit_begin_resolve; no exit policy applies to a lookup).
   */
  async #resolve(circ: RelayCircuit, streamId: number, host: string): Promise<void> {
    const me = this.#dir.relays.find((r) => r.fingerprint === this.#fingerprint);
    const allowed = (circ.streamBucket ??= this.#dos.streamBucket()).take();
    const address = me?.flags.includes("exit") && allowed ? await resolveIpv4(host) : undefined;
    if (circ.closed) return;
    circ.core.resolved(streamId, encodeResolved(address));
  }

  #streamCircuit(circ: RelayCircuit): StreamCircuit {
    const core = circ.core;
    return {
      sendRelay: (command, streamId, data) => core.originate(command, streamId, data),
      packageWindow: core.packageWindow,
      drained: () => {
        // Tor's local back-pressure (relay.c): stop packaging once the circuit queue holds
        // CELL_QUEUE_HIGHWATER_SIZE cells, resume when the channel has written it down to
        // CELL_QUEUE_LOWWATER_SIZE (an event from the channel, not a poll).
        const { chan, circId } = circ.prev;
        if (circ.closed || chan.queuedFor(circId) <= MAX_QUEUE_BEFORE_BACKPRESSURE) {
          return undefined;
        }
        return chan.whenQueueAtMost(circId, RESUME_QUEUE_AT);
      },
      removeStream: (id) => {
        circ.streams.delete(id);
        core.streamClosed(id);
      },
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
  }

  /**
   * Tears a circuit down: DESTROY to both neighbours except `from` (which already knows),
   * streams closed, per-circuit connections closed (tor-spec §5.4).
   */
  #destroy(circ: RelayCircuit, reason: number, from?: Channel, fromDestroy = false): void {
    if (circ.closed) return;
    circ.closed = true;
    circ.core.close();
    for (const s of circ.streams.values()) s.abort();
    circ.streams.clear();
    // Who hears of it, with which reason: lib/circuit's rule (create.ts destroyStep).
    const step = destroyStep([circ.prev, circ.next], {
      reason,
      ...(from ? { from } : {}),
      received: fromDestroy,
    });
    for (const hop of step.notify) {
      if (hop.chan.closed) continue;
      hop.chan.sendControl({
        circId: hop.circId,
        command: CellCommand.DESTROY,
        payload: Uint8Array.of(step.reason),
      });
    }
    for (const hop of [circ.prev, circ.next]) if (hop) this.#unregister(hop);
  }

  #closeIdle(): void {
    // Tor closes links with no circuits after a while; we use 3 minutes.
    const now = performance.now();
    for (const chan of [...this.#pool.channels()]) {
      const n = this.#circuits.get(chan)?.size ?? 0;
      if (n === 0 && now - chan.lastActive > 180_000) chan.close();
    }
  }

  /** Per-peer statistics. */
  stats(): {
    nickname: string;
    fingerprint: string;
    transport: Transport;
    published: PublishResult[];
    circuits: number;
    sockets: number;
    fdBudget: number;
    refusedConnections: number;
    oomClosedCircuits: number;
    dosRefused: { connections: number; circuits: number; streams: number };
    onionQueue: { waiting: number; dropped: number; linkPauses: number };
    peers: PeerStats[];
    scheduler: SchedulerStats;
  } {
    const unique = new Set<RelayCircuit>();
    const queued = new Map<string, { q: number; max: number; bytes: number }>();
    for (const [chan, circs] of this.#circuits) {
      for (const c of circs.values()) unique.add(c);
      const fp = chan.meta.peer.fingerprint;
      if (!fp) continue;
      const nickname = this.#label(fp);
      const e = queued.get(nickname) ?? { q: 0, max: 0, bytes: 0 };
      e.q += chan.queued;
      e.max = Math.max(e.max, chan.stats.maxQueued);
      e.bytes += chan.stats.bytesSent;
      queued.set(nickname, e);
    }
    // Connection counts come from the pool, fallbacks from the transport; neither needs
    // the directory (stats are written before the directory file exists).
    for (const p of this.#pool.peers()) {
      this.#peer(this.#label(p.fingerprint), (s) => {
        s.fingerprint = p.fingerprint;
        s.links = p.shared;
        s.circuitConnections = p.circuit;
        s.circuitLinksOpened = p.opened;
      });
    }
    for (const [nick, n] of this.#transport.fallbacksByPeer?.() ?? []) {
      this.#peer(nick, (s) => s.fallbacks = n);
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
      fingerprint: this.#fingerprint,
      transport: this.#transportName,
      published: this.published,
      circuits: unique.size,
      sockets: this.#socketsInUse(),
      fdBudget: this.#fdBudget,
      refusedConnections: this.#refused,
      oomClosedCircuits: this.#oomKilled,
      dosRefused: { ...this.#dos.refused },
      onionQueue: {
        waiting: this.#onionQueue.length,
        dropped: this.#onionQueue.dropped,
        linkPauses: this.#linkPauses,
      },
      peers: [...this.#peerStats.values()].map((s) => ({ ...s })),
      scheduler: this.#scheduler.stats(),
    };
  }

  /** Stops: closes the listener and every channel, stream and task. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#idleTimer);
    await this.#membership?.stop();
    clearInterval(this.#oomTimer);
    this.#onionQueue.close();
    for (const t of this.#throttled.values()) clearTimeout(t.timer);
    this.#throttled.clear();
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    const closing = this.#pool.closeAll();
    this.#scheduler.close();
    this.#bucket?.close();
    this.#readBucket?.close();
    await closing;
    await Promise.allSettled([...this.#tasks]);
  }
}
