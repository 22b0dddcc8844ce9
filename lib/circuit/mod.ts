/**
 * Circuit logic without sockets: flow control windows.
 * @module
 */

export * from "./flow.ts";
