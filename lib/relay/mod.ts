/**
 * The onion router role: accepts links, creates, extends and switches circuits and exits
 * streams, driving the relay circuit core of lib/circuit over the transports of
 * lib/transport.
 * @module
 */

export * from "./relay.ts";
export * from "./exit_policy.ts";
export * from "./tor_join.ts";
