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

import {
  type Cell,
  CELL_LEN,
  CellReader,
  encodeCell,
  isVariableCommand,
  writeFixedCell,
} from "../cell/cell.ts";
import type { Link } from "../transport/link.ts";
import { EwmaCounts } from "./ewma.ts";
import type { KistCircuitInput } from "./kist.ts";
import type { ChannelScheduler, SchedulableChannel } from "./scheduler.ts";
import { SocketInfo, type TcpEndpoint, type TcpSocketState } from "./socket_info.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** Cells per link write. */
const BATCH_CELLS = 64;

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
}

/** Cells over one link, with a circuit scheduler. */
export class Channel implements SchedulableChannel {
  /** The link the cells travel on. */
  readonly link: Link;
  /** A label for logs (the peer nickname). */
  readonly label: string;
  /** Cells and bytes sent and received. */
  readonly stats: ChannelStats = { cellsSent: 0, cellsReceived: 0, bytesSent: 0, maxQueued: 0 };
  #o: ChannelOptions;
  #control: Uint8Array[] = [];
  #queues = new Map<number, Uint8Array[]>();
  #queued = 0;
  #ewma: EwmaCounts | undefined;
  #rr: number[] = [];
  #writing = false;
  #closing = false;
  #closed = false;
  #usedIds = new Set<number>();
  #kist: ChannelScheduler | undefined;
  #outbuf: Uint8Array[] = [];
  #outbufBytes = 0;
  #socket: SocketInfo | undefined;
  /** Circuits attached to this channel (for teardown on close). */
  readonly circuits: Set<number> = new Set();
  /** When the channel last carried a cell (for idle timeout). */
  lastActive: number = performance.now();

  /** Wraps an established link; `options` give the cell handler, buckets and scheduling. */
  constructor(link: Link, options: ChannelOptions) {
    this.link = link;
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
    for (const [id, q] of this.#queues) {
      if (q.length) out.push({ id, cells: q.length, ewma: this.#ewma?.get(id) ?? 0 });
    }
    return out;
  }

  /** Moves cells of a circuit into the output buffer, charging the circuit's EWMA count. */
  kistMove(circId: number, cells: number): void {
    const q = this.#queues.get(circId);
    if (!q) return;
    const n = Math.min(cells, q.length);
    for (const c of q.splice(0, n)) this.#outbuf.push(c), this.#outbufBytes += c.length;
    this.#queued -= n;
    this.#ewma?.add(circId, n);
    if (q.length === 0) this.#queues.delete(circId);
  }

  /** Starts writing the output buffer. */
  kistFlush(): void {
    this.#kick();
  }

  /** Starts the read loop; resolves when the link closes. */
  async run(): Promise<void> {
    const reader = new CellReader();
    let error: Error | undefined;
    try {
      for (;;) {
        const chunk = await this.link.read();
        if (chunk === null) break;
        if (this.#o.readBucket) await this.#o.readBucket.take(chunk.length);
        reader.push(chunk);
        for (let cell = reader.next(); cell; cell = reader.next()) {
          this.stats.cellsReceived++;
          this.lastActive = performance.now();
          this.#o.onCell(cell, this);
          if (this.#closed) return;
        }
      }
    } catch (e) {
      error = e as Error;
    }
    this.close(error);
  }

  /** A fresh circuit id for a circuit we open on this channel (tor-spec §5.1.1). */
  allocCircId(): number {
    for (;;) {
      const r = crypto.getRandomValues(new Uint32Array(1))[0]! & 0x7fffffff;
      const id = (this.#o.initiator ? (r | 0x80000000) : r) >>> 0;
      if (id !== 0 && !this.#usedIds.has(id)) {
        this.#usedIds.add(id);
        return id;
      }
    }
  }

  /** Releases a circuit id. */
  freeCircId(id: number): void {
    this.#usedIds.delete(id);
    this.circuits.delete(id);
  }

  /** Cells queued and not yet written (circuit queues, control cells, output buffer). */
  get queued(): number {
    return this.#queued + this.#control.length + this.#outbuf.length;
  }

  /** Cells queued for one circuit. */
  queuedFor(circId: number): number {
    return this.#queues.get(circId)?.length ?? 0;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a control cell (link-level, CREATE*, DESTROY): sent before circuit traffic. */
  sendControl(cell: Cell): void {
    if (this.#closed) return;
    this.#control.push(encodeCell(cell));
    this.#kick();
  }

  /** Queues a fixed cell of a circuit for the scheduler. */
  send(circId: number, command: number, payload: Uint8Array): void {
    if (this.#closed) return;
    if (isVariableCommand(command)) {
      this.sendControl({ circId, command, payload });
      return;
    }
    const cell = new Uint8Array(CELL_LEN);
    writeFixedCell(cell, 0, circId, command, payload);
    let q = this.#queues.get(circId);
    if (!q) {
      q = [];
      this.#queues.set(circId, q);
    }
    if (q.length === 0 && !this.#ewma) this.#rr.push(circId);
    q.push(cell);
    this.#queued++;
    if (this.#queued > this.stats.maxQueued) this.stats.maxQueued = this.#queued;
    if (this.#kist) this.#kist.wantsWrite(this);
    else this.#kick();
  }

  /** Drops the queued cells of a circuit (it was destroyed). */
  dropCircuit(circId: number): void {
    const q = this.#queues.get(circId);
    if (q) this.#queued -= q.length;
    this.#queues.delete(circId);
    this.#ewma?.delete(circId);
  }

  /** The priority of the next batch: the EWMA count of the circuit it will serve first. */
  #priority(): number {
    if (this.#control.length || !this.#ewma) return 0;
    let best = Infinity;
    for (const [k, q] of this.#queues) if (q.length) best = Math.min(best, this.#ewma.get(k));
    return best === Infinity ? 0 : best;
  }

  #next(): Uint8Array | undefined {
    const c = this.#control.shift();
    if (c) return c;
    if (this.#kist) {
      // Under KIST only cells the scheduler moved leave the channel.
      const o = this.#outbuf.shift();
      if (o) this.#outbufBytes -= o.length;
      return o;
    }
    if (this.#queued === 0) return undefined;
    let id: number | undefined;
    if (this.#ewma) {
      // Only non-empty queues are kept, so every key is an active circuit.
      id = this.#ewma.pick(this.#queues.keys());
    } else {
      id = this.#rr.shift();
    }
    if (id === undefined) return undefined;
    const q = this.#queues.get(id)!;
    const cell = q.shift()!;
    this.#queued--;
    if (this.#ewma) this.#ewma.add(id);
    else if (q.length) this.#rr.push(id);
    if (q.length === 0) this.#queues.delete(id);
    return cell;
  }

  #kick(): void {
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    this.#flush().catch((e) => this.close(e as Error)).finally(() => {
      this.#writing = false;
      const ready = this.#kist ? this.#control.length + this.#outbuf.length : this.queued;
      if (!this.#closed && ready > 0) this.#kick();
      else if (this.#closing && this.queued === 0) this.close();
      else if (this.#kist && this.#queued > 0) this.#kist.wantsWrite(this);
    });
  }

  async #flush(): Promise<void> {
    while (!this.#closed) {
      // Under KIST the output buffer is FIFO (Tor's outbuf): its order was decided already.
      const priority = this.#kist ? 0 : this.#priority();
      const batch: Uint8Array[] = [];
      let bytes = 0;
      while (batch.length < BATCH_CELLS) {
        const c = this.#next();
        if (!c) break;
        batch.push(c);
        bytes += c.length;
      }
      if (batch.length === 0) return;
      if (this.#o.bucket) await this.#o.bucket.take(bytes, priority);
      const out = new Uint8Array(bytes);
      let off = 0;
      for (const c of batch) out.set(c, off), off += c.length;
      await this.link.write(out);
      this.stats.cellsSent += batch.length;
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
    this.#queues.clear();
    this.#control = [];
    this.#outbuf = [];
    this.#outbufBytes = 0;
    this.#queued = 0;
    this.#o.scheduler?.detach(this);
    this.link.close();
    this.#o.onClose?.(this, error);
  }
}
