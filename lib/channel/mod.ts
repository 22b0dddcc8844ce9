/**
 * Channels (cells over a link), the EWMA circuit scheduler, the relay-wide cell scheduler
 * (vanilla or KIST, with the kernel socket state KIST reads) and the token bucket.
 * @module
 */

export * from "./channel.ts";
export * from "./ewma.ts";
export * from "./kist.ts";
export * from "./link.ts";
export * from "./scheduler.ts";
export * from "./socket_info.ts";
export * from "./token_bucket.ts";
