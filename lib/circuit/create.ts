/**
 * A relay's circuit-creation and teardown rules as pure steps (arti keeps CREATE handling in
 * tor-proto's `relay/channel/create_handler.rs`, not in the relay binary): whether a CREATE2
 * may open a circuit on a channel, the server side of its handshake, and who hears of a
 * circuit's DESTROY with which reason. The relay role only carries out the answers.
 * @module
 */

import { DestroyReason, type DestroyReasonCode } from "../cell/cell.ts";
import { type Create2, decodeCreate2, HandshakeType } from "../cell/messages.ts";
import { type NtorSecretKeys, ntorServer } from "../crypto/ntor.ts";
import { ProtocolError } from "./error.ts";
import { checkCreateCircId } from "./relay_circuit.ts";

/** What admission needs to know of the channel a CREATE2 came on (its metadata). */
export interface CreateChannelFacts {
  /** True when this side opened the link (so the sender accepted it). */
  initiator: boolean;
  /** Shared link, or one circuit's own connection. */
  purpose: "shared" | "circuit";
  /** The CircID a per-circuit link is bound to (0 when shared). */
  boundCircId: number;
  /** Circuits the channel carries now. */
  carried: number;
  /** True when the CREATE2's CircID is in use on the channel already. */
  inUse: boolean;
}

/** The answer to a CREATE2: go ahead with the decoded body, or refuse with a DESTROY reason. */
export type Admission =
  | { ok: true; create: Create2 }
  | { ok: false; refuse: DestroyReasonCode; why: string };

/**
 * The per-circuit rule (DESIGN.md "PCTCP specifics"): a per-circuit link carries the one
 * circuit its authenticated handshake bound it to, once. Returns why a CREATE2 for `circId`
 * must be refused on `link`, which already carries `carried` circuits, or undefined.
 */
export function perCircuitRefusal(
  link: { purpose: "shared" | "circuit"; boundCircId: number },
  circId: number,
  carried: number,
): string | undefined {
  if (link.purpose !== "circuit") return undefined;
  if (circId !== link.boundCircId) {
    return `per-circuit link bound to ${link.boundCircId} asked for circuit ${circId}`;
  }
  if (carried > 0) return `per-circuit link already carries its circuit`;
  return undefined;
}

/**
 * Whether a CREATE2 for `circId` with `payload` may open a circuit on a channel with `facts`:
 * the CircID is free (tor-spec §5.1), the per-circuit binding holds, the high bit is the
 * sender's (§5.1.1), the body decodes and asks for ntor (§5.1.2; TAP and ntor v3 are not
 * offered). A refusal carries the DESTROY reason to answer with (§5.4: PROTOCOL).
 */
export function admitCreate2(
  circId: number,
  payload: Uint8Array,
  facts: CreateChannelFacts,
): Admission {
  try {
    if (facts.inUse) throw new ProtocolError("CREATE2 for a circuit id in use");
    const refusal = perCircuitRefusal(facts, circId, facts.carried);
    if (refusal) throw new ProtocolError(refusal);
    // The peer opened the link iff we did not (tor-spec §5.1.1).
    checkCreateCircId(circId, !facts.initiator);
    const create = decodeCreate2(payload);
    if (create.htype !== HandshakeType.NTOR) {
      throw new ProtocolError(`unsupported handshake type ${create.htype}`);
    }
    return { ok: true, create };
  } catch (e) {
    // A malformed body (MessageError) or any other definite violation: PROTOCOL.
    const refuse = e instanceof ProtocolError ? e.reason : DestroyReason.PROTOCOL;
    return { ok: false, refuse, why: (e as Error).message };
  }
}

/** The server side of an admitted CREATE2's ntor handshake: the circuit keys and the reply. */
export type CreateAnswer =
  | { ok: true; keys: Uint8Array; reply: Uint8Array }
  | { ok: false; refuse: DestroyReasonCode; why: string };

/**
 * Answers an admitted CREATE2 with this relay's onion key (tor-spec §5.1.4); a skin for
 * another relay or key, or a malformed one, is refused with PROTOCOL.
 */
export function answerCreate2(
  create: Create2,
  keys: NtorSecretKeys | readonly NtorSecretKeys[],
): CreateAnswer {
  // The current onion key, then the one before the last rotation (still in descriptors that
  // clients hold for its grace period; tor's onion-key rotation, dir-spec §2.1.1).
  const all = Array.isArray(keys) ? keys : [keys as NtorSecretKeys];
  let why = "no onion key";
  for (const k of all) {
    try {
      const [out, reply] = ntorServer(k, create.hdata);
      return { ok: true, keys: out, reply };
    } catch (e) {
      why = (e as Error).message;
    }
  }
  return { ok: false, refuse: DestroyReason.PROTOCOL, why };
}

/**
 * CREATE_FAST admission (tor-spec §5.1.3): the same CircID rules as CREATE2 (in use, high bit,
 * per-circuit binding); its payload is X, 20 bytes (the rest is padding). Only on a link the
 * peer opened to us: it is the first hop's handshake.
 */
export function admitCreateFast(
  circId: number,
  payload: Uint8Array,
  facts: CreateChannelFacts,
): { ok: true; x: Uint8Array } | { ok: false; refuse: DestroyReasonCode; why: string } {
  try {
    if (facts.inUse) throw new ProtocolError("CREATE_FAST for a circuit id in use");
    const refusal = perCircuitRefusal(facts, circId, facts.carried);
    if (refusal) throw new ProtocolError(refusal);
    checkCreateCircId(circId, !facts.initiator);
    if (payload.length < 20) throw new ProtocolError("CREATE_FAST payload too short");
    return { ok: true, x: payload.subarray(0, 20) };
  } catch (e) {
    const refuse = e instanceof ProtocolError ? e.reason : DestroyReason.PROTOCOL;
    return { ok: false, refuse, why: (e as Error).message };
  }
}

/** Who is told of a circuit's end, and with which reason. */
export interface DestroyStep<H> {
  /** The hops to send a DESTROY to. */
  notify: H[];
  /** The reason in those DESTROY cells. */
  reason: number;
}

/**
 * A circuit at this relay ends (tor-spec §5.4): every hop of it (`hops`: previous, next)
 * hears a DESTROY except the channel the end came from (`from`: it knows). The reason is the
 * cause's, except when the end was a DESTROY received (`received`): then DESTROYED goes on,
 * not the peer's reason (which would tell the far side why a hop it never spoke to closed).
 */
export function destroyStep<C, H extends { chan: C }>(
  hops: readonly (H | undefined)[],
  cause: { reason: number; from?: C; received?: boolean },
): DestroyStep<H> {
  const notify = hops.filter((h): h is H => h !== undefined && h.chan !== cause.from);
  return { notify, reason: cause.received ? DestroyReason.DESTROYED : cause.reason };
}
