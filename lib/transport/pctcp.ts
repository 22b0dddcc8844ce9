/**
 * PCTCP's transport (AlSabah & Goldberg, CCS 2013): each circuit to a peer that speaks
 * pctcp gets its own TCP connection, bound to that circuit in the authenticated link
 * handshake. Bounded — a cap per peer and in all, and a share of the relay's socket budget —
 * past which circuits fall back to the shared link (the socket-exhaustion attack on PCTCP is
 * real). Under IPsec the connection is unencrypted at the link layer, so before carrying a
 * circuit it checks that a CHILD_SA covers the peer (IPsec fails open) and refuses
 * otherwise.
 * @module
 */

import type { RelayEntry } from "../directory/document.ts";
import type { Channel } from "../channel/channel.ts";
import type { ChannelPool } from "./pool.ts";
import type { CircuitChannel, CircuitTransport } from "./transport.ts";

/** How per-circuit connections are protected: our link encryption, IPsec, or nothing (lab). */
export type PctcpSecurity = "tls" | "ipsec" | "none";

/** Options of the PCTCP transport. */
export interface PctcpTransportOptions {
  /** Where circuits go when the peer does not speak pctcp or a cap is reached. */
  fallback: CircuitTransport;
  /** Caps on per-circuit connections to one peer and in all (default 512, 4096). */
  caps?: { perPeer: number; total: number };
  /** Link protection of per-circuit connections (default "tls"). */
  security?: PctcpSecurity;
  /** Whether an IPsec SA covers the peer address (required with security "ipsec"). */
  ipsecCheck?: (address: string) => boolean | Promise<boolean>;
  /** False when the role's socket budget leaves no room for another connection. */
  socketsAvailable?: () => boolean;
  /**
   * Keep one per-circuit link to each peer used before open and handshaked ahead of the next
   * circuit (default true): a circuit then skips the TCP connect and link handshake. The
   * link is bound to a CircID chosen when it opens, and the circuit takes that CircID.
   */
  preopen?: boolean;
}

/** A connection per circuit, with caps and a fallback. */
export class PctcpTransport implements CircuitTransport {
  readonly name = "pctcp";
  #pool: ChannelPool;
  #o: PctcpTransportOptions;
  #reserved = new Map<string, number>();
  #reservedTotal = 0;
  #fallbacks = new Map<string, { nickname: string; count: number }>();
  #ready = new Map<string, Promise<Channel | undefined>>();

  /** Per-circuit connections through `pool`, falling back as `options` say. */
  constructor(pool: ChannelPool, options: PctcpTransportOptions) {
    this.#pool = pool;
    this.#o = options;
  }

  /** Per-circuit connections opened from this side that are still open. */
  get open(): number {
    return this.#pool.openedPerCircuit;
  }

  /** Circuits to the peer with this fingerprint that fell back to the shared link. */
  fallbacks(fingerprint: string): number {
    return this.#fallbacks.get(fingerprint)?.count ?? 0;
  }

  /** Fallbacks per peer nickname. */
  fallbacksByPeer(): Map<string, number> {
    return new Map([...this.#fallbacks.values()].map((f) => [f.nickname, f.count]));
  }

  /** Its own connection when the peer speaks pctcp and the caps allow; else the fallback. */
  async channelFor(peer: RelayEntry): Promise<CircuitChannel> {
    if (!peer.transports.includes("pctcp")) return this.#o.fallback.channelFor(peer);
    const security = this.#o.security ?? "tls";
    // IPsec fails open: without an SA covering the peer, refuse rather than send in the clear.
    if (security === "ipsec" && !(await this.#o.ipsecCheck?.(peer.address))) {
      throw new Error(`no IPsec SA covers ${peer.address}; refusing to carry the circuit`);
    }
    // No await between the cap check and the reservation: concurrent circuits cannot all
    // pass the cap.
    const caps = this.#o.caps ?? { perPeer: 512, total: 4096 };
    const fp = peer.fingerprint;
    // A pre-opened link is counted already (it is open): taking it adds no connection.
    const ready = this.#ready.get(fp);
    this.#ready.delete(fp);
    const held = ready ? 1 : 0;
    const perPeer = this.#pool.count(fp).circuit + (this.#reserved.get(fp) ?? 0) - held;
    if (
      perPeer >= caps.perPeer || this.open + this.#reservedTotal - held >= caps.total ||
      (!ready && !(this.#o.socketsAvailable?.() ?? true))
    ) {
      ready?.then((c) => c?.close());
      this.#fallbacks.set(fp, { nickname: peer.nickname, count: this.fallbacks(fp) + 1 });
      return this.#o.fallback.channelFor(peer);
    }
    this.#reserved.set(fp, (this.#reserved.get(fp) ?? 0) + 1);
    this.#reservedTotal++;
    try {
      // A link opened ahead (waiting for one still opening beats opening another); it carries
      // the CircID it was bound to, and only that one (the per-circuit rule).
      const pre = ready ? await ready : undefined;
      const channel = pre && !pre.closed
        ? pre
        : await this.#pool.perCircuit(peer, newCircId(), security === "tls");
      // The next spare is opened once this circuit's handshake with the peer is over (its
      // first cell back, CREATED2, has been handled), not now: its link handshake would
      // compete for the CPU with the circuit being built. Circuits that follow each other
      // closely then find a spare ready. A peer that never answers: after a delay anyway.
      if (this.#o.preopen !== false) {
        let done = false;
        const open = () => {
          if (done) return;
          done = true;
          this.#preopen(peer, security);
        };
        channel.onFirstCell = () => this.#pool.later(0, open);
        this.#pool.later(PREOPEN_FALLBACK_MS, open);
      }
      return { channel, circId: channel.link.boundCircId, own: true };
    } finally {
      this.#reserved.set(fp, this.#reserved.get(fp)! - 1);
      this.#reservedTotal--;
    }
  }

  /**
   * Opens the next per-circuit link to `peer` ahead of need, when the caps leave room. Under
   * IPsec only while an SA covers the peer (checked now: it may have gone since the circuit
   * that asked was carried), so nothing reaches the peer in the clear.
   */
  #preopen(peer: RelayEntry, security: PctcpSecurity): void {
    if (this.#o.preopen === false || this.#ready.has(peer.fingerprint)) return;
    const caps = this.#o.caps ?? { perPeer: 512, total: 4096 };
    const perPeer = this.#pool.count(peer.fingerprint).circuit +
      (this.#reserved.get(peer.fingerprint) ?? 0);
    if (
      perPeer + 1 >= caps.perPeer || this.open + this.#reservedTotal + 1 >= caps.total ||
      !(this.#o.socketsAvailable?.() ?? true)
    ) return;
    const covered = security === "ipsec"
      ? Promise.resolve(this.#o.ipsecCheck?.(peer.address) ?? false).catch(() => false)
      : Promise.resolve(true);
    this.#ready.set(
      peer.fingerprint,
      covered.then((ok) =>
        ok ? this.#pool.perCircuit(peer, newCircId(), security === "tls") : undefined
      ).catch(() => undefined),
    );
  }
}

/** When a circuit's first cell back never comes, how long after it took its link the next
 * spare is opened anyway. */
const PREOPEN_FALLBACK_MS = 200;

/** An initiator's CircID (high bit set, tor-spec §5.1.1), bound into the link handshake. */
function newCircId(): number {
  return (crypto.getRandomValues(new Uint32Array(1))[0]! | 0x80000000) >>> 0;
}
