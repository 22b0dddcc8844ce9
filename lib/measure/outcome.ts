/**
 * The one table of fetch outcomes (a record's `outcome`, docs/records.md): `ok` or an error
 * class, each with what it means. Fetchers, the run, the validator and the docs read it here.
 * @module
 */

/** Every outcome and what it means. */
export const OUTCOMES = {
  ok: "the body arrived whole (and matched the server's digest when it gave one)",
  timeout: "the fetch did not end within its timeout (censored at timeout_ms)",
  "proxy-connect": "the SOCKS proxy refused or did not answer the TCP connection",
  socks: "the SOCKS handshake failed (the proxy's reply says why)",
  circuit: "the proxy could not build a circuit for the stream",
  reset: "the connection broke after the SOCKS handshake",
  tls: "the TLS handshake with the server failed",
  http: "the server answered with an error status or a malformed response",
  "short-read": "the connection ended before the whole body",
  checksum: "the body's SHA-256 differs from the server's digest",
  other: "an error class the source did not name (an imported OnionPerf error outside this table)",
  interrupted: "the run stopped (Ctrl-C, SIGTERM, or its duration ended) while the fetch ran",
} as const;

/** A fetch outcome: `ok` or an error class. */
export type Outcome = keyof typeof OUTCOMES;

/** Every outcome name, in the table's order. */
export const OUTCOME_NAMES: readonly Outcome[] = Object.keys(OUTCOMES) as Outcome[];

/** True if `s` is an outcome of the table. */
export function isOutcome(s: unknown): s is Outcome {
  return typeof s === "string" && Object.hasOwn(OUTCOMES, s);
}

/** True for outcomes that say nothing about the path (the run stopped, not the network). */
export function isInterrupted(outcome: string): boolean {
  return outcome === "interrupted";
}
