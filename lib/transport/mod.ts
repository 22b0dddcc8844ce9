/**
 * Transports: the authenticated link (link.ts), the IPsec check, the channel pool, and the
 * seam roles use to get "a channel to peer P for circuit C" — shared (Tor) or per-circuit
 * (PCTCP) — picked by name through the registry (registry.ts; docs/transports.md).
 * @module
 */

export * from "./link.ts";
export * from "./ipsec.ts";
export * from "./pool.ts";
export * from "./transport.ts";
export * from "./pctcp.ts";
export * from "./registry.ts";
export * from "./tls.ts";
export * from "./tor_link.ts";
export * from "./pctcp_hello.ts";
export * from "./imux.ts";
