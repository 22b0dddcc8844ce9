/**
 * The onion proxy: a SOCKS5 port (RFC 1928) in front of circuits it builds through the
 * network with CREATE2/EXTEND2 and ntor (tor-spec §5), streams with BEGIN/CONNECTED/DATA/END
 * (§6) and SENDME flow control (§7). Circuits are reused per isolation key (the SOCKS user
 * name) until they are 10 minutes dirty; one circuit is built ahead of need.
 * @module
 */

import { type Cell, CellCommand, DestroyReason } from "../cell/cell.ts";
import { EndReason } from "../cell/relay_cell.ts";
import { ClientCircuitCore } from "../circuit/mod.ts";
import type { Channel } from "../channel/channel.ts";
import { ChannelPool } from "../transport/pool.ts";
import type { CircuitTransport } from "../transport/transport.ts";
import { createTransport, type TransportOptions } from "../transport/registry.ts";
import { installNativeCrypto } from "../transport/openssl.ts";
import { fingerprintDigest } from "../directory/keys.ts";
import type { RelayEntry, SignedDocument } from "../directory/document.ts";
import { concatBytes } from "../crypto/kdf.ts";
import { fromBase64 } from "../util/bytes.ts";
import { type EdgeSocket, EdgeStream } from "../edge/stream.ts";
import { LateSocket } from "../edge/late_socket.ts";
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

/**
 * Options of the onion proxy. The transport to guards and its own options come nested by
 * name (`{ transport: "pctcp", pctcp: { caps, preopen } }`, see lib/transport/registry.ts).
 */
export interface ClientOptions extends TransportOptions {
  /** The signed network document, or a function giving the current one. */
  directory: SignedDocument | (() => SignedDocument);
  /** SOCKS listen address (default 127.0.0.1). */
  socksAddress?: string;
  /** SOCKS port (0: any free port). */
  socksPort?: number;
  /** Pinned path (nicknames or fingerprints) for every circuit. */
  path?: string[];
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

/**
 * A circuit built by this client: where it goes, when it was built and which isolation key
 * holds it. Its protocol state lives in a {@link ClientCircuitCore}; this object joins that
 * core to a channel and to SOCKS streams.
 */
export class ClientCircuit {
  /** Local circuit id (for logs and stream events). */
  readonly id: string;
  /** The relays, guard first. */
  readonly path: RelayEntry[];
  /** The isolation key (SOCKS user and password) the circuit serves. */
  isolation: string;
  /** Build time in ms. */
  buildMs = 0;
  /** When a stream first used the circuit (performance.now ms). */
  dirtySince?: number;
  #chan: Channel;
  #circId: number;
  #core: ClientCircuitCore;
  #streams = new Map<number, EdgeStream>();
  #pending = new Map<number, (reason: number | "connected") => void>();
  /** Streams connected whose SOCKS socket has not joined yet (their data waits there). */
  #late = new Map<number, LateSocket>();
  #built: Promise<void>;
  #onClosed: (circ: ClientCircuit) => void;

  /** @internal Made by {@link OnionClient}. */
  constructor(
    id: string,
    path: RelayEntry[],
    isolation: string,
    link: { chan: Channel; circId: number; own: boolean; buildTimeoutMs: number },
    onClosed: (circ: ClientCircuit) => void,
  ) {
    this.id = id;
    this.path = path;
    this.isolation = isolation;
    this.#chan = link.chan;
    this.#circId = link.circId;
    this.#onClosed = onClosed;
    let resolve!: () => void, reject!: (e: Error) => void;
    this.#built = new Promise((res, rej) => (resolve = res, reject = rej));
    this.#built.catch(() => {});
    // ntor's ID and EXTEND2's legacy id are the RSA identity digest (tor-spec §5.1.4, §5.1.2).
    const hops = path.map((r) => ({
      id: fingerprintDigest(r.fingerprint),
      onionKey: fromBase64(r.onionKey),
      address: r.address,
      port: r.orPort,
      ...(r.identity ? { ed25519: fromBase64(r.identity) } : {}),
    }));
    this.#core = new ClientCircuitCore(hops, {
      send: (command, payload) => {
        if (command === CellCommand.RELAY || command === CellCommand.RELAY_EARLY) {
          this.#chan.send(this.#circId, command, payload);
        } else if (!this.#chan.closed) {
          this.#chan.sendControl({ circId: this.#circId, command, payload });
        }
      },
      built: () => resolve(),
      connected: (sid) => {
        // The stream takes data from now on, before its SOCKS socket joins (item 11 of
        // issue 24: a server that speaks first).
        if (this.#pending.has(sid)) this.#openEdge(sid);
        this.#settleStream(sid, "connected");
      },
      streamEnded: (sid, reason) => {
        if (this.#pending.has(sid)) this.#settleStream(sid, reason);
        else this.#streams.get(sid)?.remoteEnd();
      },
      deliver: (sid, data) => this.#streams.get(sid)?.deliver(data) ?? true,
      streamSendme: (sid) => this.#streams.get(sid)?.sendme() ?? true,
      closed: (_reason, _remote, why) => {
        reject(new CircuitBuildError(why));
        for (const p of this.#pending.values()) p(EndReason.DESTROY);
        this.#pending.clear();
        for (const st of this.#streams.values()) st.abort();
        this.#streams.clear();
        this.#onClosed(this);
      },
    }, { buildTimeoutMs: link.buildTimeoutMs });
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#core.state === "closed";
  }

  /** The channel to the guard. */
  get chan(): Channel {
    return this.#chan;
  }

  /** The circuit id on that channel. */
  get circId(): number {
    return this.#circId;
  }

  /** @internal Starts the build; resolves once every hop answered. */
  build(): Promise<void> {
    this.#core.start();
    return this.#built;
  }

  /** @internal Enforces the build timeout (called by a timer). */
  tick(): void {
    this.#core.tick();
  }

  /** @internal A cell from the guard. */
  onCell(cell: Cell): void {
    this.#core.onCell(cell.command, cell.payload);
  }

  /** Closes the circuit: DESTROY to the guard, streams closed. */
  close(reason: number): void {
    this.#core.close(reason, `closed by the client (reason ${reason})`);
  }

  /** @internal The guard's link went away: close without telling it. */
  linkClosed(): void {
    this.#core.onCell(CellCommand.DESTROY, Uint8Array.of(DestroyReason.CHANNEL_CLOSED));
  }

  /**
   * @internal Opens a stream (BEGIN) and resolves "connected" or the END reason; gives up
   * after `timeoutMs`.
   */
  openStream(
    host: string,
    port: number,
    timeoutMs: number,
  ): Promise<{ streamId: number; result: number | "connected" }> {
    if (this.closed) return Promise.resolve({ streamId: 0, result: EndReason.DESTROY });
    const streamId = this.#core.begin(host, port);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#pending.delete(streamId);
        // END TIMEOUT to the exit; a CONNECTED that comes later is dropped (client_circuit.ts).
        this.#core.abandonStream(streamId, EndReason.TIMEOUT);
        resolve({ streamId, result: EndReason.TIMEOUT });
      }, timeoutMs);
      this.#pending.set(streamId, (r) => {
        clearTimeout(t);
        resolve({ streamId, result: r });
      });
    });
  }

  /**
   * @internal Joins a connected stream to a socket and pumps it. A circuit torn down after
   * CONNECTED but before the stream was joined (e.g. a protocol violation in the same frame)
   * closes the socket at once instead of leaving it waiting.
   */
  attach(streamId: number, socket: EdgeSocket): Promise<void> {
    const late = this.#late.get(streamId);
    this.#late.delete(streamId);
    const stream = this.#streams.get(streamId);
    if (this.closed || !late || !stream) {
      try {
        socket.close();
      } catch { /* closed */ }
      return Promise.resolve();
    }
    late.attach(socket);
    return stream.pump();
  }

  /** @internal The SOCKS side of a connected stream went away before it joined: END it. */
  dropStream(streamId: number): void {
    const late = this.#late.get(streamId);
    this.#late.delete(streamId);
    this.#streams.get(streamId)?.end(EndReason.MISC);
    late?.close(); // data waiting for the socket is dropped with it
  }

  /** The stream's edge, made at CONNECTED with a socket that joins later. */
  #openEdge(streamId: number): void {
    const core = this.#core;
    const late = new LateSocket();
    const stream = new EdgeStream(streamId, late, {
      sendRelay: (cmd, id, data) => core.send(cmd, id, data),
      packageWindow: core.packageWindow,
      removeStream: (id) => {
        this.#streams.delete(id);
        this.#late.delete(id);
        core.streamClosed(id);
      },
    });
    this.#streams.set(streamId, stream);
    this.#late.set(streamId, late);
  }

  #settleStream(streamId: number, r: number | "connected"): void {
    const p = this.#pending.get(streamId);
    this.#pending.delete(streamId);
    p?.(r);
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
  /** Error name. */
  override name = "CircuitBuildError";
}

/** The onion proxy. */
export class OnionClient {
  #o: ClientOptions;
  #log: Logger;
  #listener?: Deno.Listener;
  /** Every channel to a guard (the one place the client makes channels). */
  #pool: ChannelPool;
  /** How circuits reach their guard (from the transport registry). */
  #transport: CircuitTransport;
  #circuitsByChan = new Map<Channel, Map<number, ClientCircuit>>();
  #circuits = new Set<ClientCircuit>();
  #preemptive?: Promise<ClientCircuit> | undefined;
  #building = new Map<string, Promise<ClientCircuit>>();
  #nextCircuit = 1;
  #stopped = false;
  #tasks = new Set<Promise<unknown>>();

  /** A client with its directory, SOCKS address and transport; call {@link start}. */
  constructor(options: ClientOptions) {
    this.#o = options;
    this.#log = options.log ?? nullLogger;
    this.#pool = new ChannelPool({
      channel: {
        onCell: (cell, ch) => this.#onCell(cell, ch),
        onClose: (ch) => this.#onChannelClose(ch),
      },
    });
    this.#transport = createTransport(options.transport ?? "tor", this.#pool, {
      ...options,
      role: "client",
    });
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
    // Relay-cell AES and SHA-1 through OpenSSL when it loads (explicit, not an import effect).
    installNativeCrypto();
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
    const id = String(this.#nextCircuit++);
    const t0 = performance.now();
    const timeout = this.#o.buildTimeoutMs ?? 30_000;
    let circ: ClientCircuit | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const { channel: chan, circId, own } = await this.#transport.channelFor(hops[0]!);
      const c = new ClientCircuit(
        id,
        hops,
        isolation,
        { chan, circId, own, buildTimeoutMs: timeout },
        (closed) => this.#forget(closed),
      );
      circ = c;
      let circs = this.#circuitsByChan.get(chan);
      if (!circs) this.#circuitsByChan.set(chan, circs = new Map());
      circs.set(circId, c);
      timer = setTimeout(() => c.tick(), timeout);
      await c.build();
    } catch (e) {
      circ?.close(DestroyReason.FINISHED);
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

  #forget(circ: ClientCircuit): void {
    this.#circuits.delete(circ);
    this.#circuitsByChan.get(circ.chan)?.delete(circ.circId);
    // Its own channel (per-circuit) closes with it there, after the DESTROY.
    circ.chan.circuitEnded(circ.circId);
  }

  #onChannelClose(chan: Channel): void {
    const circs = this.#circuitsByChan.get(chan);
    this.#circuitsByChan.delete(chan);
    for (const c of [...circs?.values() ?? []]) c.linkClosed();
  }

  #onCell(cell: Cell, chan: Channel): void {
    this.#circuitsByChan.get(chan)?.get(cell.circId)?.onCell(cell);
  }

  /** Closes a circuit: DESTROY to the guard with `reason`, streams closed. */
  closeCircuit(circ: ClientCircuit, reason: number): void {
    circ.close(reason);
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
      const { streamId, result } = await circ.openStream(
        req.host,
        req.port,
        this.#o.streamTimeoutMs ?? 30_000,
      );
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
      try {
        await write(encodeReply(SocksReply.SUCCEEDED));
      } catch (e) {
        circ.dropStream(streamId);
        throw e;
      }
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
      await circ.attach(streamId, socket);
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
    for (const c of [...this.#circuits]) c.close(DestroyReason.REQUESTED);
    await this.#pool.closeAll();
    await Promise.allSettled([...this.#tasks]);
  }
}
