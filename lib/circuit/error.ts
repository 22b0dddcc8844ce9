/**
 * Typed protocol violations. A core that meets one closes the circuit and reports the
 * tor-spec reason to send in DESTROY (§5.4) — and, for a stream-level violation, the
 * RELAY_END reason (§6.3).
 * @module
 */

import { DestroyReason, type DestroyReasonCode } from "../cell/cell.ts";
import { EndReason, type EndReasonCode } from "../cell/relay_cell.ts";

/** A definite violation of the circuit protocol by a peer; the circuit is torn down. */
export class ProtocolError extends Error {
  /** Error name. */
  override name = "ProtocolError";
  /** The DESTROY reason sent to the neighbours (tor-spec §5.4). */
  readonly reason: DestroyReasonCode;
  /** The RELAY_END reason when one stream is at fault (tor-spec §6.3). */
  readonly endReason: EndReasonCode;

  /** `reason` defaults to PROTOCOL, `endReason` to TORPROTOCOL. */
  constructor(
    message: string,
    options: { reason?: DestroyReasonCode; endReason?: EndReasonCode } = {},
  ) {
    super(message);
    this.reason = options.reason ?? DestroyReason.PROTOCOL;
    this.endReason = options.endReason ?? EndReason.TORPROTOCOL;
  }
}
