/**
 * The exit's way from a BEGIN to a socket: resolve, check, then connect (C tor
 * connection_edge.c connection_exit_begin_conn → dns_resolve → connection_exit_connect).
 * Nothing is connected before every check passed, so the policy cannot be probed (an open
 * and a closed forbidden port both answer END EXITPOLICY) and forbidden addresses are never
 * touched, whatever spelling the name has (`127.2`, `0x7f000002`, `2130706434` and
 * `0177.0.0.2` all resolve to 127.0.0.2 and are checked as that):
 *
 * 1. a stream on a circuit whose previous hop is a client, not a relay, is refused (END
 *    TORPROTOCOL: relays are no one-hop proxies; tor-spec §6.2 "relays SHOULD refuse");
 * 2. the host is resolved to one IPv4 address the way the system resolver does (getaddrinfo,
 *    which also reads those numeric forms); a failure is END RESOLVEFAILED;
 * 3. the exit policy is checked on that address, the exit's own addresses refused like
 *    private ones unless allowed by name (END EXITPOLICY);
 * 4. re-entry into the network: an address and port that are a relay's OR port are refused
 *    (END CONNECTREFUSED, C tor nodelist_reentry_contains; CONNECTREFUSED so that clients do
 *    not retry elsewhere);
 * 5. only then is the address (not the name) connected to.
 * @module
 */

import { lookup } from "node:dns/promises";
import { EndReason } from "../cell/relay_cell.ts";
import type { ExitPolicy } from "./exit_policy.ts";

/** What the exit knows when a BEGIN arrives. */
export interface ExitCheck {
  /** The exit policy. */
  policy: ExitPolicy;
  /** True when `address:port` is some relay's OR port (the re-entry set). */
  isRelayPort: (address: string, port: number) => boolean;
  /** True when the circuit's previous hop authenticated as a relay of the network. */
  fromRelay: boolean;
  /** The exit's own addresses (refused unless the policy allows them by name). */
  self?: readonly string[];
  /** Resolves a host name to IPv4 addresses (default: the system resolver). */
  resolve?: (host: string) => Promise<string[]>;
}

/** The outcome of the checks: the address to connect to, or the END reason. */
export type ExitDecision = { address: string } | { reason: number };

const DOTTED = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a canonical dotted-quad IPv4 address. */
export function isDottedQuad(host: string): boolean {
  return DOTTED.test(host);
}

/** Resolves through getaddrinfo (node:dns lookup), IPv4 only. */
export async function systemResolve(host: string): Promise<string[]> {
  const all = await lookup(host, { family: 4, all: true });
  return all.map((a) => a.address);
}

/** Resolves `host` to one IPv4 address, or undefined when it cannot be. */
export async function resolveIpv4(
  host: string,
  resolve: (host: string) => Promise<string[]> = systemResolve,
): Promise<string | undefined> {
  if (isDottedQuad(host)) return host;
  if (host.includes(":") || host.length === 0 || host.length > 255) return undefined;
  try {
    return (await resolve(host)).find(isDottedQuad);
  } catch {
    return undefined;
  }
}

/** Runs steps 1–4 for `host:port`: where to connect, or why not (nothing is connected). */
export async function exitDecision(
  host: string,
  port: number,
  check: ExitCheck,
): Promise<ExitDecision> {
  if (!check.fromRelay) return { reason: EndReason.TORPROTOCOL };
  // Names the policy refuses as names ("localhost", IPv6 literals) are not even resolved.
  if (!isDottedQuad(host) && !check.policy.allows(host, port)) {
    return { reason: EndReason.EXITPOLICY };
  }
  const address = await resolveIpv4(host, check.resolve);
  if (address === undefined) return { reason: EndReason.RESOLVEFAILED };
  if (!check.policy.allows(address, port, check.self)) return { reason: EndReason.EXITPOLICY };
  if (check.isRelayPort(address, port)) return { reason: EndReason.CONNECTREFUSED };
  return { address };
}
