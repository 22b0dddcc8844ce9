/**
 * An edge stream: one TCP connection at the edge of a circuit (the exit's connection to the
 * destination, or the client's SOCKS connection) joined to one circuit stream. It packages
 * socket bytes into RELAY_DATA cells under the stream and circuit package windows, delivers
 * DATA to the socket, and sends stream SENDMEs once delivered bytes have been written
 * (tor-spec §6.2–6.3, §7.4).
 * @module
 */

import { EndReason, RELAY_DATA_LEN, RelayCommand } from "../cell/relay_cell.ts";
import { encodeEnd, encodeSendme } from "../cell/messages.ts";
import {
  EdgeDeliverWindow,
  PackageWindow,
  STREAMWINDOW_INCREMENT,
  STREAMWINDOW_START,
} from "../circuit/flow.ts";

/** Cells' worth of bytes read from the socket at once (one packaging burst). */
const PUMP_CELLS = 64;

/** What a stream needs from its circuit. */
export interface StreamCircuit {
  /**
   * Sends a relay cell on this stream towards the other edge (the circuit core keeps the
   * SENDME v1 digests of DATA cells). `data` is copied into the cell before this returns: the
   * caller reuses its buffer.
   */
  sendRelay(command: number, streamId: number, data: Uint8Array): void;
  /** The circuit's package window (shared by its streams). */
  packageWindow: PackageWindow;
  /**
   * The circuit's local back-pressure: undefined (or a resolved promise) while its outgoing
   * queue is short enough to add more cells, else a promise the circuit resolves once the
   * queue has drained (ideally on the channel's event, not by polling).
   */
  drained?(): Promise<void> | undefined;
  /** Forgets the stream. */
  removeStream(streamId: number): void;
}

/** A socket-like object: Deno.Conn satisfies it. */
export interface EdgeSocket {
  /** Reads into `p`. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`. */
  write(p: Uint8Array): Promise<number>;
  /** Closes. */
  close(): void;
  /** Half-closes the write side (optional). */
  closeWrite?(): Promise<void>;
}

/** One stream of a circuit bound to a socket. */
export class EdgeStream {
  /** Stream id on the circuit. */
  readonly id: number;
  /** Stream package window: 500 cells, +50 per stream SENDME (tor-spec §7.4). */
  readonly packageWindow: PackageWindow = new PackageWindow(
    STREAMWINDOW_START,
    STREAMWINDOW_INCREMENT,
  );
  /**
   * Stream deliver window: a SENDME goes out for every 50 cells written to the socket, and
   * only then does the window reopen, so at most 500 cells (≈ 249 KB) wait here for a slow
   * socket; a sender past that is a protocol violation (tor-spec §7.4).
   */
  readonly deliverWindow: EdgeDeliverWindow = new EdgeDeliverWindow(
    STREAMWINDOW_START,
    STREAMWINDOW_INCREMENT,
  );
  /** Bytes sent into the circuit. */
  bytesOut = 0;
  /** Bytes delivered out of the circuit. */
  bytesIn = 0;
  #socket: EdgeSocket;
  #circ: StreamCircuit;
  #closed = false;
  #writes: Promise<void> = Promise.resolve();
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #flushing = false;
  #endSent = false;

  /** Joins stream `id` of `circuit` to `socket`; call {@link pump} to start. */
  constructor(id: number, socket: EdgeSocket, circuit: StreamCircuit) {
    this.id = id;
    this.#socket = socket;
    this.#circ = circuit;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes delivered and not yet written to the socket (at most the deliver window's worth). */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Reads the socket and packages DATA cells until EOF, then sends END(DONE). The circuit's
   * local back-pressure (`drained`) is asked once per socket read, as Tor packages what it
   * read from an edge in one go; the windows are checked per cell without a promise while
   * they are open.
   */
  async pump(): Promise<void> {
    const buf = new Uint8Array(RELAY_DATA_LEN * PUMP_CELLS);
    const stream = this.packageWindow, circ = this.#circ.packageWindow;
    try {
      for (;;) {
        const wait = this.#circ.drained?.();
        if (wait) await wait;
        if (this.#closed) return;
        const n = await this.#socket.read(buf);
        if (n === null || this.#closed) break;
        for (let off = 0; off < n; off += RELAY_DATA_LEN) {
          // Both windows must be open at the moment of sending: other streams of the
          // circuit spend the circuit window while this one waits.
          while (stream.value <= 0 || circ.value <= 0) {
            await stream.wait();
            await circ.wait();
            if (this.#closed) return;
          }
          if (this.#closed) return;
          stream.take();
          circ.take();
          // A view, not a copy: sendRelay encodes it into a cell before returning.
          const chunk = buf.subarray(off, Math.min(n, off + RELAY_DATA_LEN));
          this.#circ.sendRelay(RelayCommand.DATA, this.id, chunk);
          this.bytesOut += chunk.length;
        }
      }
      this.end(EndReason.DONE);
    } catch {
      this.end(EndReason.CONNRESET);
    }
  }

  /**
   * Delivers a DATA cell's bytes to the socket. Returns false when the sender overran the
   * stream window (protocol violation).
   */
  deliver(data: Uint8Array): boolean {
    if (this.#closed) return true;
    const verdict = this.deliverWindow.received();
    if (verdict === "violation") return false;
    this.bytesIn += data.length;
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (!this.#flushing) {
      this.#flushing = true;
      // After this turn's cells: every DATA cell of the frame being read joins one write.
      this.#writes = Promise.resolve().then(() => this.#flush());
    }
    return true;
  }

  /**
   * Writes everything delivered so far in as few socket writes as possible (a write per
   * 498-byte cell is many times slower), then sends the stream SENDMEs those cells earned:
   * the window reopens only once the bytes have left for the socket (tor-spec §7.4).
   */
  async #flush(): Promise<void> {
    try {
      while (this.#pending.length && !this.#closed) {
        const parts = this.#pending;
        const size = this.#pendingBytes;
        this.#pending = [];
        this.#pendingBytes = 0;
        let buf: Uint8Array;
        if (parts.length === 1) buf = parts[0]!;
        else {
          buf = new Uint8Array(size);
          let off = 0;
          for (const p of parts) buf.set(p, off), off += p.length;
        }
        let off = 0;
        while (off < buf.length) off += await this.#socket.write(buf.subarray(off));
        // Only cells written out reopen the window (cells that arrived meanwhile wait).
        const owed = this.deliverWindow.flushed(parts.length);
        for (let i = 0; i < owed && !this.#closed; i++) {
          this.#circ.sendRelay(RelayCommand.SENDME, this.id, encodeSendme());
        }
      }
    } catch {
      this.end(EndReason.CONNRESET);
    } finally {
      this.#flushing = false;
    }
  }

  /** A stream SENDME arrived. Returns false if unexpected. */
  sendme(): boolean {
    return this.packageWindow.sendme();
  }

  /** The other edge ended the stream: flush what we have, then close the socket. */
  remoteEnd(): void {
    this.#endSent = true;
    this.#writes.finally(() => this.#close());
  }

  /** Ends the stream from this side with a reason (sends END once) and closes the socket. */
  end(reason: number): void {
    if (!this.#endSent && !this.#closed) {
      this.#endSent = true;
      this.#circ.sendRelay(RelayCommand.END, this.id, encodeEnd(reason));
    }
    this.#writes.finally(() => this.#close());
  }

  /** Closes without telling the other edge (the circuit is gone). */
  abort(): void {
    this.#endSent = true;
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.packageWindow.abort();
    try {
      this.#socket.close();
    } catch { /* already closed */ }
    this.#circ.removeStream(this.id);
  }
}
