/**
 * The transport registry (arti's tor-chanmgr factory.rs: a factory by name, a typed "no such
 * transport"): every transport a relay or client can run, by name. The CLI's `--transport`
 * choices and each transport's flags, the directory's advertised transports and the network
 * launcher's arguments all come from here, so a new transport is one file and one line
 * below (docs/transports.md).
 * @module
 */

import type { Transport } from "../directory/document.ts";
import type { ChannelPool } from "./pool.ts";
import { pctcpDefinition, type PctcpOptions } from "./pctcp.ts";
import { imuxDefinition, type ImuxOptions } from "./imux.ts";
import {
  type CircuitTransport,
  type LaunchFacts,
  torDefinition,
  type TransportContext,
  type TransportDefinition,
  type TransportFlag,
  type TransportRole,
} from "./transport.ts";

/**
 * A role's transport choice and each transport's own options section, nested by name:
 * `{ transport: "pctcp", pctcp: { security, caps, preopen } }`. A new transport adds its
 * section here.
 */
export interface TransportOptions {
  /** The transport to run (default "tor"). */
  transport?: Transport;
  /** Options of "pctcp". */
  pctcp?: PctcpOptions;
  /** Options of "imux". */
  imux?: ImuxOptions;
}

/** Every transport, by name: the registry lines. */
const DEFINITIONS: Record<string, TransportDefinition<unknown>> = {
  tor: torDefinition,
  pctcp: pctcpDefinition,
  imux: imuxDefinition,
};

/** The transport names, baseline first (the CLI's `--transport` choices). */
export const TRANSPORT_NAMES: readonly Transport[] = Object.keys(DEFINITIONS);

/** Raised for a transport name the registry does not know. */
export class NoSuchTransportError extends Error {
  /** Error name. */
  override name = "NoSuchTransportError";
  /** The name asked for. */
  readonly transport: string;
  /** `transport` is the unknown name. */
  constructor(transport: string) {
    super(`No such transport: ${JSON.stringify(transport)} (known: ${TRANSPORT_NAMES.join(", ")})`);
    this.transport = transport;
  }
}

/** The definition of transport `name`; {@link NoSuchTransportError} when there is none. */
export function transportDefinition(name: string): TransportDefinition<unknown> {
  const d = Object.hasOwn(DEFINITIONS, name) ? DEFINITIONS[name] : undefined;
  if (!d) throw new NoSuchTransportError(name);
  return d;
}

/** Options of {@link createTransport}: the nested transport options and the role's context. */
export interface CreateTransportOptions extends TransportOptions, Partial<TransportContext> {}

/** Makes the transport `name` over `pool`, with its section of `options`. */
export function createTransport(
  name: string,
  pool: ChannelPool,
  options: CreateTransportOptions = {},
): CircuitTransport {
  const d = transportDefinition(name);
  const section = (options as Record<string, unknown>)[name];
  return d.create(pool, section, {
    role: options.role ?? "relay",
    ...(options.socketsAvailable ? { socketsAvailable: options.socketsAvailable } : {}),
  });
}

/** The transports a relay running `name` lists in the directory. */
export function advertisedTransports(name: string): Transport[] {
  return [...transportDefinition(name).advertises];
}

/** Every transport's flags that `role` takes, each with the transport it belongs to. */
export function transportFlags(role: TransportRole): (TransportFlag & { transport: Transport })[] {
  return Object.values(DEFINITIONS).flatMap((d) =>
    d.flags.filter((f) => f.roles.includes(role)).map((f) => ({ ...f, transport: d.name }))
  );
}

/**
 * The nested options of transport `name` from parsed flags (commander's camelCase keys):
 * `{ transport: name, [name]: section }`. TypeError on a bad combination of flags.
 */
export function transportOptionsFromFlags(
  name: string,
  flags: Readonly<Record<string, unknown>>,
  role: TransportRole,
): TransportOptions {
  const section = transportDefinition(name).fromFlags(flags, role);
  return { transport: name, ...(section !== undefined ? { [name]: section } : {}) };
}

/** Lines to log when a role starts with these options (e.g. insecure lab mode). */
export function transportWarnings(options: TransportOptions): string[] {
  const name = options.transport ?? "tor";
  const d = transportDefinition(name);
  return d.warnings?.((options as Record<string, unknown>)[name]) ?? [];
}

/** The `--transport NAME` and transport flags for a relay or client the launcher starts. */
export function launchArgs(name: string, facts: LaunchFacts): string[] {
  return ["--transport", name, ...transportDefinition(name).launchArgs(facts)];
}
