/**
 * The transport seam (DESIGN.md; arti's ChannelFactory): a role asks for "a channel to peer
 * P for circuit C" and gets a channel, the CircID to use on it, and whether the channel is
 * the circuit's own. The cell, circuit and crypto code above is the same for every
 * transport, so comparing transports measures the transport alone. Implementations:
 * {@link SharedTransport} (Tor's one multiplexed link per peer) and {@link PctcpTransport}
 * (a connection per circuit). A third one (N links per peer, a QUIC-like link, …) implements
 * this interface and nothing in the relay or client changes.
 * @module
 */

import type { Channel } from "../channel/channel.ts";
import type { RelayEntry } from "../directory/document.ts";
import type { ChannelPool } from "./pool.ts";

/** A channel on which one new circuit will run. */
export interface CircuitChannel {
  /** The channel. */
  channel: Channel;
  /** The CircID the circuit uses on it (allocated, or the one a per-circuit link is bound to). */
  circId: number;
  /** True when the channel carries this circuit alone: it closes with the circuit. */
  own: boolean;
}

/** How a role gets a channel to a peer for a new circuit. */
export interface CircuitTransport {
  /** Name for logs and stats ("tor", "pctcp", …). */
  readonly name: string;
  /** A channel to `peer` for one new circuit. */
  channelFor(peer: RelayEntry): Promise<CircuitChannel>;
}

/** Tor's transport: every circuit to a peer on the one shared channel. */
export class SharedTransport implements CircuitTransport {
  readonly name = "tor";
  #pool: ChannelPool;

  /** Circuits on `pool`'s shared channels. */
  constructor(pool: ChannelPool) {
    this.#pool = pool;
  }

  /** The shared channel to `peer` and a fresh CircID on it (tor-spec §5.1.1). */
  async channelFor(peer: RelayEntry): Promise<CircuitChannel> {
    const channel = await this.#pool.shared(peer);
    return { channel, circId: channel.allocCircId(), own: false };
  }
}
