/**
 * SENDME flow control (tor-spec §7.3–7.4): package windows that the sender spends and a
 * SENDME refills, and deliver windows that tell the receiver when to send a SENDME.
 * Circuit: 1000 cells, SENDME per 100; stream: 500, per 50. Pure: no I/O.
 * @module
 */

import { bytesEqual } from "../crypto/kdf.ts";

/** Circuit-level window start and increment (tor-spec §7.3). */
export const CIRCWINDOW_START = 1000;
/** Cells a circuit-level SENDME acknowledges. */
export const CIRCWINDOW_INCREMENT = 100;
/** Stream-level window start (tor-spec §7.4). */
export const STREAMWINDOW_START = 500;
/** Cells a stream-level SENDME acknowledges. */
export const STREAMWINDOW_INCREMENT = 50;

/** A sender's package window; `wait()` resolves when a cell may be sent. */
export class PackageWindow {
  #window: number;
  #max: number;
  #increment: number;
  #waiters: (() => void)[] = [];

  /** A window of `start` cells that each SENDME reopens by `increment`. */
  constructor(start: number, increment: number) {
    this.#window = start;
    this.#max = start;
    this.#increment = increment;
  }

  /** Cells that may be sent now. */
  get value(): number {
    return this.#window;
  }

  /** Spends one cell; false if the window was empty (the cell must wait). */
  take(): boolean {
    if (this.#window <= 0) return false;
    this.#window--;
    return true;
  }

  /** Resolves once the window is open (does not spend). */
  wait(): Promise<void> {
    if (this.#window > 0) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }

  /**
   * A SENDME arrived: opens the window by one increment. Returns false when that would
   * exceed the start value (an unexpected SENDME: tor-spec says close the circuit).
   */
  sendme(): boolean {
    if (this.#window + this.#increment > this.#max) return false;
    this.#window += this.#increment;
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
    return true;
  }

  /** Releases every waiter (the circuit is closing). */
  abort(): void {
    const w = this.#waiters;
    this.#waiters = [];
    this.#window = Infinity;
    for (const r of w) r();
  }
}

/** A receiver's deliver window. */
export class DeliverWindow {
  #window: number;
  #start: number;
  #increment: number;

  /** A window of `start` cells that asks for a SENDME every `increment` cells. */
  constructor(start: number, increment: number) {
    this.#window = start;
    this.#start = start;
    this.#increment = increment;
  }

  /** Cells the sender may still send before it must wait. */
  get value(): number {
    return this.#window;
  }

  /**
   * One DATA cell arrived. Returns "ok", "sendme" when a SENDME is due now (the window is
   * refilled), or "violation" when the sender overran the window.
   */
  received(): "ok" | "sendme" | "violation" {
    this.#window--;
    if (this.#window < 0) return "violation";
    if (this.#window <= this.#start - this.#increment) {
      this.#window += this.#increment;
      return "sendme";
    }
    return "ok";
  }
}

/**
 * A stream's deliver window at an edge (tor-spec §7.4; C tor connection_edge.c
 * connection_edge_consider_sending_sendme, relay.c): every DATA cell received spends one,
 * and the window is refilled by one increment only when the SENDME is actually sent, which
 * an edge does once the delivered bytes have been written out to its socket. A sender that
 * ignores SENDMEs therefore overruns it after {@link STREAMWINDOW_START} cells nobody has
 * written out, and the receiver closes the circuit instead of buffering without bound.
 */
export class EdgeDeliverWindow {
  #window: number;
  #start: number;
  #increment: number;
  #written = 0;

  /** A window of `start` cells, refilled `increment` at a time as SENDMEs go out. */
  constructor(start: number = STREAMWINDOW_START, increment: number = STREAMWINDOW_INCREMENT) {
    this.#window = start;
    this.#start = start;
    this.#increment = increment;
  }

  /** Cells the sender may still send before it must wait. */
  get value(): number {
    return this.#window;
  }

  /** One DATA cell arrived: "ok", or "violation" when the sender overran the window. */
  received(): "ok" | "violation" {
    return --this.#window < 0 ? "violation" : "ok";
  }

  /**
   * `cells` received cells have been written out: the SENDMEs now due, one per increment of
   * written cells (C tor sends one while `deliver_window <= STREAMWINDOW_START -
   * STREAMWINDOW_INCREMENT` and the edge's outbuf has room), each refilling the window by one
   * increment. Returns how many to send.
   */
  flushed(cells: number): number {
    this.#written += cells;
    let n = 0;
    while (this.#written >= this.#increment && this.#window <= this.#start - this.#increment) {
      this.#written -= this.#increment;
      this.#window += this.#increment;
      n++;
    }
    return n;
  }
}

/**
 * A circuit's package window with SENDME v1 authentication (tor-spec §7.3, proposal 289):
 * after every 100th DATA cell sent, the sender keeps the running digest of that cell; each
 * circuit SENDME must carry the oldest kept digest.
 */
export class CircuitPackageWindow extends PackageWindow {
  #sent = 0;
  #digests: Uint8Array[] = [];

  constructor() {
    super(CIRCWINDOW_START, CIRCWINDOW_INCREMENT);
  }

  /** One DATA cell was sent; `digest` reads the running digest after it (called every 100th). */
  packaged(digest: () => Uint8Array): void {
    if (++this.#sent % CIRCWINDOW_INCREMENT === 0) this.#digests.push(digest());
  }

  /**
   * A circuit SENDME arrived with `digest` (undefined for a v0 or empty body): "ok", or why it
   * must close the circuit (tor-spec §7.3, proposal 289: only authenticated v1 SENDMEs are
   * accepted): "version" (no v1 digest), "unexpected" (no DATA cell awaits acknowledgement, or
   * the window would overflow) or "digest" (not the digest we kept: an optimistic ACK).
   */
  circuitSendme(digest: Uint8Array | undefined): "ok" | "version" | "digest" | "unexpected" {
    if (!digest) return "version";
    const want = this.#digests.shift();
    if (!want) return "unexpected";
    if (!bytesEqual(digest, want)) return "digest";
    return this.sendme() ? "ok" : "unexpected";
  }
}
