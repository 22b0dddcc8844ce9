/**
 * Circuits without sockets: flow-control windows, typed protocol errors, and the sans-IO
 * circuit cores of the client and the relay (cells and ticks in, actions out).
 * @module
 */

export * from "./flow.ts";
export * from "./error.ts";
export * from "./relay_circuit.ts";
export * from "./create.ts";
export * from "./client_circuit.ts";
export * from "./queue.ts";
export * from "./extend_attempt.ts";
