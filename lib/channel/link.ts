/**
 * The seam under a channel (arti's tor-chanmgr transport.rs: "just a way to pass bytes
 * around"): what a {@link Channel} needs of the link it runs on, and the facts about that
 * link its owner records beside it. Our LINK2 link (lib/transport/link.ts), Tor's TLS link
 * (lib/transport/tor_link.ts) and in-memory links in tests all plug in here; nothing in
 * lib/channel knows which one it has.
 *
 * Ownership of read pieces: a piece returned by {@link ChannelLink.tryRead} belongs to the
 * channel from then on. Cells are handed out as views into it and a relay forwards a cell's
 * payload without copying, so a link must not write into a piece's memory again (return a
 * fresh buffer, or a view of one it no longer uses).
 * @module
 */

/** What a Channel needs of the link under it. */
export interface ChannelLink {
  /** Next piece of bytes from the peer, in order (cells; a piece may end mid-cell); null once the peer closed; undefined when fill() must read first. */
  tryRead(): Uint8Array | null | undefined;
  /** One read from the connection toward the next piece; false at end of stream. */
  fill(): Promise<boolean>;
  /** Queues the parts to go out in order (copied before it returns); resolves at once while the link's queue is below its high-water mark (32 KiB), else once it has drained below it. */
  writev(parts: Uint8Array[]): Promise<void>;
  /** Bytes queued in the link and not yet written to the connection. */
  readonly outbuf: number;
  /** Closes the link and its connection. */
  close(): void;
  /** True once closed. */
  readonly closed: boolean;
}

/** What a channel is for: the pair's shared multiplexed link, or one circuit's own. */
export type ChannelPurpose = "shared" | "circuit";

/** Who is at the other end of a channel, as its link's handshake proved. */
export interface ChannelPeer {
  /** "relay" when the peer proved a relay identity, "client" otherwise. */
  role: "relay" | "client";
  /** The relay's fingerprint (40 upper-case hex digits, as the directory lists it). */
  fingerprint?: string;
}

/**
 * The facts about a channel's link, set by whoever wraps the link (the channel pool, for a
 * transport): the roles read these, never the link itself.
 */
export interface ChannelMeta {
  /** The peer, as authenticated. */
  peer: ChannelPeer;
  /** True on the side that opened the link: it picks CircIDs with the high bit set (tor-spec §5.1.1). */
  initiator: boolean;
  /** Shared link, or one circuit's own connection (authenticated in the link's handshake). */
  purpose: ChannelPurpose;
  /** The one CircID a per-circuit channel carries (authenticated); 0 on a shared channel. */
  boundCircId: number;
  /**
   * True when the channel belongs to its bound circuit alone: it closes once that circuit
   * ends ({@link closesWith}), on both sides of the link.
   */
  own: boolean;
}

/** The metadata of a shared channel (the default of a channel made without any). */
export function sharedMeta(
  initiator: boolean,
  peer: ChannelPeer = { role: "client" },
): ChannelMeta {
  return { peer, initiator, purpose: "shared", boundCircId: 0, own: false };
}

/**
 * The one rule "an own channel closes with its circuit": true when the circuit `circId`
 * ending on a channel with `meta` must close that channel (after its DESTROY is written).
 */
export function closesWith(meta: ChannelMeta, circId: number): boolean {
  return meta.own && meta.boundCircId === circId;
}
