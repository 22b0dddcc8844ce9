/**
 * The onion router role: accepts links, creates, extends and switches circuits and exits
 * streams, driving the relay circuit core of lib/circuit over the transports of
 * lib/transport.
 * @module
 */

export * from "./relay.ts";
export * from "./exit_policy.ts";
export * from "./tor_join.ts";
export * from "./dos.ts";
export * from "./oom.ts";
export * from "./exit_connect.ts";
export * from "./extend_check.ts";
export * from "./onion_queue.ts";
