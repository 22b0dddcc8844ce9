/**
 * The onion proxy: a SOCKS5 port (RFC 1928) in front of circuits it builds through the
 * network with CREATE2/EXTEND2 and ntor (tor-spec §5), streams with BEGIN/CONNECTED/DATA/END
 * (§6) and SENDME flow control (§7). Circuits are reused per isolation key (the SOCKS user
 * name) until they are 10 minutes dirty; one circuit is built ahead of need.
 * @module
 */

import { type Cell, CellCommand } from "../cell/cell.ts";
import { decodeRelayCell, encodeRelayCell, RelayCommand } from "../cell/relay_cell.ts";
import {
  decodeCreated2,
  decodeEnd,
  decodeSendme,
  encodeBegin,
  encodeCreate2,
  encodeExtend2,
  encodeSendme,
  HandshakeType,
} from "../cell/messages.ts";
import { ntorClient1, ntorClient2 } from "../crypto/ntor.ts";
import { ClientCrypto } from "../crypto/relay_crypto.ts";
import {
  CircuitPackageWindow,
  CIRCWINDOW_INCREMENT,
  CIRCWINDOW_START,
  DeliverWindow,
} from "../circuit/flow.ts";
import { Channel } from "../channel/channel.ts";
import { linkConnect } from "../transport/link.ts";
import { identityDigest } from "../directory/keys.ts";
import type { RelayEntry, SignedDocument, Transport } from "../directory/document.ts";
import { concatBytes } from "../crypto/kdf.ts";
import { fromBase64 } from "../util/bytes.ts";
import { type EdgeSocket, EdgeStream } from "../edge/stream.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import { choosePath, pinnedPath } from "./path.ts";
import {
  encodeReply,
  endReasonToReply,
  parseGreeting,
  parseRequest,
  parseUserPass,
  SocksError,
  SocksReply,
} from "./socks.ts";

/** Options of the onion proxy. */
export interface ClientOptions {
  /** The signed network document, or a function giving the current one. */
  directory: SignedDocument | (() => SignedDocument);
  /** SOCKS listen address (default 127.0.0.1). */
  socksAddress?: string;
  /** SOCKS port (0: any free port). */
  socksPort?: number;
  /** Pinned path (nicknames or fingerprints) for every circuit. */
  path?: string[];
  /** Transport this client speaks to guards (default "tor"). */
  transport?: Transport;
  /** Build one circuit at start (default true). */
  preemptive?: boolean;
  /** Circuit build timeout, ms (default 30 000). */
  buildTimeoutMs?: number;
  /** Stream attach timeout, ms (default 30 000). */
  streamTimeoutMs?: number;
  /** Said in every stream event, e.g. that the network runs in insecure lab mode. */
  securityNote?: string;
  /** Called for every stream attached to a circuit (joins SOCKS source ports to circuits). */
  onStream?: (event: StreamEvent) => void;
  /** Logger. */
  log?: Logger;
}

/** A stream attached to a circuit, as recorded for measurement joins. */
export interface StreamEvent {
  /** Wall-clock time, ISO 8601. */
  time: string;
  /** The SOCKS client's source port. */
  sourcePort: number;
  /** Target host:port. */
  target: string;
  /** Circuit id (local). */
  circuit: string;
  /** Relay nicknames, guard first. */
  path: string[];
  /** Circuit build time in ms. */
  buildMs: number;
  /** "ok" or the SOCKS reply code's name. */
  outcome: string;
  /** The network's security note, when it has one (insecure lab mode). */
  security?: string;
}

/** A circuit built by this client. */
export class ClientCircuit {
  readonly id: string;
  readonly path: RelayEntry[];
  isolation: string;
  buildMs = 0;
  dirtySince?: number;
  closed = false;
  chan!: Channel;
  circId = 0;
  readonly crypto: ClientCrypto = new ClientCrypto();
  readonly streams: Map<number, EdgeStream> = new Map();
  readonly pending: Map<number, (reason: number | "connected") => void> = new Map();
  readonly packageWindow: CircuitPackageWindow = new CircuitPackageWindow();
  readonly deliverWindow: DeliverWindow = new DeliverWindow(
    CIRCWINDOW_START,
    CIRCWINDOW_INCREMENT,
  );
  ownChannel = false;
  #nextStream = 1;
  #waiter?: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;

  constructor(id: string, path: RelayEntry[], isolation: string) {
    this.id = id;
    this.path = path;
    this.isolation = isolation;
  }

  /** Waits for the next CREATED2/EXTENDED2 body. */
  waitHandshake(): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.#waiter = { resolve, reject });
  }

  /** Delivers a handshake reply (or a failure) to the waiting builder. */
  settle(reply: Uint8Array | Error): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    if (!w) return;
    if (reply instanceof Error) w.reject(reply);
    else w.resolve(reply);
  }

  /** A fresh stream id. */
  allocStream(): number {
    for (;;) {
      const id = this.#nextStream;
      this.#nextStream = (this.#nextStream % 0xffff) + 1;
      if (!this.streams.has(id) && !this.pending.has(id)) return id;
    }
  }

  /** Sends a relay cell to hop `hop` (default the last). */
  sendRelay(
    command: number,
    streamId: number,
    data: Uint8Array,
    hop = this.crypto.hops - 1,
    early = false,
  ): void {
    if (this.closed) return;
    const payload = encodeRelayCell({ command, streamId, data });
    this.crypto.encrypt(payload, hop);
    this.chan.send(this.circId, early ? CellCommand.RELAY_EARLY : CellCommand.RELAY, payload);
  }
}

/**
 * A SOCKS user name `pctcp-path=r1,r2,r3[;anything]` asks for a circuit through those relays
 * (nicknames or fingerprints); the rest of the name still isolates. Used by `pctcp measure
 * --path` with our client.
 */
export function pathFromUser(isolation: string, relays: RelayEntry[]): RelayEntry[] | undefined {
  const m = /^pctcp-path=([^;\0]+)/.exec(isolation);
  return m ? pinnedPath(relays, m[1]!.split(",")) : undefined;
}

/** Raised when a circuit cannot be built. */
export class CircuitBuildError extends Error {
  override name = "CircuitBuildError";
}

/** The onion proxy. */
export class OnionClient {
  #o: ClientOptions;
  #log: Logger;
  #listener?: Deno.Listener;
  #shared = new Map<string, Promise<Channel>>();
  #circuitsByChan = new Map<Channel, Map<number, ClientCircuit>>();
  #circuits = new Set<ClientCircuit>();
  #preemptive?: Promise<ClientCircuit> | undefined;
  #building = new Map<string, Promise<ClientCircuit>>();
  #nextCircuit = 1;
  #stopped = false;
  #tasks = new Set<Promise<unknown>>();

  constructor(options: ClientOptions) {
    this.#o = options;
    this.#log = options.log ?? nullLogger;
  }

  get #dir(): SignedDocument {
    const d = this.#o.directory;
    return typeof d === "function" ? d() : d;
  }

  /** The SOCKS port (after start). */
  get socksPort(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /** Opens the SOCKS port (and starts a preemptive circuit). */
  start(): Promise<void> {
    this.#listener = Deno.listen({
      hostname: this.#o.socksAddress ?? "127.0.0.1",
      port: this.#o.socksPort ?? 0,
    });
    this.#track(this.#acceptLoop(this.#listener));
    if (this.#o.preemptive ?? true) this.#startPreemptive();
    return Promise.resolve();
  }

  /** Keeps a task for stop(); a failure is logged and never takes the client down. */
  #track(p: Promise<unknown>): void {
    const q = p.catch((e) => this.#log.warn(`task failed: ${(e as Error).message}`));
    this.#tasks.add(q);
    q.finally(() => this.#tasks.delete(q));
  }

  #startPreemptive(): void {
    if (this.#stopped) return;
    const p = this.buildCircuit("");
    p.catch((e) => this.#log.warn(`preemptive circuit failed: ${e.message}`));
    this.#preemptive = p;
    this.#track(p);
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      this.#track(this.#onSocks(conn as Deno.TcpConn));
    }
  }

  /** Builds a circuit along the pinned path or a chosen one. */
  async buildCircuit(isolation: string, path?: RelayEntry[]): Promise<ClientCircuit> {
    const relays = this.#dir.relays;
    const hops = path ?? (this.#o.path ? pinnedPath(relays, this.#o.path) : choosePath(relays));
    const circ = new ClientCircuit(String(this.#nextCircuit++), hops, isolation);
    const t0 = performance.now();
    const timeout = this.#o.buildTimeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#build(circ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CircuitBuildError(`circuit build timed out after ${timeout} ms`)),
            timeout,
          );
        }),
      ]);
    } catch (e) {
      this.closeCircuit(circ, 9);
      throw e instanceof CircuitBuildError ? e : new CircuitBuildError((e as Error).message);
    } finally {
      clearTimeout(timer);
    }
    circ.buildMs = performance.now() - t0;
    this.#circuits.add(circ);
    this.#log.debug(
      `circuit ${circ.id} built via ${hops.map((h) => h.nickname).join(",")} in ${
        circ.buildMs.toFixed(1)
      } ms`,
    );
    return circ;
  }

  async #build(circ: ClientCircuit): Promise<void> {
    const guard = circ.path[0]!;
    const perCircuit = (this.#o.transport ?? "tor") === "pctcp" &&
      guard.transports.includes("pctcp");
    const chan = perCircuit
      ? await this.#openChannel(guard, "circuit")
      : await this.#sharedChannel(guard);
    circ.chan = chan;
    circ.ownChannel = perCircuit;
    circ.circId = chan.allocCircId();
    this.#circuitsByChan.get(chan)?.set(circ.circId, circ);
    for (let i = 0; i < circ.path.length; i++) {
      const relay = circ.path[i]!;
      const keys = {
        id: identityDigest(fromBase64(relay.identity)),
        onionKey: fromBase64(relay.onionKey),
      };
      const [state, skin] = ntorClient1(keys);
      const create = { htype: HandshakeType.NTOR, hdata: skin };
      const reply = circ.waitHandshake();
      if (i === 0) {
        chan.sendControl({
          circId: circ.circId,
          command: CellCommand.CREATE2,
          payload: encodeCreate2(create),
        });
      } else {
        // EXTEND2 goes in RELAY_EARLY to the current last hop (tor-spec §5.1.2, §5.6).
        const ext = encodeExtend2({
          address: relay.address,
          port: relay.orPort,
          id: keys.id,
          create,
        });
        circ.sendRelay(RelayCommand.EXTEND2, 0, ext, i - 1, true);
      }
      circ.crypto.addHop(ntorClient2(state, await reply));
    }
  }

  #sharedChannel(guard: RelayEntry): Promise<Channel> {
    let p = this.#shared.get(guard.fingerprint);
    if (!p) {
      p = this.#openChannel(guard, "shared");
      this.#shared.set(guard.fingerprint, p);
      p.then((c) => c.run()).catch(() => {}).finally(() => this.#shared.delete(guard.fingerprint));
      p.catch(() => this.#shared.delete(guard.fingerprint));
    }
    return p;
  }

  async #openChannel(guard: RelayEntry, purpose: "shared" | "circuit"): Promise<Channel> {
    const conn = await Deno.connect({ hostname: guard.address, port: guard.orPort });
    conn.setNoDelay(true);
    const link = await linkConnect(conn, {
      peer: { identity: fromBase64(guard.identity), linkKey: fromBase64(guard.linkKey) },
      purpose,
    });
    const chan = new Channel(link, {
      initiator: true,
      label: guard.nickname,
      onCell: (cell, ch) => this.#onCell(cell, ch),
      onClose: (ch) => this.#onChannelClose(ch),
    });
    this.#circuitsByChan.set(chan, new Map());
    if (purpose === "circuit") this.#track(chan.run());
    return chan;
  }

  #onChannelClose(chan: Channel): void {
    const circs = this.#circuitsByChan.get(chan);
    this.#circuitsByChan.delete(chan);
    for (const c of circs?.values() ?? []) this.closeCircuit(c, 8, false);
  }

  #onCell(cell: Cell, chan: Channel): void {
    const circ = this.#circuitsByChan.get(chan)?.get(cell.circId);
    if (!circ) return;
    try {
      switch (cell.command) {
        case CellCommand.CREATED2:
          return circ.settle(decodeCreated2(cell.payload));
        case CellCommand.DESTROY:
          return this.closeCircuit(circ, cell.payload[0] ?? 0, false);
        case CellCommand.RELAY:
          return this.#onRelay(circ, cell.payload);
        default:
          return;
      }
    } catch (e) {
      this.#log.warn(`circuit ${circ.id}: ${(e as Error).message}`);
      this.closeCircuit(circ, 1);
    }
  }

  #onRelay(circ: ClientCircuit, payload: Uint8Array): void {
    const hop = circ.crypto.decrypt(payload);
    if (hop < 0) throw new Error("relay cell no hop recognizes");
    const rc = decodeRelayCell(payload);
    switch (rc.command) {
      case RelayCommand.EXTENDED2:
        return circ.settle(decodeCreated2(rc.data));
      case RelayCommand.TRUNCATED:
        circ.settle(
          new CircuitBuildError(`circuit truncated at hop ${hop + 1} (reason ${rc.data[0] ?? 0})`),
        );
        return this.closeCircuit(circ, 9);
      case RelayCommand.CONNECTED: {
        const p = circ.pending.get(rc.streamId);
        circ.pending.delete(rc.streamId);
        p?.("connected");
        return;
      }
      case RelayCommand.END: {
        const p = circ.pending.get(rc.streamId);
        if (p) {
          circ.pending.delete(rc.streamId);
          return p(decodeEnd(rc.data));
        }
        circ.streams.get(rc.streamId)?.remoteEnd();
        return;
      }
      case RelayCommand.DATA: {
        const verdict = circ.deliverWindow.received();
        if (verdict === "violation") throw new Error("circuit deliver window overrun");
        if (verdict === "sendme") {
          circ.sendRelay(
            RelayCommand.SENDME,
            0,
            encodeSendme(circ.crypto.lastBackwardDigest(hop)),
            hop,
          );
        }
        const s = circ.streams.get(rc.streamId);
        if (s && !s.deliver(rc.data)) s.end(13);
        return;
      }
      case RelayCommand.SENDME:
        if (rc.streamId === 0) {
          const verdict = circ.packageWindow.circuitSendme(decodeSendme(rc.data));
          if (verdict !== "ok") throw new Error(`circuit SENDME refused: ${verdict}`);
        } else if (circ.streams.get(rc.streamId)?.sendme() === false) {
          throw new Error("unexpected stream SENDME");
        }
        return;
      default:
        return;
    }
  }

  /** Closes a circuit: DESTROY to the guard (unless it told us), streams closed. */
  closeCircuit(circ: ClientCircuit, reason: number, tellGuard = true): void {
    if (circ.closed) return;
    circ.closed = true;
    this.#circuits.delete(circ);
    circ.settle(new CircuitBuildError(`circuit closed (reason ${reason})`));
    circ.packageWindow.abort();
    for (const p of circ.pending.values()) p(5 /* DESTROY */);
    circ.pending.clear();
    for (const s of circ.streams.values()) s.abort();
    if (!circ.chan) return;
    if (tellGuard && !circ.chan.closed) {
      circ.chan.sendControl({
        circId: circ.circId,
        command: CellCommand.DESTROY,
        payload: Uint8Array.of(reason),
      });
    }
    this.#circuitsByChan.get(circ.chan)?.delete(circ.circId);
    circ.chan.freeCircId(circ.circId);
    if (circ.ownChannel) circ.chan.closeAfterFlush();
  }

  /** A circuit for a new stream with this isolation key: reuse, take the preemptive one, or build. */
  async circuitFor(isolation: string, path?: RelayEntry[]): Promise<ClientCircuit> {
    const now = performance.now();
    const usable = (c: ClientCircuit) =>
      !c.closed && (c.dirtySince === undefined || now - c.dirtySince < 600_000);
    for (const c of this.#circuits) {
      if (c.isolation === isolation && usable(c)) return c;
    }
    // A clean circuit (the preemptive one) is taken by the first isolation key that needs it.
    for (const c of this.#circuits) {
      if (!path && c.dirtySince === undefined && usable(c)) {
        // Claim it now, before any await, so a concurrent request cannot take it too.
        c.dirtySince = now;
        c.isolation = isolation;
        this.#startPreemptive();
        return c;
      }
    }
    if (this.#preemptive && !path) {
      const p = this.#preemptive;
      this.#preemptive = undefined;
      try {
        const c = await p;
        if (usable(c) && (c.dirtySince === undefined || c.isolation === isolation)) {
          c.dirtySince ??= performance.now();
          c.isolation = isolation;
          this.#startPreemptive();
          return c;
        }
      } catch { /* build a fresh one */ }
    }
    // One build per isolation key at a time: concurrent requests share it.
    let building = this.#building.get(isolation);
    if (!building) {
      building = this.buildCircuit(isolation, path).then((c) => {
        c.dirtySince ??= performance.now();
        return c;
      }).finally(() => this.#building.delete(isolation));
      this.#building.set(isolation, building);
    }
    return await building;
  }

  async #onSocks(conn: Deno.TcpConn): Promise<void> {
    conn.setNoDelay(true); // no Nagle delay on the last bytes of a response
    const sourcePort = (conn.remoteAddr as Deno.NetAddr).port;
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    const readMore = async () => {
      const n = await conn.read(chunk);
      if (n === null) throw new SocksError("client closed during the SOCKS handshake");
      buf = concatBytes(buf, chunk.subarray(0, n));
      if (buf.length > 1024) throw new SocksError("SOCKS handshake too long");
    };
    const write = async (b: Uint8Array) => {
      let off = 0;
      while (off < b.length) off += await conn.write(b.subarray(off));
    };
    let stage = "greeting";
    let target = "";
    const timer = setTimeout(() => {
      try {
        conn.close();
      } catch { /* closed */ }
    }, 30_000);
    try {
      let g;
      while (!(g = parseGreeting(buf))) await readMore();
      buf = buf.subarray(g.length);
      let isolation = "";
      if (g.methods.includes(2)) {
        await write(Uint8Array.of(5, 2));
        stage = "auth";
        let up;
        while (!(up = parseUserPass(buf))) await readMore();
        buf = buf.subarray(up.length);
        isolation = `${up.username}\0${up.password}`;
        await write(Uint8Array.of(1, 0));
      } else if (g.methods.includes(0)) {
        await write(Uint8Array.of(5, 0));
      } else {
        await write(Uint8Array.of(5, 0xff));
        conn.close();
        return;
      }
      stage = "request";
      let req;
      while (!(req = parseRequest(buf))) await readMore();
      buf = buf.subarray(req.length);
      target = `${req.host}:${req.port}`;
      clearTimeout(timer);
      stage = "circuit";
      let circ: ClientCircuit;
      try {
        circ = await this.circuitFor(isolation, pathFromUser(isolation, this.#dir.relays));
      } catch (e) {
        this.#log.warn(`no circuit for ${target}: ${(e as Error).message}`);
        await write(encodeReply(SocksReply.GENERAL_FAILURE));
        conn.close();
        return;
      }
      circ.dirtySince ??= performance.now();
      const streamId = circ.allocStream();
      const result = await new Promise<number | "connected">((resolve) => {
        const t = setTimeout(() => {
          circ.pending.delete(streamId);
          resolve(7 /* TIMEOUT */);
        }, this.#o.streamTimeoutMs ?? 30_000);
        circ.pending.set(streamId, (r) => {
          clearTimeout(t);
          resolve(r);
        });
        circ.sendRelay(
          RelayCommand.BEGIN,
          streamId,
          encodeBegin({ host: req.host, port: req.port }),
        );
      });
      const event = {
        time: new Date().toISOString(),
        sourcePort,
        target,
        circuit: circ.id,
        path: circ.path.map((r) => r.nickname),
        buildMs: Math.round(circ.buildMs * 1000) / 1000,
        ...(this.#o.securityNote ? { security: this.#o.securityNote } : {}),
      };
      if (result !== "connected") {
        const code = endReasonToReply(result);
        this.#o.onStream?.({ ...event, outcome: `socks-${code}` });
        await write(encodeReply(code));
        conn.close();
        return;
      }
      this.#o.onStream?.({ ...event, outcome: "ok" });
      await write(encodeReply(SocksReply.SUCCEEDED));
      const leftover = buf;
      const socket: EdgeSocket = leftover.length
        ? {
          read: (() => {
            let first = true;
            return (p: Uint8Array) => {
              if (first) {
                first = false;
                p.set(leftover.subarray(0, p.length));
                return Promise.resolve(Math.min(p.length, leftover.length));
              }
              return conn.read(p);
            };
          })(),
          write: (p) => conn.write(p),
          close: () => conn.close(),
        }
        : conn;
      const stream = new EdgeStream(streamId, socket, {
        sendRelay: (cmd, id, data) => circ.sendRelay(cmd, id, data),
        packageWindow: circ.packageWindow,
        onDataPackaged: () => {
          circ.packageWindow.packaged(() => circ.crypto.lastForwardDigest(circ.crypto.hops - 1));
        },
        removeStream: (id) => circ.streams.delete(id),
      });
      circ.streams.set(streamId, stream);
      await stream.pump();
    } catch (e) {
      clearTimeout(timer);
      if (e instanceof SocksError) {
        this.#log.warn(`SOCKS ${stage} from port ${sourcePort}: ${e.message}`);
        try {
          if (stage === "request" || stage === "greeting") await write(encodeReply(e.reply));
        } catch { /* gone */ }
      }
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /** Stops: closes the SOCKS port, every circuit and channel. */
  async stop(): Promise<void> {
    this.#stopped = true;
    try {
      this.#listener?.close();
    } catch { /* closed */ }
    for (const c of [...this.#circuits]) this.closeCircuit(c, 3);
    for (const chan of [...this.#circuitsByChan.keys()]) chan.close();
    for (const p of this.#shared.values()) p.then((c) => c.close()).catch(() => {});
    await Promise.allSettled([...this.#tasks]);
  }
}
