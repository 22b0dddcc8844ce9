/**
 * The client side of one circuit, sans I/O (arti tor-proto's client reactor): it builds the
 * circuit hop by hop with ntor (CREATE2, then EXTEND2 in RELAY_EARLY, tor-spec §5.1), opens
 * streams, and takes every inbound cell, answering through {@link ClientCircuitIO}. The
 * client's protocol rules live here once:
 *
 * * layer check: a cell is handled as coming from the hop whose layer recognized it, and
 *   stream cells (CONNECTED, DATA, END, stream SENDME) are accepted only from the hop the
 *   stream was opened to; EXTENDED2 only from the last hop while extending;
 * * commands a relay never sends to a client (BEGIN, EXTEND2, …) and RELAY_EARLY travelling
 *   inbound close the circuit (tor-spec §5.6);
 * * states: CREATED2 only while creating, CONNECTED only for a stream that asked;
 * * circuit windows, authenticated SENDME v1 only (tor-spec §7.3–7.4, proposal 289).
 *
 * Time comes from an injected clock; {@link ClientCircuitCore.tick} enforces the build
 * timeout.
 * @module
 */

import { CellCommand, DestroyReason, type DestroyReasonCode } from "../cell/cell.ts";
import {
  decodeRelayCell,
  encodeRelayCell,
  RelayCommand,
  RelayProtocolError,
} from "../cell/relay_cell.ts";
import {
  decodeCreated2,
  decodeEnd,
  decodeSendme,
  encodeBegin,
  encodeCreate2,
  encodeEnd,
  encodeExtend2,
  encodeSendme,
  HandshakeType,
  MessageError,
} from "../cell/messages.ts";
import { HandshakeError, ntorClient1, ntorClient2, type NtorClientState } from "../crypto/ntor.ts";
import { ClientCrypto } from "../crypto/relay_crypto.ts";
import {
  CircuitPackageWindow,
  CIRCWINDOW_INCREMENT,
  CIRCWINDOW_START,
  DeliverWindow,
} from "./flow.ts";
import { ProtocolError } from "./error.ts";
import { MAX_RELAY_EARLY } from "./relay_circuit.ts";

/** What the client needs to know of one hop to extend to it. */
export interface CircuitHop {
  /** The relay's 20-byte identity digest. */
  id: Uint8Array;
  /** The relay's ntor onion key (32 bytes). */
  onionKey: Uint8Array;
  /** IPv4 address of its OR port (for EXTEND2). */
  address: string;
  /** Its OR port. */
  port: number;
  /** Its Ed25519 identity, when known (sent in EXTEND2: the extending relay checks it). */
  ed25519?: Uint8Array;
}

/** What a client circuit core asks its role to do. */
export interface ClientCircuitIO {
  /** Queues a cell to the guard: CREATE2 and DESTROY are control cells, RELAY(_EARLY) not. */
  send(command: number, payload: Uint8Array): void;
  /** Every hop has answered: the circuit carries streams now. */
  built(): void;
  /** A stream's exit answered CONNECTED. */
  connected(streamId: number): void;
  /** A stream ended from the far side (END), or its BEGIN was refused, with a reason. */
  streamEnded(streamId: number, reason: number): void;
  /** Data for a stream; false when the stream's window was overrun. */
  deliver(streamId: number, data: Uint8Array): boolean;
  /** A stream-level SENDME; false when it was not expected. */
  streamSendme(streamId: number): boolean;
  /**
   * The circuit closed: `reason` from tor-spec §5.4, `remote` when the guard sent DESTROY
   * (the core sends DESTROY itself otherwise).
   */
  closed(reason: number, remote: boolean, why: string): void;
}

/** Options of a client circuit core. */
export interface ClientCircuitOptions {
  /** Milliseconds since some origin (default `performance.now`). */
  now?: () => number;
  /** Build timeout in ms, enforced by {@link ClientCircuitCore.tick} (default 30 000). */
  buildTimeoutMs?: number;
  /** Fills relay cell padding (default crypto.getRandomValues). */
  random?: (b: Uint8Array) => void;
}

/** Where a client circuit is in its life. */
export type ClientCircuitState = "new" | "creating" | "extending" | "open" | "closed";

type StreamState = "connecting" | "open";

/** Half-closed stream ids remembered per circuit (the oldest go first). */
const MAX_HALF_CLOSED = 1024;

/** One circuit of a client, without sockets. */
export class ClientCircuitCore {
  #io: ClientCircuitIO;
  #path: CircuitHop[];
  #crypto = new ClientCrypto();
  #state: ClientCircuitState = "new";
  #pending?: NtorClientState | undefined;
  #now: () => number;
  #started = 0;
  #timeout: number;
  #random: ((b: Uint8Array) => void) | undefined;
  #earlySent = 0;
  #streams = new Map<number, { hop: number; state: StreamState }>();
  /**
   * Streams this side ended (END sent) whose far side may not know yet (C tor's half-closed
   * edges, half_edge_st.h; arti's half-streams): a CONNECTED, DATA, SENDME or END still in
   * flight for them is dropped, not a protocol violation; their END forgets them.
   */
  #halfClosed = new Map<number, number>();
  #nextStream = 1;
  #deliver = new DeliverWindow(CIRCWINDOW_START, CIRCWINDOW_INCREMENT);
  /** The package window towards the exit, shared by the circuit's streams. */
  readonly packageWindow: CircuitPackageWindow = new CircuitPackageWindow();

  /** `path`: the hops, guard first. */
  constructor(path: CircuitHop[], io: ClientCircuitIO, options: ClientCircuitOptions = {}) {
    if (path.length === 0) throw new RangeError("a circuit needs at least one hop");
    this.#path = path;
    this.#io = io;
    this.#now = options.now ?? (() => performance.now());
    this.#timeout = options.buildTimeoutMs ?? 30_000;
    this.#random = options.random;
  }

  /** The circuit's state. */
  get state(): ClientCircuitState {
    return this.#state;
  }

  /** Hops with keys so far. */
  get hops(): number {
    return this.#crypto.hops;
  }

  /** Sends CREATE2 to the guard (tor-spec §5.1). */
  start(): void {
    if (this.#state !== "new") throw new Error("circuit already started");
    this.#started = this.#now();
    this.#state = "creating";
    this.#io.send(CellCommand.CREATE2, encodeCreate2(this.#handshake(0)));
  }

  /** Closes the circuit when the build has taken longer than the timeout. */
  tick(): void {
    if (this.#state !== "creating" && this.#state !== "extending") return;
    if (this.#now() - this.#started >= this.#timeout) {
      this.#close(
        DestroyReason.TIMEOUT,
        false,
        `circuit build timed out after ${this.#timeout} ms`,
      );
    }
  }

  /** A cell from the guard for this circuit. */
  onCell(command: number, payload: Uint8Array): void {
    if (this.#state === "closed") return;
    try {
      switch (command) {
        case CellCommand.CREATED2:
          if (this.#state !== "creating") throw new ProtocolError("CREATED2 while not creating");
          return this.#addHop(decodeCreated2(payload));
        case CellCommand.RELAY:
          return this.#onRelay(payload);
        case CellCommand.RELAY_EARLY:
          throw new ProtocolError("RELAY_EARLY cell travelling inbound");
        case CellCommand.DESTROY:
          return this.#close(
            payload[0] ?? 0,
            true,
            `destroyed by the guard (reason ${payload[0]})`,
          );
        default:
          return; // PADDING and unknown commands are dropped (tor-spec §3)
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Opens a stream to `host:port` at the last hop (BEGIN, tor-spec §6.2); its id. */
  begin(host: string, port: number): number {
    if (this.#state !== "open") throw new Error(`circuit is ${this.#state}`);
    let id = this.#nextStream;
    while (this.#streams.has(id) || this.#halfClosed.has(id)) id = (id % 0xffff) + 1;
    this.#nextStream = (id % 0xffff) + 1;
    this.#streams.set(id, { hop: this.#path.length - 1, state: "connecting" });
    this.send(RelayCommand.BEGIN, id, encodeBegin({ host, port }));
    return id;
  }

  /** The role forgot a stream (its socket closed, END sent or received). */
  streamClosed(streamId: number): void {
    const s = this.#streams.get(streamId);
    this.#streams.delete(streamId);
    if (!s) return;
    this.#halfClosed.set(streamId, s.hop);
    // Bounded: the oldest half-closed id is forgotten first.
    if (this.#halfClosed.size > MAX_HALF_CLOSED) {
      this.#halfClosed.delete(this.#halfClosed.keys().next().value!);
    }
  }

  /**
   * Gives up a stream this side still waits on (e.g. its BEGIN timed out): END with
   * `reason` to its hop (C tor connection_ap_expire_beginning sends END TIMEOUT), and a
   * CONNECTED that comes later is dropped.
   */
  abandonStream(streamId: number, reason: number): void {
    const s = this.#streams.get(streamId);
    if (!s || this.#state !== "open") return;
    this.send(RelayCommand.END, streamId, encodeEnd(reason), s.hop);
    this.streamClosed(streamId);
  }

  /**
   * Sends a relay cell to the last hop (or `hop`). For DATA the running digest is kept every
   * 100th cell, before the cell leaves, for the SENDME v1 it earns (proposal 289); the caller
   * spends {@link packageWindow} first.
   */
  send(command: number, streamId: number, data: Uint8Array, hop?: number): void {
    if (this.#state === "closed") return;
    hop ??= this.#crypto.hops - 1;
    const payload = encodeRelayCell({ command, streamId, data }, this.#random);
    this.#crypto.encrypt(payload, hop);
    if (command === RelayCommand.DATA) {
      this.packageWindow.packaged(() => this.#crypto.lastForwardDigest(hop));
    }
    this.#io.send(CellCommand.RELAY, payload);
  }

  /** Closes the circuit from this side (DESTROY with `reason` to the guard). */
  close(reason: DestroyReasonCode | number = DestroyReason.FINISHED, why = "closed"): void {
    this.#close(reason, false, why);
  }

  #sendRelay(cell: number, command: number, streamId: number, data: Uint8Array, hop: number) {
    const payload = encodeRelayCell({ command, streamId, data }, this.#random);
    this.#crypto.encrypt(payload, hop);
    this.#io.send(cell, payload);
  }

  #handshake(i: number) {
    const hop = this.#path[i]!;
    const [state, skin] = ntorClient1({ id: hop.id, onionKey: hop.onionKey });
    this.#pending = state;
    return { htype: HandshakeType.NTOR, hdata: skin };
  }

  #addHop(reply: Uint8Array): void {
    const state = this.#pending;
    if (!state) throw new ProtocolError("handshake reply without a handshake");
    this.#pending = undefined;
    this.#crypto.addHop(ntorClient2(state, reply));
    const next = this.#crypto.hops;
    if (next === this.#path.length) {
      this.#state = "open";
      this.#io.built();
      return;
    }
    // EXTEND2 goes in RELAY_EARLY to the current last hop (tor-spec §5.1.2, §5.6).
    if (++this.#earlySent > MAX_RELAY_EARLY) throw new Error("path longer than RELAY_EARLY allows");
    this.#state = "extending";
    const hop = this.#path[next]!;
    const create = this.#handshake(next);
    const ext = encodeExtend2({
      address: hop.address,
      port: hop.port,
      id: hop.id,
      ...(hop.ed25519 ? { ed25519: hop.ed25519 } : {}),
      create,
    });
    this.#sendRelay(CellCommand.RELAY_EARLY, RelayCommand.EXTEND2, 0, ext, next - 1);
  }

  #onRelay(payload: Uint8Array): void {
    if (this.#state === "new" || this.#state === "creating") {
      throw new ProtocolError("RELAY cell before the circuit was created");
    }
    const hop = this.#crypto.decrypt(payload);
    if (hop < 0) throw new ProtocolError("relay cell no hop recognizes");
    const rc = decodeRelayCell(payload);
    const last = this.#crypto.hops - 1;
    const io = this.#io;
    switch (rc.command) {
      case RelayCommand.EXTENDED2:
        if (this.#state !== "extending" || hop !== last) {
          throw new ProtocolError(`EXTENDED2 from hop ${hop + 1} while ${this.#state}`);
        }
        return this.#addHop(decodeCreated2(rc.data));
      case RelayCommand.TRUNCATED:
        // Only a hop with a next hop (or one extending) can lose it (tor-spec §5.4).
        if (hop === last && this.#state !== "extending") {
          throw new ProtocolError(`TRUNCATED from hop ${hop + 1}, which has no next hop`);
        }
        // We do not rebuild truncated circuits: the circuit closes.
        return this.#close(
          DestroyReason.FINISHED,
          false,
          `circuit truncated at hop ${hop + 1} (reason ${rc.data[0] ?? 0})`,
        );
      case RelayCommand.DATA: {
        const s = this.#stream(rc.streamId, hop, "DATA");
        const verdict = this.#deliver.received();
        if (verdict === "violation") throw new ProtocolError("circuit deliver window overrun");
        if (verdict === "sendme") {
          this.send(
            RelayCommand.SENDME,
            0,
            encodeSendme(this.#crypto.lastBackwardDigest(hop)),
            hop,
          );
        }
        if (!s) return; // a stream we closed: its data was already in flight
        if (s.state !== "open") throw new ProtocolError(`DATA before CONNECTED on ${rc.streamId}`);
        if (!io.deliver(rc.streamId, rc.data)) {
          throw new ProtocolError(`stream ${rc.streamId} deliver window overrun`);
        }
        return;
      }
      case RelayCommand.SENDME:
        if (rc.streamId !== 0 && this.#halfClosedFrom(rc.streamId, hop)) return;
        if (rc.streamId === 0) {
          if (hop !== last) throw new ProtocolError(`circuit SENDME from hop ${hop + 1}`);
          const verdict = this.packageWindow.circuitSendme(decodeSendme(rc.data));
          if (verdict !== "ok") throw new ProtocolError(`circuit SENDME refused: ${verdict}`);
        } else if (this.#stream(rc.streamId, hop, "SENDME") && !io.streamSendme(rc.streamId)) {
          throw new ProtocolError(`unexpected SENDME on stream ${rc.streamId}`);
        }
        return;
      case RelayCommand.CONNECTED: {
        if (this.#halfClosedFrom(rc.streamId, hop)) return; // answered after we gave up
        const s = this.#stream(rc.streamId, hop, "CONNECTED");
        if (!s || s.state !== "connecting") {
          throw new ProtocolError(`CONNECTED for stream ${rc.streamId} that did not ask`);
        }
        s.state = "open";
        return io.connected(rc.streamId);
      }
      case RelayCommand.END: {
        if (this.#halfClosedFrom(rc.streamId, hop)) {
          this.#halfClosed.delete(rc.streamId);
          return;
        }
        if (!this.#stream(rc.streamId, hop, "END")) return;
        this.#streams.delete(rc.streamId);
        return io.streamEnded(rc.streamId, decodeEnd(rc.data));
      }
      case RelayCommand.DROP:
        return;
      case RelayCommand.BEGIN:
      case RelayCommand.BEGIN_DIR:
      case RelayCommand.EXTEND:
      case RelayCommand.EXTEND2:
      case RelayCommand.TRUNCATE:
      case RelayCommand.RESOLVE:
        throw new ProtocolError(`relay command ${rc.command} travelling inbound`);
      default:
        return; // unknown relay commands are dropped (tor-spec §6.1)
    }
  }

  /** True when `id` is a stream this side ended, and the cell comes from its hop. */
  #halfClosedFrom(id: number, hop: number): boolean {
    return !this.#streams.has(id) && this.#halfClosed.get(id) === hop;
  }

  /**
   * The layer check (tor-spec §6.1; C tor relay_crypt_from_last_hop, arti's per-hop stream
   * map): a stream cell must come from the hop the stream was opened to. Returns the stream,
   * or undefined for one this side already closed (only from the last hop).
   */
  #stream(id: number, hop: number, what: string) {
    if (id === 0) throw new ProtocolError(`${what} on stream 0`);
    const s = this.#streams.get(id);
    const want = s ? s.hop : this.#path.length - 1;
    if (hop !== want) {
      throw new ProtocolError(`${what} for stream ${id} from hop ${hop + 1}, not hop ${want + 1}`);
    }
    return s;
  }

  #fail(e: unknown): void {
    const err = e instanceof ProtocolError
      ? e
      : e instanceof MessageError || e instanceof RelayProtocolError || e instanceof HandshakeError
      ? new ProtocolError(e.message)
      : new ProtocolError((e as Error).message ?? String(e), { reason: DestroyReason.INTERNAL });
    this.#close(err.reason, false, err.message);
  }

  #close(reason: number, remote: boolean, why: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#pending = undefined;
    this.#streams.clear();
    this.#halfClosed.clear();
    this.packageWindow.abort();
    if (!remote) this.#io.send(CellCommand.DESTROY, Uint8Array.of(reason));
    this.#io.closed(reason, remote, why);
  }
}
