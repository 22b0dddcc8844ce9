/**
 * The memory watchdog of a relay (tor-spec §8.1 "Memory exhaustion"; C tor relay.c
 * cell_queues_check_size and circuitlist.c circuits_handle_oom): when the bytes queued in
 * circuit cell queues and edge stream buffers reach `MaxMemInQueues`, circuits are closed,
 * those whose oldest queued data is oldest first, until the total is back under 90 % of the
 * limit (FRACTION_OF_DATA_TO_RETAIN_ON_OOM). Pure: the relay supplies the figures.
 * @module
 */

/** What the watchdog needs to know of one circuit. */
export interface OomCandidate {
  /** Bytes queued for it: cells on both hops and bytes waiting in its edge streams. */
  queuedBytes: number;
  /** When its oldest queued data was queued (ms, any monotonic clock). */
  oldestMs: number;
}

/** C tor FRACTION_OF_DATA_TO_RETAIN_ON_OOM: recover down to 90 % of the limit. */
export const OOM_RETAIN_FRACTION = 0.9;

/**
 * C tor's MaxMemInQueues default ("auto", config.c compute_real_max_mem_in_queues): 3/4 of
 * the machine's memory, at most 8 GiB on a 64-bit host; 8 GiB when the total is unknown.
 */
export function defaultMaxMemInQueues(): number {
  const cap = 8 * 2 ** 30;
  try {
    // Ask first: without --allow-sys, the call would prompt on a terminal.
    const q = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" });
    if (q.state !== "granted") return cap;
    const total = Deno.systemMemoryInfo().total;
    return total > 0 ? Math.min(cap, Math.floor(total * 0.75)) : cap;
  } catch {
    return cap;
  }
}

/**
 * The circuits to close: none while the total is under `limit`; else, oldest queued data
 * first, enough to bring the total to at most 90 % of `limit`.
 */
export function oomVictims<T extends OomCandidate>(circuits: Iterable<T>, limit: number): T[] {
  const all = [...circuits];
  let total = 0;
  for (const c of all) total += c.queuedBytes;
  if (total < limit) return [];
  const target = limit * OOM_RETAIN_FRACTION;
  const victims: T[] = [];
  for (const c of all.filter((c) => c.queuedBytes > 0).sort((a, b) => a.oldestMs - b.oldestMs)) {
    if (total <= target) break;
    victims.push(c);
    total -= c.queuedBytes;
  }
  return victims;
}
