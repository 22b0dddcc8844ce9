/**
 * Relay keys and the signed network document.
 * @module
 */

export * from "./keys.ts";
export * from "./document.ts";
export * from "./build.ts";
export * from "./watch.ts";
