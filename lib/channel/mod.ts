/**
 * Channels (cells over a link), the EWMA circuit scheduler and the token bucket.
 * @module
 */

export * from "./channel.ts";
export * from "./ewma.ts";
export * from "./token_bucket.ts";
