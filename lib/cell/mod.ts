/**
 * Pure codecs for Tor's cells, relay cells and the messages they carry. No I/O.
 * @module
 */

export * from "./cell.ts";
export * from "./relay_cell.ts";
export * from "./messages.ts";
export * from "./link_cells.ts";
