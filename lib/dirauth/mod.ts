/**
 * A relay's place in a C tor network: its server descriptor (dir-spec §2.1.1), the directory
 * authorities of a torrc, and publishing to them.
 * @module
 */

export * from "./descriptor.ts";
export * from "./authorities.ts";
export * from "./publish.ts";
