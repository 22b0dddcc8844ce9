/**
 * Which EXTEND2 of a relay circuit is still wanted. Opening the next hop's channel takes an
 * await; a TRUNCATE (or a second EXTEND2 after it) may arrive meanwhile. C tor forgets the
 * pending extension when it handles TRUNCATE (relay.c: the circuit's `n_hop` is cleared, so
 * circuit_n_chan_done no longer finds it waiting on the new channel); here each extension
 * takes a ticket and only the newest, not cancelled, may attach its channel. A stale one
 * gives its channel back (a per-circuit connection is closed, a shared CircID freed) instead
 * of leaving a next-hop circuit nobody will ever destroy.
 *
 * A cancelled attempt still opens its channel (a PCTCP per-circuit connection: a TLS and a
 * link handshake on both relays). So that EXTEND2, TRUNCATE, EXTEND2 … in one write cannot
 * open eight connections per circuit, a circuit has at most one channel opening at a time:
 * an EXTEND2 while an earlier one's channel is still opening is answered TRUNCATED
 * (RESOURCELIMIT). Ours, not C tor's (C tor shares one channel per peer, so it opens one).
 * @module
 */

/** The EXTEND2 attempts of one circuit. */
export class ExtendAttempts {
  #current = 0;
  #wanted = false;
  #opening = 0;

  /** Channels still opening for this circuit's extensions (wanted or cancelled). */
  get opening(): number {
    return this.#opening;
  }

  /** A new extension starts opening its channel: its ticket. */
  begin(): number {
    this.#wanted = true;
    this.#opening++;
    return ++this.#current;
  }

  /** The channel of an extension opened or failed (whether or not it is still wanted). */
  settled(): void {
    if (this.#opening > 0) this.#opening--;
  }

  /** TRUNCATE (or teardown): no pending extension may attach any more. */
  cancel(): void {
    this.#wanted = false;
  }

  /** True while the extension with `ticket` is the one wanted. */
  wanted(ticket: number): boolean {
    return this.#wanted && ticket === this.#current;
  }

  /** The extension attached its channel: nothing is pending. */
  done(ticket: number): void {
    if (ticket === this.#current) this.#wanted = false;
  }
}
