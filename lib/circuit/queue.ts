/**
 * The per-circuit cell queue limit (C tor relay.c append_cell_to_circuit_queue, consensus
 * parameter `circ_max_cell_queue_size`, RELAY_CIRC_CELL_QUEUE_SIZE_DEFAULT = 2500): a relay
 * that has this many cells queued for one circuit in one direction and is handed another
 * closes the circuit (reason RESOURCELIMIT) instead of queueing without bound. Honest
 * traffic never gets near it: the circuit window (1000 cells, tor-spec §7.3) bounds DATA,
 * and an exit stops packaging at 256 queued cells; what fills a queue past 2500 is cells
 * outside flow control (TRUNCATE, DROP, BEGIN answers) sent at a peer that does not read.
 * @module
 */

/** C tor's default limit of cells queued for one circuit (RELAY_CIRC_CELL_QUEUE_SIZE_DEFAULT). */
export const RELAY_CIRC_CELL_QUEUE_SIZE = 2500;

/** True when a circuit holding `queued` cells (the new one included) is past `limit`. */
export function circuitQueueOverfull(
  queued: number,
  limit: number = RELAY_CIRC_CELL_QUEUE_SIZE,
): boolean {
  return queued > limit;
}
