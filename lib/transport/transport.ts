/**
 * The transport seam (DESIGN.md; arti's ChannelFactory): a role asks for "a channel to peer
 * P for circuit C" and gets a channel, the CircID to use on it, and whether the channel is
 * the circuit's own. The cell, circuit and crypto code above is the same for every
 * transport, so comparing transports measures the transport alone. Implementations:
 * {@link SharedTransport} (Tor's one multiplexed link per peer) and {@link PctcpTransport}
 * (a connection per circuit). A third one (N links per peer, a QUIC-like link, …) implements
 * {@link CircuitTransport}, describes itself in a {@link TransportDefinition} (what it
 * advertises, which flags it takes) and gets one line in registry.ts; nothing in the relay,
 * client, CLI or launcher changes (docs/transports.md).
 * @module
 */

import type { Channel } from "../channel/channel.ts";
import type { RelayEntry, Transport } from "../directory/document.ts";
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
  /**
   * The responder's policy for a link from `address` that asks for unencrypted frames
   * (asked before the link handshake answers; absent: refused).
   */
  allowPlaintext?(address: string): Promise<boolean>;
  /** Circuits per peer nickname that fell back to another way (for relay stats). */
  fallbacksByPeer?(): Map<string, number>;
}

/** Which role runs a transport. */
export type TransportRole = "relay" | "client";

/** What the role running a transport tells it. */
export interface TransportContext {
  /** The role. */
  role: TransportRole;
  /** False when the role's socket budget leaves no room for another connection. */
  socketsAvailable?: () => boolean;
}

/** A command-line flag a transport takes (commander syntax), for `relay` and/or `client`. */
export interface TransportFlag {
  /** Commander syntax, e.g. `"--pctcp-max-per-peer <n>"` (new flags: named after the transport). */
  flags: string;
  /** Help text. */
  description: string;
  /** The commands that take it. */
  roles: readonly TransportRole[];
  /** Allowed values. */
  choices?: readonly string[];
  /** The value is a positive integer. */
  integer?: boolean;
  /** Default value. */
  default?: string | number;
}

/** What the network launcher knows when it starts a relay or client with a transport. */
export interface LaunchFacts {
  /** The process. */
  role: TransportRole;
  /** strongSwan's VICI socket on the relay's host, when IPsec runs between relay hosts. */
  ipsecVici?: string;
  /** The network runs in insecure lab mode (no link encryption where a transport allows it). */
  insecureLab?: boolean;
  /** Caps on per-circuit (or extra) connections, to one peer and in all. */
  caps?: { perPeer: number; total: number };
}

/**
 * A transport as the registry knows it (arti's ChannelFactory by name): its name, what a
 * relay running it advertises in the directory, its flags, and how to make it. `O` is its
 * own section of the role's options (`options.pctcp` for "pctcp").
 */
export interface TransportDefinition<O = unknown> {
  /** Name (the `--transport` value, the directory's transport name). */
  readonly name: Transport;
  /** One line for help texts. */
  readonly summary: string;
  /** Transports a relay running this one lists in the directory (the baseline "tor" too). */
  readonly advertises: readonly Transport[];
  /** Its command-line flags. */
  readonly flags: readonly TransportFlag[];
  /** Makes the transport over `pool` with its options section. */
  create(pool: ChannelPool, options: O | undefined, context: TransportContext): CircuitTransport;
  /** Its options section from parsed flags (commander's camelCase keys); TypeError on a bad combination. */
  fromFlags(flags: Readonly<Record<string, unknown>>, role: TransportRole): O | undefined;
  /** Lines to log when a role starts with these options (e.g. insecure lab mode). */
  warnings?(options: O | undefined): string[];
  /** Its flags for a relay or client the network launcher starts. */
  launchArgs(facts: LaunchFacts): string[];
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

/** The baseline: Tor's one multiplexed link per relay pair. */
export const torDefinition: TransportDefinition<undefined> = {
  name: "tor",
  summary: "one shared link per relay pair (Tor)",
  advertises: ["tor"],
  flags: [],
  create: (pool) => new SharedTransport(pool),
  fromFlags: () => undefined,
  launchArgs: () => [],
};
