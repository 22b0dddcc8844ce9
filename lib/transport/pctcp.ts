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
import { swanctlCheck } from "./ipsec.ts";
import {
  type CircuitChannel,
  type CircuitTransport,
  SharedTransport,
  type TransportDefinition,
} from "./transport.ts";

/** How per-circuit connections are protected: our link encryption, IPsec, or nothing (lab). */
export type PctcpSecurity = "tls" | "ipsec" | "none";

/** The PCTCP protection choices, for flags. */
export const PCTCP_SECURITIES: readonly PctcpSecurity[] = ["tls", "ipsec", "none"];

/** Default caps on per-circuit connections: to one peer, and in all. */
export const PCTCP_DEFAULT_CAPS: Readonly<{ perPeer: number; total: number }> = {
  perPeer: 512,
  total: 4096,
};

/** A relay's or client's PCTCP options (`options.pctcp`). */
export interface PctcpOptions {
  /** Protection of per-circuit connections (default "tls"). */
  security?: PctcpSecurity;
  /** Whether an IPsec SA covers a peer address (needed with security "ipsec"). */
  ipsecCheck?: (address: string) => boolean | Promise<boolean>;
  /** Caps on per-circuit connections to one peer and in all (default {@link PCTCP_DEFAULT_CAPS}). */
  caps?: { perPeer: number; total: number };
  /** Keep one per-circuit link per peer open ahead of the next circuit (default true). */
  preopen?: boolean;
}

/**
 * The one PCTCP security policy, for both ends of a per-circuit connection (DESIGN.md
 * "PCTCP specifics"). IPsec fails open (no SA → plain packets), so under "ipsec" a
 * connection goes out, and an unencrypted one is accepted, only while an SA covers the peer
 * (checked each time); under "tls" frames are encrypted by the link and plaintext is
 * refused; "none" is insecure lab mode.
 */
export class PctcpPolicy {
  /** The protection chosen. */
  readonly security: PctcpSecurity;
  #check: ((address: string) => boolean | Promise<boolean>) | undefined;

  /** The policy of `options` (default "tls"). */
  constructor(options: Pick<PctcpOptions, "security" | "ipsecCheck"> = {}) {
    this.security = options.security ?? "tls";
    this.#check = options.ipsecCheck;
  }

  /** Whether per-circuit links encrypt their frames (only under "tls"). */
  get encrypt(): boolean {
    return this.security === "tls";
  }

  /** Initiator: may a per-circuit connection to `address` carry a circuit now? */
  async covers(address: string): Promise<boolean> {
    if (this.security !== "ipsec") return true;
    try {
      return !!(await this.#check?.(address));
    } catch {
      return false;
    }
  }

  /**
   * Responder: may an unencrypted per-circuit link from `address` be accepted (whatever the
   * peer asked)? Only where IPsec covers the peer now, or in insecure lab mode.
   */
  async allowPlaintext(address: string): Promise<boolean> {
    if (this.security === "none") return true;
    return this.security === "ipsec" && await this.covers(address);
  }
}

/** Options of the PCTCP transport. */
export interface PctcpTransportOptions {
  /** Where circuits go when the peer does not speak pctcp or a cap is reached. */
  fallback: CircuitTransport;
  /** Caps on per-circuit connections to one peer and in all (default {@link PCTCP_DEFAULT_CAPS}). */
  caps?: { perPeer: number; total: number };
  /** The security policy (default: "tls"). */
  policy?: PctcpPolicy;
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
  #policy: PctcpPolicy;

  /** Per-circuit connections through `pool`, falling back as `options` say. */
  constructor(pool: ChannelPool, options: PctcpTransportOptions) {
    this.#pool = pool;
    this.#o = options;
    this.#policy = options.policy ?? new PctcpPolicy();
  }

  /** The responder's side of the policy (see {@link PctcpPolicy.allowPlaintext}). */
  allowPlaintext(address: string): Promise<boolean> {
    return this.#policy.allowPlaintext(address);
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
  async channelFor(entry: RelayEntry): Promise<CircuitChannel> {
    // Our directory says who speaks pctcp; in a C tor network the peer's in-band hello does
    // (the pool waits a moment for it on a new link; C tor peers never send one).
    const peer = await this.#pool.pctcpPeer(entry);
    if (!peer) return this.#o.fallback.channelFor(entry);
    // IPsec fails open: without an SA covering the peer, refuse rather than send in the clear.
    if (!(await this.#policy.covers(peer.address))) {
      throw new Error(`no IPsec SA covers ${peer.address}; refusing to carry the circuit`);
    }
    // No await between the cap check and the reservation: concurrent circuits cannot all
    // pass the cap.
    const caps = this.#o.caps ?? PCTCP_DEFAULT_CAPS;
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
        : await this.#pool.perCircuit(peer, newCircId(), this.#policy.encrypt);
      // The next spare is opened once this circuit's handshake with the peer is over (its
      // first cell back, CREATED2, has been handled), not now: its link handshake would
      // compete for the CPU with the circuit being built. Circuits that follow each other
      // closely then find a spare ready. A peer that never answers: after a delay anyway.
      if (this.#o.preopen !== false) {
        let done = false;
        const open = () => {
          if (done) return;
          done = true;
          this.#preopen(peer);
        };
        channel.onFirstCell = () => this.#pool.later(0, open);
        this.#pool.later(PREOPEN_FALLBACK_MS, open);
      }
      return { channel, circId: channel.meta.boundCircId, own: true };
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
  #preopen(peer: RelayEntry): void {
    if (this.#o.preopen === false || this.#ready.has(peer.fingerprint)) return;
    const caps = this.#o.caps ?? PCTCP_DEFAULT_CAPS;
    const perPeer = this.#pool.count(peer.fingerprint).circuit +
      (this.#reserved.get(peer.fingerprint) ?? 0);
    if (
      perPeer + 1 >= caps.perPeer || this.open + this.#reservedTotal + 1 >= caps.total ||
      !(this.#o.socketsAvailable?.() ?? true)
    ) return;
    this.#ready.set(
      peer.fingerprint,
      this.#policy.covers(peer.address).then((ok) =>
        ok ? this.#pool.perCircuit(peer, newCircId(), this.#policy.encrypt) : undefined
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

/**
 * PCTCP in the registry: a relay running it advertises "tor" and "pctcp" (it still speaks
 * the shared link to peers that do not); its flags are the per-circuit caps for both roles
 * and the protection (with IPsec's check and lab mode) for relays.
 */
export const pctcpDefinition: TransportDefinition<PctcpOptions> = {
  name: "pctcp",
  summary: "a TCP connection per circuit between PCTCP relays (AlSabah & Goldberg, CCS 2013)",
  advertises: ["tor", "pctcp"],
  flags: [
    {
      flags: "--pctcp-security <s>",
      description: "protection of per-circuit connections",
      roles: ["relay"],
      choices: PCTCP_SECURITIES,
      default: "tls",
    },
    {
      flags: "--insecure-lab",
      description: "allow --pctcp-security none (no encryption on per-circuit links)",
      roles: ["relay"],
    },
    {
      flags: "--swanctl-uri <uri>",
      description: "strongSwan's VICI socket for the IPsec check (e.g. unix:///run/charon.vici)",
      roles: ["relay"],
    },
    {
      flags: "--pctcp-max-per-peer <n>",
      description: "per-circuit connections to one peer before circuits share the link",
      roles: ["relay", "client"],
      integer: true,
      default: PCTCP_DEFAULT_CAPS.perPeer,
    },
    {
      flags: "--pctcp-max-total <n>",
      description: "per-circuit connections in all before circuits share links",
      roles: ["relay", "client"],
      integer: true,
      default: PCTCP_DEFAULT_CAPS.total,
    },
  ],
  create: (pool, options, context) =>
    new PctcpTransport(pool, {
      fallback: new SharedTransport(pool),
      policy: new PctcpPolicy(options),
      ...(options?.caps ? { caps: options.caps } : {}),
      ...(options?.preopen !== undefined ? { preopen: options.preopen } : {}),
      ...(context.socketsAvailable ? { socketsAvailable: context.socketsAvailable } : {}),
    }),
  fromFlags(flags, role) {
    const perPeer = flags.pctcpMaxPerPeer as number | undefined;
    const total = flags.pctcpMaxTotal as number | undefined;
    const caps = {
      ...(perPeer !== undefined || total !== undefined
        ? {
          caps: {
            perPeer: perPeer ?? PCTCP_DEFAULT_CAPS.perPeer,
            total: total ?? PCTCP_DEFAULT_CAPS.total,
          },
        }
        : {}),
    };
    if (role === "client") return caps;
    const security = (flags.pctcpSecurity as PctcpSecurity | undefined) ?? "tls";
    if (security === "none" && !flags.insecureLab) {
      throw new TypeError("--pctcp-security none needs --insecure-lab");
    }
    const uri = flags.swanctlUri as string | undefined;
    return {
      ...caps,
      security,
      ...(security === "ipsec" ? { ipsecCheck: swanctlCheck(uri ? { uri } : {}) } : {}),
    };
  },
  warnings: (options) =>
    options?.security === "none"
      ? ["INSECURE LAB MODE: per-circuit connections are not encrypted"]
      : [],
  launchArgs(facts) {
    const args = facts.caps
      ? [
        "--pctcp-max-per-peer",
        String(facts.caps.perPeer),
        "--pctcp-max-total",
        String(facts.caps.total),
      ]
      : [];
    if (facts.role !== "relay") return args;
    if (facts.ipsecVici) {
      args.push("--pctcp-security", "ipsec", "--swanctl-uri", `unix://${facts.ipsecVici}`);
    } else if (facts.insecureLab) args.push("--pctcp-security", "none", "--insecure-lab");
    return args;
  },
};
