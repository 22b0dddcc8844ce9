/**
 * Tor's circuit crypto: ntor, the KDFs, relay cell layers. Pure: no sockets.
 * @module
 */

export * from "./kdf.ts";
export * from "./ntor.ts";
export * from "./relay_crypto.ts";
export * from "./x25519.ts";
export * from "./ed25519.ts";
