/**
 * Edge streams: a socket at the edge of a circuit (the client's SOCKS connection, the exit's
 * connection to the destination) joined to one circuit stream.
 * @module
 */

export * from "./stream.ts";
export * from "./late_socket.ts";
