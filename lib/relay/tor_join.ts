/**
 * A relay of ours joining a C tor network: its descriptor published to the network's
 * directory authorities and kept published (lib/dirauth's DescriptorPublisher: at start,
 * before 18 h, whenever it changes), and its keys renewed before they lapse (lib/keys: link
 * and auth certificates ~2 days, the signing-key certificate ~30 days, onion keys 28 days), a
 * renewal that changes the descriptor republishing it at once. The relay must answer Tor's link
 * handshake on its ORPort before {@link TorNetworkMembership.start}: each authority then tests
 * it there (reachability.c) before it lists it.
 *
 * What the relay reports is what the authorities answered (`published`: authority, status,
 * reason, accepted) — never "listed": only a consensus says that.
 * @module
 */

import { DescriptorPublisher, type DirAuthority, makeServerDescriptor } from "../dirauth/mod.ts";
import type { PublishResult } from "../dirauth/publish.ts";
import { nextTorKeyRenewal, renewTorRelayKeys } from "../keys/mod.ts";
import type { RelayKeys } from "../directory/keys.ts";
import { type Logger, nullLogger } from "../util/log.ts";

/** What a relay publishes of itself. */
export interface TorNetworkOptions {
  /** The network's directory authorities (torrc `DirAuthority` lines, parsed). */
  authorities: DirAuthority[];
  /** The relay's keys; renewed in place (`tor`, `onion`). */
  keys: RelayKeys;
  /** Nickname (1–19 letters and digits). */
  nickname: string;
  /** IPv4 address the authorities reach the ORPort at. */
  address: string;
  /** The ORPort. */
  orPort: () => number;
  /** Token-bucket rate and burst, bytes/s (unlimited relays say 1 GiB/s). */
  bandwidth?: { rate: number; burst: number };
  /** Observed bandwidth, bytes/s (default: the rate). */
  observed?: () => number;
  /** Exit policy lines (default `reject *:*`). */
  exitPolicy: string[];
  /** Contact line. */
  contact?: string;
  /** Called after a key renewal (the relay re-reads the keys it hands out). */
  onRenewed?: (items: string[]) => void;
  /** Clock (tests). */
  now?: () => Date;
  /** Logger. */
  log?: Logger;
}

/** The exit policy lines of a descriptor from our `--exit-allow` entries (ADDR[/BITS]:PORT|*). */
export function exitPolicyLines(exitAllow: readonly string[], exit: boolean): string[] {
  if (!exit) return ["reject *:*"];
  const lines = exitAllow.map((e) => {
    const m = /^(.+):(\*|\d{1,5}(?:-\d{1,5})?)$/.exec(e.trim());
    if (!m) throw new SyntaxError(`exit allow entry must be ADDR[/BITS]:PORT: ${e}`);
    return `accept ${m[1]}:${m[2]}`;
  });
  return [...lines, "reject *:*"];
}

/** A relay's membership of a C tor network: its descriptor and keys kept current. */
export class TorNetworkMembership {
  #o: TorNetworkOptions;
  #publisher: DescriptorPublisher;
  #renewTimer?: ReturnType<typeof setTimeout>;
  #started = new Date();
  #stopped = false;
  #log: Logger;

  /** A membership for the relay `options` describes; {@link start} publishes. */
  constructor(options: TorNetworkOptions) {
    this.#o = options;
    this.#log = options.log ?? nullLogger;
    const now = options.now ?? (() => new Date());
    const bw = options.bandwidth ?? { rate: 1 << 30, burst: 1 << 30 };
    this.#publisher = new DescriptorPublisher({
      authorities: options.authorities,
      now,
      log: this.#log,
      build: (t) =>
        makeServerDescriptor(this.#o.keys.tor, {
          nickname: options.nickname,
          address: options.address,
          orPort: options.orPort(),
          bandwidth: {
            rate: bw.rate,
            burst: bw.burst,
            observed: Math.max(1, Math.round(options.observed?.() ?? bw.rate)),
          },
          exitPolicy: options.exitPolicy,
          ...(options.contact ? { contact: options.contact } : {}),
          published: t,
          uptime: Math.max(0, Math.floor((t.getTime() - this.#started.getTime()) / 1000)),
        }),
    });
  }

  /** The last answer of each authority. */
  get published(): PublishResult[] {
    return this.#publisher.published;
  }

  /** Publishes to every authority (resolves once each answered) and starts renewing keys. */
  async start(): Promise<void> {
    this.#started = (this.#o.now ?? (() => new Date()))();
    await this.#publisher.start();
    this.#scheduleRenewal();
  }

  /** Renews what is due now; republishes when the descriptor changed. */
  async renew(): Promise<string[]> {
    const now = (this.#o.now ?? (() => new Date()))();
    const { keys, renewed } = renewTorRelayKeys(this.#o.keys.tor, now);
    if (!renewed.length) return [];
    const k = this.#o.keys;
    k.tor = keys;
    k.identity = keys.ed25519Identity;
    k.onion = keys.ntor.key;
    const items = renewed.map(String);
    this.#log.info(`keys renewed: ${items.join(", ")}`);
    this.#o.onRenewed?.(items);
    await this.#publisher.check();
    return items;
  }

  #scheduleRenewal(): void {
    if (this.#stopped) return;
    const now = (this.#o.now ?? (() => new Date()))().getTime();
    const due = nextTorKeyRenewal(this.#o.keys.tor).getTime();
    // At most an hour between looks (timers drift on a suspended machine).
    const wait = Math.min(Math.max(1000, due - now), 3600_000);
    this.#renewTimer = setTimeout(() => {
      this.renew().catch((e) => this.#log.warn(`key renewal failed: ${(e as Error).message}`))
        .finally(() => this.#scheduleRenewal());
    }, wait);
    Deno.unrefTimer(this.#renewTimer);
  }

  /** Stops publishing and renewing. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    await this.#publisher.stop();
  }
}
