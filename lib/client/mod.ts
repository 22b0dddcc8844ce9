/**
 * The onion proxy role: SOCKS5 in front of circuits it builds (paths, isolation), driving
 * the client circuit core of lib/circuit over the transports of lib/transport.
 * @module
 */

export * from "./client.ts";
export * from "./path.ts";
export * from "./socks.ts";
