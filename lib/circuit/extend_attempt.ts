/**
 * Which EXTEND2 of a relay circuit is still wanted. Opening the next hop's channel takes an
 * await; a TRUNCATE (or a second EXTEND2 after it) may arrive meanwhile. C tor forgets the
 * pending extension when it handles TRUNCATE (relay.c: the circuit's `n_hop` is cleared, so
 * circuit_n_chan_done no longer finds it waiting on the new channel); here each extension
 * takes a ticket and only the newest, not cancelled, may attach its channel. A stale one
 * gives its channel back (a per-circuit connection is closed, a shared CircID freed) instead
 * of leaving a next-hop circuit nobody will ever destroy.
 * @module
 */

/** The EXTEND2 attempts of one circuit. */
export class ExtendAttempts {
  #current = 0;
  #wanted = false;

  /** A new extension starts: its ticket. */
  begin(): number {
    this.#wanted = true;
    return ++this.#current;
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
