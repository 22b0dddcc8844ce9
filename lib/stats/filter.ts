/**
 * Record filters: by relay (nickname or fingerprint, include/exclude), time window, outcome,
 * arm, and each arm circuit's first fetch.
 * @module
 */

import type { MeasureRecord } from "../measure/record.ts";

/** A filter; every given condition must hold. */
export interface RecordFilter {
  /** Keep fetches whose circuit used any of these relays. */
  relays?: string[];
  /** Drop fetches whose circuit used any of these relays. */
  excludeRelays?: string[];
  /** Keep fetches started at or after. */
  since?: Date;
  /** Keep fetches started before. */
  until?: Date;
  /** Keep these outcomes. */
  outcomes?: string[];
  /** Drop each arm circuit's first fetch (its time includes building the circuit). */
  excludeCircuitFirst?: boolean;
  /** Keep these arms. */
  arms?: string[];
}

/** True if the record passes the filter. */
export function filterRecord(r: MeasureRecord, f: RecordFilter): boolean {
  const path = (r.circuit?.path ?? []).map((x) => x.toUpperCase());
  if (f.relays && !f.relays.some((x) => path.includes(x.toUpperCase()))) return false;
  if (f.excludeRelays && f.excludeRelays.some((x) => path.includes(x.toUpperCase()))) return false;
  const t = Date.parse(r.start);
  if (f.since && !(t >= f.since.getTime())) return false;
  if (f.until && !(t < f.until.getTime())) return false;
  if (f.outcomes && !f.outcomes.includes(r.outcome)) return false;
  if (f.excludeCircuitFirst && r.arm_circuit?.first) return false;
  if (f.arms && !(r.arm !== undefined && f.arms.includes(r.arm))) return false;
  return true;
}
