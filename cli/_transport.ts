/**
 * The `--transport` choice and every transport's own flags, from the transport registry, for
 * the commands that run a role (`relay`, `client`).
 * @module
 */

import { type Command, Option } from "commander";
import { positiveInt, UsageError } from "./_common.ts";
import {
  TRANSPORT_NAMES,
  transportFlags,
  type TransportOptions,
  transportOptionsFromFlags,
} from "../lib/transport/registry.ts";
import type { TransportRole } from "../lib/transport/transport.ts";

/** Adds `--transport` (the registry's names) and the flags the transports take for `role`. */
export function addTransportFlags(cmd: Command, role: TransportRole, what: string): Command {
  cmd.addOption(
    new Option("--transport <t>", what).choices([...TRANSPORT_NAMES]).default("tor"),
  );
  for (const f of transportFlags(role)) {
    const opt = new Option(f.flags, `${f.description} (${f.transport})`);
    if (f.choices) opt.choices([...f.choices]);
    if (f.integer) opt.argParser(positiveInt);
    if (f.default !== undefined) opt.default(f.default);
    cmd.addOption(opt);
  }
  return cmd;
}

/** The nested transport options from the parsed flags; a bad combination is a usage error. */
export function transportOptions(
  flags: { transport: string } & Record<string, unknown>,
  role: TransportRole,
): TransportOptions {
  try {
    return transportOptionsFromFlags(flags.transport, flags, role);
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(e.message);
    throw e;
  }
}
