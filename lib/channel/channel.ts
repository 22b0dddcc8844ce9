/**
 * A channel: cells over one link to one peer (tor-spec §2–3). It parses incoming cells and
 * hands them to its owner, and schedules outgoing cells: control cells first, then circuits
 * by EWMA priority, written to the link in batches (a write per cell is 15× slower), paced by
 * the relay's token bucket.
 *
 * Under the `tor` transport one channel carries every circuit between two relays; under
 * `pctcp` each circuit gets a channel of its own.
 * @module
 */

import { setImmediate } from "node:timers";
import { ChunkFifo } from "./fifo.ts";
import {
  type Cell,
  CELL_LEN,
  CellCommand,
  CellReader,
  encodeCell,
  isVariableCommand,
  PAYLOAD_LEN,
  writeFixedCell,
} from "../cell/cell.ts";
import { EwmaCounts } from "./ewma.ts";
import { type ChannelLink, type ChannelMeta, closesWith, sharedMeta } from "./link.ts";
import type { KistCircuitInput } from "./kist.ts";
import type { ChannelScheduler, SchedulableChannel } from "./scheduler.ts";
import { SocketInfo, type TcpEndpoint, type TcpSocketState } from "./socket_info.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** Cells per link write. */
const BATCH_CELLS = 64;

/** The second part of a queued cell that was queued whole (control cells, short payloads). */
const NONE = new Uint8Array(0);

/** Options of a channel. */
export interface ChannelOptions {
  /** True on the side that opened the link: it picks circuit ids with the MSB set. */
  initiator: boolean;
  /** Called for each cell received. */
  onCell: (cell: Cell, channel: Channel) => void;
  /** Called once when the channel closes (error when it failed). */
  onClose?: (channel: Channel, error?: Error) => void;
  /** The relay's write bucket, shared by all its channels. */
  bucket?: TokenBucket;
  /** The relay's read bucket (Tor's BandwidthRate limits reads too): while it is empty the
   * channel stops reading, so the peer's kernel send buffer fills as it would in Tor. */
  readBucket?: TokenBucket;
  /** EWMA half-life in ms (0 disables EWMA: round-robin in arrival order). */
  ewmaHalflifeMs?: number;
  /** A label for logs. */
  label?: string;
  /**
   * The relay's scheduler. Under `kist` the channel's circuit cells leave their queues only
   * when the scheduler moves them to the output buffer; under `vanilla` (or none) the channel
   * writes them as fast as the socket takes them.
   */
  scheduler?: ChannelScheduler;
  /** The TCP socket under the link (its kernel state is read for KIST and queue reports). */
  socket?: { local: TcpEndpoint; remote: TcpEndpoint };
  /** True for a link between two relays (counted in queue reports). */
  betweenRelays?: boolean;
  /**
   * The link's facts (peer, purpose, binding, own), set by whoever wraps the link; `initiator`
   * above wins over the one here. Default: a shared channel to an unauthenticated peer.
   */
  meta?: ChannelMeta;
}

/** Cells sent and received, bytes and queue high-water mark. */
export interface ChannelStats {
  /** Cells written. */
  cellsSent: number;
  /** Cells read. */
  cellsReceived: number;
  /** Bytes written to the link (cells). */
  bytesSent: number;
  /** Largest number of cells queued at once. */
  maxQueued: number;
  /** Times reading was paused (pauseReading), when it ever was. */
  readPauses?: number;
}

/** Cells over one link, with a circuit scheduler. */
export class Channel implements SchedulableChannel {
  /** The link the cells travel on. */
  readonly link: ChannelLink;
  /** The link's facts (peer, initiator, purpose, bound circuit, own): what roles read. */
  readonly meta: ChannelMeta;
  /** A label for logs (the peer nickname). */
  readonly label: string;
  /** Cells and bytes sent and received. */
  readonly stats: ChannelStats = { cellsSent: 0, cellsReceived: 0, bytesSent: 0, maxQueued: 0 };
  #o: ChannelOptions;
  // Queued cells are pairs of parts (header, payload) in flat arrays: a circuit's cells keep
  // the payload the caller built (no 514-byte copy per cell) behind a 5-byte header shared by
  // all its cells; the link copies both into its frame (Link.writev). A cell built whole is
  // (cell, NONE).
  #control = new ChunkFifo();
  // The maps and sets below are made on first use: PCTCP has a channel per circuit, most of
  // them idle, and an empty Map costs ~180 bytes.
  #queues: Map<number, Uint8Array[]> | undefined;
  #headers: Map<number, Uint8Array> | undefined;
  #lowWaiters: Map<number, { mark: number; resolve: () => void }[]> | undefined;
  #queued = 0;
  #ewma: EwmaCounts | undefined;
  #rr: number[] = [];
  #writing = false;
  #closing = false;
  #closed = false;
  #usedIds: Set<number> | undefined;
  #kist: ChannelScheduler | undefined;
  #outbuf = new ChunkFifo();
  #outbufCells = 0;
  #readPaused = false;
  #resumeRead: (() => void) | undefined;
  #outbufBytes = 0;
  #socket: SocketInfo | undefined;
  /** Circuits attached to this channel (for teardown on close). */
  readonly circuits: Set<number> = new Set();
  /** When the channel last carried a cell (for idle timeout). */
  lastActive: number = performance.now();
  /**
   * Called once, after the read chunk holding the first cell received has been handled (then
   * cleared): a per-circuit link's first cell is the answer to its CREATE2, so the transport
   * knows that circuit's handshake at this hop is over (pctcp.ts opens the next spare then).
   */
  onFirstCell: (() => void) | undefined;

  /** Wraps an established link; `options` give the cell handler, buckets and scheduling. */
  constructor(link: ChannelLink, options: ChannelOptions) {
    this.link = link;
    this.meta = options.meta
      ? { ...options.meta, initiator: options.initiator }
      : sharedMeta(options.initiator);
    this.#o = options;
    this.label = options.label ?? "channel";
    const h = options.ewmaHalflifeMs ?? 30_000;
    this.#ewma = h > 0 ? new EwmaCounts(h) : undefined;
    if (options.socket) this.#socket = new SocketInfo(options.socket.local, options.socket.remote);
    options.scheduler?.attach(this);
    if (options.scheduler?.kind === "kist") this.#kist = options.scheduler;
  }

  /** True for a link between two relays. */
  get betweenRelays(): boolean {
    return this.#o.betweenRelays ?? false;
  }

  /** The kernel's state of the socket under the link, when it can be read. */
  socketState(): TcpSocketState | undefined {
    return this.#closed ? undefined : this.#socket?.read();
  }

  /**
   * Bytes in the output buffers: cells the KIST scheduler moved, not yet in the kernel — ours,
   * and the link's (it holds up to 32 KiB of frames being filled before the socket write).
   */
  get outbufBytes(): number {
    return this.#outbufBytes + this.link.outbuf;
  }

  /** Bytes in circuit queues (not yet scheduled). */
  get circuitQueueBytes(): number {
    return this.#queued * CELL_LEN;
  }

  /** Circuits with queued cells and their EWMA counts (for the KIST scheduler). */
  kistCircuits(): KistCircuitInput[] {
    const out: KistCircuitInput[] = [];
    const now = performance.now();
    for (const [id, q] of this.#queues ?? []) {
      if (q.length) out.push({ id, cells: q.length >> 1, ewma: this.#ewma?.get(id, now) ?? 0 });
    }
    return out;
  }

  /** Moves cells of a circuit into the output buffer, charging the circuit's EWMA count. */
  kistMove(circId: number, cells: number): void {
    const q = this.#queues?.get(circId);
    if (!q) return;
    const n = Math.min(cells, q.length >> 1);
    const moved = q.splice(0, 2 * n);
    for (const c of moved) this.#outbuf.push(c), this.#outbufBytes += c.length;
    this.#outbufCells += n;
    this.#queued -= n;
    this.#ewma?.add(circId, n);
    if (q.length === 0) this.#drained(circId);
    this.#lowWater(circId, q.length >> 1);
  }

  /** Starts writing the output buffer. */
  kistFlush(): void {
    this.#kick();
  }

  /** Starts the read loop; resolves when the link closes. */
  run(): Promise<void> {
    // A loop of callbacks, not an async function: an idle channel then holds one pending
    // socket read and this closure, not a suspended generator with its registers (PCTCP has
    // a channel per circuit, so this is paid per circuit). Buffered pieces are taken without a
    // promise.
    return new Promise<void>((done) => {
      const reader = new CellReader();
      const bucket = this.#o.readBucket;
      const stop = (error?: unknown) => {
        this.close(error as Error | undefined);
        done();
      };
      // Handles one chunk; false once the channel closed under a cell's handler.
      const handle = (chunk: Uint8Array): boolean => {
        reader.push(chunk);
        // One timestamp per chunk (a read hands out up to 8 cells), not per cell.
        this.lastActive = performance.now();
        for (let cell = reader.next(); cell; cell = reader.next()) {
          this.stats.cellsReceived++;
          this.#o.onCell(cell, this);
          if (this.#closed) return false;
        }
        // Once per chunk, not per cell.
        if (this.onFirstCell && this.stats.cellsReceived > 0) {
          const f = this.onFirstCell;
          this.onFirstCell = undefined;
          f();
        }
        return true;
      };
      const pump = (): void => {
        try {
          for (;;) {
            if (this.#closed) return done();
            if (this.#readPaused) {
              this.#resumeRead = pump; // the socket is not read meanwhile: TCP pushes back
              return;
            }
            const chunk = this.link.tryRead();
            if (chunk === undefined) {
              reader.release();
              this.link.fill().then(pump, stop);
              return;
            }
            if (chunk === null) return stop();
            if (bucket) {
              bucket.take(chunk.length).then(() => {
                try {
                  if (handle(chunk)) pump();
                  else done();
                } catch (e) {
                  stop(e);
                }
              }, stop);
              return;
            }
            if (!handle(chunk)) return done();
          }
        } catch (e) {
          stop(e);
        }
      };
      pump();
    });
  }

  /**
   * Stops handling the peer's cells after the piece in hand (up to 8 cells), until
   * {@link resumeReading}: the socket is not read meanwhile, so TCP flow control holds the
   * sender back. The relay pauses a link whose CREATE2 handshakes pile up (relay.ts).
   */
  pauseReading(): void {
    if (this.#readPaused || this.#closed) return;
    this.#readPaused = true;
    this.stats.readPauses = (this.stats.readPauses ?? 0) + 1;
  }

  /** Handles the peer's cells again (on the next turn of the event loop). */
  resumeReading(): void {
    if (!this.#readPaused) return;
    this.#readPaused = false;
    const r = this.#resumeRead;
    this.#resumeRead = undefined;
    if (r) setImmediate(r);
  }

  /** True while {@link pauseReading} holds. */
  get readPaused(): boolean {
    return this.#readPaused;
  }

  /** A fresh circuit id for a circuit we open on this channel (tor-spec §5.1.1). */
  allocCircId(): number {
    for (;;) {
      const r = crypto.getRandomValues(new Uint32Array(1))[0]! & 0x7fffffff;
      const id = (this.#o.initiator ? (r | 0x80000000) : r) >>> 0;
      const used = this.#usedIds ??= new Set();
      if (id !== 0 && !used.has(id)) {
        used.add(id);
        return id;
      }
    }
  }

  /** Releases a circuit id. */
  freeCircId(id: number): void {
    this.#usedIds?.delete(id);
    this.circuits.delete(id);
    this.#headers?.delete(id * 256 + CellCommand.RELAY);
    this.#headers?.delete(id * 256 + CellCommand.RELAY_EARLY);
    if (!this.#queues?.has(id)) this.#ewma?.delete(id);
  }

  /**
   * A circuit on this channel has ended (its DESTROY, if any, queued already): its id and
   * queued cells go, and a channel that was the circuit's own closes once the DESTROY is
   * written ({@link closesWith}: the one place that rule is decided).
   */
  circuitEnded(circId: number): void {
    this.freeCircId(circId);
    this.dropCircuit(circId);
    if (closesWith(this.meta, circId)) this.closeAfterFlush();
  }

  /** Cells queued and not yet written (circuit queues, control cells, output buffer). */
  get queued(): number {
    return this.#queued + (this.#control.length >> 1) + this.#outbufCells;
  }

  /** Cells queued for one circuit. */
  queuedFor(circId: number): number {
    return (this.#queues?.get(circId)?.length ?? 0) >> 1;
  }

  /**
   * Resolves once the circuit's queue holds at most `mark` cells (at once when it does now),
   * or the circuit is dropped, or the channel closes: the event an edge stream waits on to
   * resume packaging (Tor's low-water mark), instead of polling the queue.
   */
  whenQueueAtMost(circId: number, mark: number): Promise<void> {
    if (this.#closed || this.queuedFor(circId) <= mark) return Promise.resolve();
    return new Promise((resolve) => {
      const all = this.#lowWaiters ??= new Map();
      let ws = all.get(circId);
      if (!ws) all.set(circId, ws = []);
      ws.push({ mark, resolve });
    });
  }

  /** Wakes the waiters of a circuit whose mark its queue (now `left` cells) has reached. */
  #lowWater(circId: number, left: number): void {
    const all = this.#lowWaiters;
    if (!all || all.size === 0) return;
    const ws = all.get(circId);
    if (!ws) return;
    const keep = ws.filter((w) => left > w.mark || (w.resolve(), false));
    if (keep.length) all.set(circId, keep);
    else all.delete(circId);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a control cell (link-level, CREATE*, DESTROY): sent before circuit traffic. */
  sendControl(cell: Cell): void {
    if (this.#closed) return;
    this.#control.push(encodeCell(cell), NONE);
    this.#kick();
  }

  /**
   * Queues a fixed cell of a circuit for the scheduler. A full 509-byte `payload` is kept as it
   * is, not copied (the link copies it once into its frame): the caller must not change it
   * afterwards.
   */
  send(circId: number, command: number, payload: Uint8Array): void {
    if (this.#closed) return;
    if (isVariableCommand(command)) {
      this.sendControl({ circId, command, payload });
      return;
    }
    const queues = this.#queues ??= new Map();
    let q = queues.get(circId);
    if (!q) {
      q = [];
      queues.set(circId, q);
    }
    if (q.length === 0) {
      if (this.#ewma) this.#ewma.activate(circId);
      else this.#rr.push(circId);
    }
    if (payload.length === PAYLOAD_LEN) q.push(this.#header(circId, command), payload);
    else {
      const cell = new Uint8Array(CELL_LEN);
      writeFixedCell(cell, 0, circId, command, payload);
      q.push(cell, NONE);
    }
    this.#queued++;
    if (this.#queued > this.stats.maxQueued) this.stats.maxQueued = this.#queued;
    if (this.#kist) this.#kist.wantsWrite(this);
    else this.#kick();
  }

  /** Drops the queued cells of a circuit (it was destroyed). */
  dropCircuit(circId: number): void {
    const q = this.#queues?.get(circId);
    if (q) this.#queued -= q.length >> 1;
    this.#queues?.delete(circId);
    this.#ewma?.delete(circId);
    this.#headers?.delete(circId * 256 + CellCommand.RELAY);
    this.#headers?.delete(circId * 256 + CellCommand.RELAY_EARLY);
    this.#lowWater(circId, 0);
  }

  /**
   * The 5-byte cell header (link protocol ≥ 4: CircID 4 bytes, command), shared per circuit.
   * A circuit's RELAY and RELAY_EARLY headers are made together, two views of one buffer.
   */
  #header(circId: number, command: number): Uint8Array {
    const relay = command === CellCommand.RELAY || command === CellCommand.RELAY_EARLY;
    const key = circId * 256 + command;
    const h = relay ? this.#headers?.get(key) : undefined;
    if (h) return h;
    const id = [circId >>> 24, (circId >>> 16) & 0xff, (circId >>> 8) & 0xff, circId & 0xff];
    if (!relay) return Uint8Array.of(...id, command);
    const both = Uint8Array.of(...id, CellCommand.RELAY, ...id, CellCommand.RELAY_EARLY);
    const headers = this.#headers ??= new Map();
    headers.set(circId * 256 + CellCommand.RELAY, both.subarray(0, 5));
    headers.set(circId * 256 + CellCommand.RELAY_EARLY, both.subarray(5, 10));
    return headers.get(key)!;
  }

  /** The priority of the next batch: the EWMA count of the circuit it will serve first. */
  #priority(now: number): number {
    if (this.#control.length || !this.#ewma) return 0;
    const top = this.#ewma.top;
    return top === undefined ? 0 : this.#ewma.get(top, now);
  }

  /** Moves the next cell's two parts onto `batch`; false when nothing is ready. */
  #next(batch: Uint8Array[], now: number): boolean {
    if (this.#control.length) {
      batch.push(this.#control.shift()!, this.#control.shift()!); // ChunkFifo: O(1), none kept idle
      return true;
    }
    if (this.#kist) {
      // Under KIST only cells the scheduler moved leave the channel.
      if (this.#outbufCells === 0) return false;
      const a = this.#outbuf.shift()!, b = this.#outbuf.shift()!;
      this.#outbufBytes -= a.length + b.length;
      this.#outbufCells--;
      batch.push(a, b);
      return true;
    }
    if (this.#queued === 0) return false;
    const id = this.#ewma ? this.#ewma.top : this.#rr.shift();
    if (id === undefined) return false;
    const q = this.#queues!.get(id)!;
    batch.push(q.shift()!, q.shift()!);
    this.#queued--;
    if (this.#ewma) this.#ewma.add(id, 1, now);
    else if (q.length) this.#rr.push(id);
    else if (this.#rr.length === 0) this.#rr = []; // left empty: no storage kept while idle
    if (q.length === 0) this.#drained(id);
    this.#lowWater(id, q.length >> 1);
    return true;
  }

  /** A circuit's queue is empty: it leaves the map, and an empty map goes (idle channels). */
  #drained(circId: number): void {
    const queues = this.#queues!;
    queues.delete(circId);
    if (queues.size === 0) this.#queues = undefined;
    this.#ewma?.deactivate(circId);
  }

  #kick(): void {
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    this.#flush().catch((e) => this.close(e as Error)).finally(() => {
      this.#writing = false;
      const ready = this.#kist ? this.#control.length + this.#outbufCells : this.queued;
      if (!this.#closed && ready > 0) this.#kick();
      else if (this.#closing && this.queued === 0) this.close();
      else if (this.#kist && this.#queued > 0) this.#kist.wantsWrite(this);
    });
  }

  async #flush(): Promise<void> {
    while (!this.#closed) {
      // Under KIST the output buffer is FIFO (Tor's outbuf): its order was decided already.
      // One timestamp per batch: EWMA charges its cells at the time it was assembled.
      const now = performance.now();
      const priority = this.#kist ? 0 : this.#priority(now);
      const batch: Uint8Array[] = [];
      let cells = 0;
      while (cells < BATCH_CELLS && this.#next(batch, now)) cells++;
      if (cells === 0) return;
      let bytes = 0;
      for (const p of batch) bytes += p.length;
      if (this.#o.bucket) await this.#o.bucket.take(bytes, priority);
      await this.link.writev(batch);
      this.stats.cellsSent += cells;
      this.stats.bytesSent += bytes;
      this.lastActive = performance.now();
    }
  }

  /** Closes once everything queued has been written (e.g. after a DESTROY). */
  closeAfterFlush(): void {
    this.#closing = true;
    if (!this.#writing && this.queued === 0) this.close();
  }

  /** Closes the link and tells the owner once. */
  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queues?.clear();
    this.#control.clear();
    this.#outbuf.clear();
    // A read loop held by pauseReading ends now (it sees the channel closed).
    const paused = this.#resumeRead;
    this.#resumeRead = undefined;
    if (paused) setImmediate(paused);
    this.#outbufCells = 0;
    this.#outbufBytes = 0;
    this.#queued = 0;
    this.#headers?.clear();
    const waiters = [...this.#lowWaiters?.values() ?? []].flat();
    this.#lowWaiters?.clear();
    for (const w of waiters) w.resolve();
    this.#o.scheduler?.detach(this);
    this.#socket?.release();
    this.link.close();
    this.#o.onClose?.(this, error);
  }
}
