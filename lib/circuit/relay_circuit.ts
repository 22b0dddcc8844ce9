/**
 * The relay side of one circuit, sans I/O (arti tor-proto's reactor style): cells come in
 * from the previous hop (outbound) or the next hop (inbound), and the core answers through
 * {@link RelayCircuitIO} — send towards the client, pass on to the next hop, deliver to a
 * stream, open a stream, extend, or destroy with a reason. The protocol rules of a relay live
 * here once:
 *
 * * relay crypto and recognition (tor-spec §5.5.2–5.5.3);
 * * RELAY_EARLY: at most 8 per circuit, only outbound; EXTEND2 only inside one (§5.6);
 * * which relay commands a relay accepts from the client (CONNECTED, EXTENDED2, TRUNCATED …
 *   travel the other way and close the circuit);
 * * states: EXTEND2 only once and only when not extended; CREATED2 only while extending;
 * * circuit windows and authenticated SENDME v1 (§7.3–7.4, proposal 289).
 *
 * Where each message a relay meets is handled (arti tor-proto's reactor.rs table). "Role" is
 * lib/relay/relay.ts, which holds sockets and maps, and no protocol rule of its own:
 *
 * | message                         | received in              | handled in                                      | why |
 * |---------------------------------|--------------------------|-------------------------------------------------|-----|
 * | CREATE2                         | role `#onCell`           | create.ts `admitCreate2`, `answerCreate2`       | CircID in use, per-circuit binding, high bit (§5.1.1), handshake type, ntor (§5.1.4) |
 * | CREATED2 (from the next hop)    | role `#onCell`           | `RelayCircuitCore.created`                      | only while extending; becomes EXTENDED2 (§5.1.2) |
 * | DESTROY                         | role `#onCell`           | create.ts `destroyStep`; role tears down        | who hears of it and with which reason (§5.4) |
 * | RELAY / RELAY_EARLY, outbound   | role → `fromPrev`        | `RelayCircuitCore`                              | a layer off, recognized or passed on, RELAY_EARLY count (§5.5–5.6) |
 * | RELAY, inbound                  | role → `fromNext`        | `RelayCircuitCore`                              | a layer on, towards the client (§5.5.3) |
 * | RELAY_EARLY, inbound            | role → `fromNext`        | `RelayCircuitCore`                              | closes the circuit: outbound only (§5.6) |
 * | relay DATA                      | core                     | core (deliver window), role's stream            | window accounting here, bytes to the socket there (§7.4) |
 * | relay SENDME                    | core                     | `CircuitPackageWindow` / role's stream          | v1 digest checked here (proposal 289) |
 * | relay BEGIN                     | core                     | role `#begin`                                   | exit policy and sockets are the role's; the answer (CONNECTED/END) the core's |
 * | relay END                       | core                     | role's stream                                   | the socket closes (§6.3) |
 * | relay EXTEND2                   | core (in RELAY_EARLY)    | role `#extend` through its transport            | once, only when not extended (§5.6); the transport picks the channel |
 * | relay TRUNCATE                  | core                     | role `#destroyNext`, core answers TRUNCATED     | §5.4 |
 * | relay DROP                      | core                     | core (dropped)                                  | long-range padding (§7.2) |
 * | relay CONNECTED, EXTENDED2, …   | core                     | core (circuit closed)                           | travel towards the client only |
 * | PADDING, VPADDING, unknown      | role `#onCell`           | dropped                                         | §3 |
 * @module
 */

import { CellCommand, type DestroyReasonCode } from "../cell/cell.ts";
import { DestroyReason } from "../cell/cell.ts";
import { decodeRelayCell, encodeRelayCell, EndReason, RelayCommand } from "../cell/relay_cell.ts";
import {
  type Begin,
  decodeBegin,
  decodeCreated2,
  decodeExtend2,
  decodeResolve,
  decodeSendme,
  encodeCreated2,
  encodeSendme,
  type Extend2,
  MessageError,
} from "../cell/messages.ts";
import { RelayProtocolError } from "../cell/relay_cell.ts";
import { RelayCrypto } from "../crypto/relay_crypto.ts";
import {
  CircuitPackageWindow,
  CIRCWINDOW_INCREMENT,
  CIRCWINDOW_START,
  DeliverWindow,
} from "./flow.ts";
import { ProtocolError } from "./error.ts";

/** A RESOLVED body with one non-transient error (tor-spec §6.4, type 0xF1). */
const RESOLVE_ERROR = Uint8Array.of(0xf1, 0, 0, 0, 0, 0);

/** Most RELAY_EARLY cells a circuit may carry (tor-spec §5.6, MAX_RELAY_EARLY_CELLS_PER_CIRCUIT). */
export const MAX_RELAY_EARLY = 8;

/**
 * CircID rule of link protocol 4+ (tor-spec §5.1.1): the side that opened the link chooses
 * ids with the most significant bit set, the other side with it clear, and 0 is the link
 * itself. Throws {@link ProtocolError} when a CREATE2 breaks it; `peerOpenedLink` is true
 * when the sender of the CREATE2 initiated the link.
 */
export function checkCreateCircId(circId: number, peerOpenedLink: boolean): void {
  if (circId === 0) throw new ProtocolError("CREATE2 on circuit id 0");
  const high = (circId >>> 31) === 1;
  if (high !== peerOpenedLink) {
    throw new ProtocolError(
      `CREATE2 circuit id ${circId >>> 0} has the high bit ${high ? "set" : "clear"}, ` +
        `but the sender ${peerOpenedLink ? "opened" : "accepted"} the link`,
    );
  }
}

/** What a relay circuit core asks its role to do. */
export interface RelayCircuitIO {
  /** Queues a RELAY cell payload towards the client (on the previous hop's link). */
  toClient(payload: Uint8Array): void;
  /** Queues a cell (RELAY or RELAY_EARLY) towards the next hop. */
  toNext(command: number, payload: Uint8Array): void;
  /** Data for an exit stream; false when the stream's window was overrun. */
  deliver(streamId: number, data: Uint8Array): boolean;
  /** A stream-level SENDME; false when it was not expected. */
  streamSendme(streamId: number): boolean;
  /** The client ended a stream. */
  streamEnd(streamId: number): void;
  /** The client asks this hop (as exit) to open a stream; answer with connected/endStream. */
  begin(streamId: number, begin: Begin): void;
  /** The client asks this hop to resolve a name (tor-spec §6.4); answer with `resolved`. */
  resolve?(streamId: number, host: string): void;
  /** The client asks this hop to extend; answer with {@link RelayCircuitCore.created} or
   * {@link RelayCircuitCore.extendFailed}. */
  extend(extend: Extend2): void;
  /** Tear down the circuit beyond this hop (after TRUNCATE) with `reason`. */
  truncateNext(reason: DestroyReasonCode): void;
  /** The circuit violated the protocol: destroy it towards both sides with `reason`. */
  destroy(reason: DestroyReasonCode, why: string): void;
}

/** Where a relay circuit is in its life. */
export type RelayCircuitState = "open" | "extending" | "extended" | "closed";

/** One circuit at a relay, without sockets. */
export class RelayCircuitCore {
  #io: RelayCircuitIO;
  #crypto: RelayCrypto;
  #state: RelayCircuitState = "open";
  #earlyLeft = MAX_RELAY_EARLY;
  #streams = new Set<number>();
  #deliver = new DeliverWindow(CIRCWINDOW_START, CIRCWINDOW_INCREMENT);
  /** The package window towards the client, shared by this hop's exit streams. */
  readonly packageWindow: CircuitPackageWindow = new CircuitPackageWindow();

  /** `keys`: the 72 bytes of key material from the CREATE2 handshake (Df Db Kf Kb). */
  constructor(keys: Uint8Array, io: RelayCircuitIO) {
    this.#crypto = new RelayCrypto(keys);
    this.#io = io;
  }

  /** The circuit's state. */
  get state(): RelayCircuitState {
    return this.#state;
  }

  /** Exit streams open at this hop. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * A RELAY or RELAY_EARLY cell from the previous hop (outbound, tor-spec §5.5.2): peel our
   * layer; ours when recognized, else pass it on to the next hop.
   */
  fromPrev(command: number, payload: Uint8Array): void {
    if (this.#state === "closed") return;
    try {
      const early = command === CellCommand.RELAY_EARLY;
      if (early && --this.#earlyLeft < 0) {
        throw new ProtocolError(`more than ${MAX_RELAY_EARLY} RELAY_EARLY cells`);
      }
      if (this.#crypto.decryptOutbound(payload)) return this.#handle(payload, early);
      if (this.#state !== "extended") {
        throw new ProtocolError("unrecognized relay cell at the last hop");
      }
      this.#io.toNext(command, payload);
    } catch (e) {
      this.#fail(e);
    }
  }

  /**
   * A cell from the next hop (inbound, tor-spec §5.5.3): add our layer and pass it towards
   * the client. RELAY_EARLY never travels inbound (tor-spec §5.6): the circuit is closed.
   */
  fromNext(command: number, payload: Uint8Array): void {
    if (this.#state === "closed") return;
    if (command !== CellCommand.RELAY) {
      return this.#fail(new ProtocolError("RELAY_EARLY cell travelling inbound"));
    }
    if (this.#state !== "extended") {
      return this.#fail(new ProtocolError(`relay cell from the next hop while ${this.#state}`));
    }
    this.#crypto.encryptInbound(payload);
    this.#io.toClient(payload);
  }

  /** CREATED2 from the next hop: becomes EXTENDED2 towards the client (tor-spec §5.1.2). */
  created(payload: Uint8Array): void {
    if (this.#state === "closed") return;
    try {
      if (this.#state !== "extending") throw new ProtocolError("CREATED2 while not extending");
      const hdata = decodeCreated2(payload);
      this.#state = "extended";
      this.originate(RelayCommand.EXTENDED2, 0, encodeCreated2(hdata));
    } catch (e) {
      this.#fail(e);
    }
  }

  /** The extension failed (no link, identity mismatch, DESTROY from the next hop). */
  extendFailed(reason: DestroyReasonCode): void {
    if (this.#state === "closed") return;
    if (this.#state === "extending" || this.#state === "extended") this.#state = "open";
    this.originate(RelayCommand.TRUNCATED, 0, Uint8Array.of(reason));
  }

  /** An exit stream opened: CONNECTED (tor-spec §6.2) with the address reached. */
  connected(streamId: number, body: Uint8Array): void {
    this.originate(RelayCommand.CONNECTED, streamId, body);
  }

  /** Answers a RESOLVE with a RESOLVED body (tor-spec §6.4). */
  resolved(streamId: number, body: Uint8Array): void {
    this.originate(RelayCommand.RESOLVED, streamId, body);
  }

  /** Ends an exit stream from this side with a RELAY_END reason (tor-spec §6.3). */
  endStream(streamId: number, reason: number): void {
    this.#streams.delete(streamId);
    this.originate(RelayCommand.END, streamId, Uint8Array.of(reason));
  }

  /** The role forgot an exit stream (its socket closed). */
  streamClosed(streamId: number): void {
    this.#streams.delete(streamId);
  }

  /**
   * Seals a relay cell at this hop and sends it towards the client. For DATA the running
   * digest is kept every 100th cell for the SENDME v1 it earns (proposal 289); the caller
   * spends {@link packageWindow} first.
   */
  originate(command: number, streamId: number, data: Uint8Array): void {
    if (this.#state === "closed") return;
    const payload = encodeRelayCell({ command, streamId, data });
    this.#crypto.originateInbound(payload);
    if (command === RelayCommand.DATA) {
      this.packageWindow.packaged(() => this.#crypto.lastBackwardDigest);
    }
    this.#io.toClient(payload);
  }

  /** Marks the circuit closed (the role destroys it); releases window waiters. */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#streams.clear();
    this.packageWindow.abort();
  }

  #fail(e: unknown): void {
    if (this.#state === "closed") return;
    const err = e instanceof ProtocolError
      ? e
      : e instanceof MessageError || e instanceof RelayProtocolError
      ? new ProtocolError(e.message)
      : new ProtocolError((e as Error).message ?? String(e), { reason: DestroyReason.INTERNAL });
    this.close();
    this.#io.destroy(err.reason, err.message);
  }

  #handle(payload: Uint8Array, early: boolean): void {
    const rc = decodeRelayCell(payload);
    const io = this.#io;
    switch (rc.command) {
      case RelayCommand.DATA: {
        const verdict = this.#deliver.received();
        if (verdict === "violation") throw new ProtocolError("circuit deliver window overrun");
        if (verdict === "sendme") {
          this.originate(RelayCommand.SENDME, 0, encodeSendme(this.#crypto.lastForwardDigest));
        }
        if (rc.streamId === 0) throw new ProtocolError("DATA on stream 0");
        if (this.#streams.has(rc.streamId) && !io.deliver(rc.streamId, rc.data)) {
          throw new ProtocolError(`stream ${rc.streamId} deliver window overrun`);
        }
        return;
      }
      case RelayCommand.SENDME:
        if (rc.streamId === 0) {
          const verdict = this.packageWindow.circuitSendme(decodeSendme(rc.data));
          if (verdict !== "ok") throw new ProtocolError(`circuit SENDME refused: ${verdict}`);
        } else if (this.#streams.has(rc.streamId) && !io.streamSendme(rc.streamId)) {
          throw new ProtocolError(`unexpected SENDME on stream ${rc.streamId}`);
        }
        return;
      case RelayCommand.BEGIN: {
        if (rc.streamId === 0 || this.#streams.has(rc.streamId)) {
          return this.originate(
            RelayCommand.END,
            rc.streamId,
            Uint8Array.of(EndReason.TORPROTOCOL),
          );
        }
        let begin: Begin;
        try {
          begin = decodeBegin(rc.data);
        } catch {
          return this.originate(
            RelayCommand.END,
            rc.streamId,
            Uint8Array.of(EndReason.TORPROTOCOL),
          );
        }
        this.#streams.add(rc.streamId);
        return io.begin(rc.streamId, begin);
      }
      case RelayCommand.END:
        if (this.#streams.delete(rc.streamId)) io.streamEnd(rc.streamId);
        return;
      case RelayCommand.EXTEND2:
        // tor-spec §5.6: EXTEND2 only inside RELAY_EARLY; one extension per circuit.
        if (!early) throw new ProtocolError("EXTEND2 outside RELAY_EARLY");
        if (this.#state !== "open") throw new ProtocolError(`EXTEND2 while ${this.#state}`);
        if (rc.streamId !== 0) throw new ProtocolError("EXTEND2 on a stream");
        this.#state = "extending";
        return io.extend(decodeExtend2(rc.data));
      case RelayCommand.TRUNCATE:
        if (this.#state === "extended" || this.#state === "extending") {
          this.#state = "open";
          io.truncateNext(DestroyReason.REQUESTED);
        }
        return this.originate(RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.REQUESTED));
      case RelayCommand.RESOLVE:
        // tor-spec §6.4: a RESOLVE names a new stream id; the answer is one RESOLVED.
        if (rc.streamId === 0) throw new ProtocolError("RESOLVE on stream 0");
        if (!io.resolve) return this.originate(RelayCommand.RESOLVED, rc.streamId, RESOLVE_ERROR);
        return io.resolve(rc.streamId, decodeResolve(rc.data));
      case RelayCommand.DROP:
        return;
      case RelayCommand.CONNECTED:
      case RelayCommand.EXTENDED:
      case RelayCommand.EXTENDED2:
      case RelayCommand.TRUNCATED:
      case RelayCommand.RESOLVED:
        // Only relays send these, towards the client: a client sending one is hostile.
        throw new ProtocolError(`relay command ${rc.command} travelling outbound`);
      default:
        return; // unknown relay commands are dropped (tor-spec §6.1)
    }
  }
}
