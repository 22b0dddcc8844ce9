/**
 * A hostile client for tests: a raw link and hand-built circuits (CREATE2, EXTEND2 in
 * RELAY_EARLY, relay cells sealed per hop) that ignore every window and may stop reading,
 * so tests can bend the protocol the way an attacker would.
 * @module
 */

import {
  type Cell,
  CellCommand,
  CellReader,
  decodeCreated2,
  decodeRelayCell,
  encodeCell,
  encodeCreate2,
  encodeExtend2,
  encodeRelayCell,
  HandshakeType,
  type RelayCell,
  RelayCommand,
} from "../lib/cell/mod.ts";
import { ntorClient1, ntorClient2, type NtorClientState } from "../lib/crypto/ntor.ts";
import { ClientCrypto } from "../lib/crypto/relay_crypto.ts";
import { fingerprintDigest } from "../lib/directory/keys.ts";
import type { RelayEntry } from "../lib/directory/document.ts";
import { type TorLink, torLinkConnect } from "../lib/transport/tor_link.ts";
import { fromBase64 } from "../lib/util/bytes.ts";

/** A link to a relay as an anonymous client, read by hand. */
export class RawLink {
  readonly link: TorLink;
  readonly conn: Deno.TcpConn;
  #reader = new CellReader();
  #paused = false;
  #resume?: () => void;
  #circuits = new Map<number, RawCircuit>();
  #next = 0x80000001;
  /** Every cell received, by circuit id, for tests that look at the answers. */
  readonly received: Cell[] = [];
  /** True once the relay closed the link. */
  closedByPeer = false;
  readonly done: Promise<void>;

  private constructor(link: TorLink, conn: Deno.TcpConn) {
    this.link = link;
    this.conn = conn;
    this.done = this.#loop();
  }

  /** Connects to `entry` and runs the link handshake as a client. */
  static async open(entry: RelayEntry): Promise<RawLink> {
    const conn = await Deno.connect({ hostname: entry.address, port: entry.orPort });
    const link = await torLinkConnect(conn, { expect: { rsaFingerprint: entry.fingerprint } });
    return new RawLink(link, conn);
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        if (this.#paused) await new Promise<void>((r) => this.#resume = r);
        const chunk = await this.link.read();
        if (chunk === null) break;
        this.#reader.push(chunk);
        for (let c = this.#reader.next(); c; c = this.#reader.next()) {
          const cell = { ...c, payload: c.payload.slice() };
          this.received.push(cell);
          this.#circuits.get(cell.circId)?.onCell(cell);
        }
      }
    } catch { /* closed */ }
    this.closedByPeer = true;
    for (const c of this.#circuits.values()) {
      c.onCell({ circId: 0, command: -1, payload: new Uint8Array(1) });
    }
  }

  /** Stops reading the socket (the relay's queues towards us then grow). */
  pause(): void {
    this.#paused = true;
  }

  /** Reads again. */
  resume(): void {
    this.#paused = false;
    this.#resume?.();
  }

  /** Writes one cell. */
  send(cell: Cell): Promise<void> {
    return this.link.writev([encodeCell(cell)]);
  }

  /** Writes many cells in one write. */
  sendMany(cells: Cell[]): Promise<void> {
    return this.link.writev(cells.map(encodeCell));
  }

  /** A fresh circuit id (we opened the link: high bit set, tor-spec §5.1.1). */
  circId(): number {
    return this.#next++ >>> 0;
  }

  /** Creates a circuit to the link's relay (CREATE2) and waits for CREATED2. */
  async create(entry: RelayEntry, circId = this.circId()): Promise<RawCircuit> {
    const circ = new RawCircuit(this, circId);
    this.#circuits.set(circId, circ);
    await circ.create(entry);
    return circ;
  }

  /** Closes the link. */
  close(): void {
    this.link.close();
  }
}

/** One circuit of a {@link RawLink}: sealed relay cells, no windows, no rules. */
export class RawCircuit {
  readonly raw: RawLink;
  readonly circId: number;
  readonly crypto = new ClientCrypto();
  /** Relay cells received, with the hop that recognized them. */
  readonly relayCells: { hop: number; cell: RelayCell }[] = [];
  /** The DESTROY reason once destroyed (or -1 when the link closed). */
  destroyed?: number;
  #pending?: NtorClientState | undefined;
  #waiters: (() => void)[] = [];

  constructor(raw: RawLink, circId: number) {
    this.raw = raw;
    this.circId = circId;
  }

  /** @internal */
  onCell(cell: Cell): void {
    if (cell.command === CellCommand.CREATED2 && this.#pending) {
      this.crypto.addHop(ntorClient2(this.#pending, decodeCreated2(cell.payload)));
      this.#pending = undefined;
    } else if (cell.command === CellCommand.RELAY) {
      const hop = this.crypto.decrypt(cell.payload);
      if (hop >= 0) {
        const rc = decodeRelayCell(cell.payload);
        const copy = { ...rc, data: rc.data.slice() };
        if (rc.command === RelayCommand.EXTENDED2 && this.#pending) {
          this.crypto.addHop(ntorClient2(this.#pending, decodeCreated2(copy.data)));
          this.#pending = undefined;
        }
        this.relayCells.push({ hop, cell: copy });
      }
    } else if (cell.command === CellCommand.DESTROY || cell.command === -1) {
      this.destroyed ??= cell.payload[0] ?? 0;
    }
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves once `test` holds, or rejects after `ms`. */
  async until(test: () => boolean, what: string, ms = 20_000): Promise<void> {
    const end = performance.now() + ms;
    while (!test()) {
      const left = end - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      let t: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        t = setTimeout(r, Math.min(left, 200));
      });
      clearTimeout(t);
    }
  }

  #skin(entry: RelayEntry) {
    const [state, skin] = ntorClient1({
      id: fingerprintDigest(entry.fingerprint),
      onionKey: fromBase64(entry.onionKey),
    });
    this.#pending = state;
    return { htype: HandshakeType.NTOR, hdata: skin };
  }

  /** @internal CREATE2 to the first hop. */
  async create(entry: RelayEntry): Promise<void> {
    await this.raw.send({
      circId: this.circId,
      command: CellCommand.CREATE2,
      payload: encodeCreate2(this.#skin(entry)),
    });
    await this.until(() => this.crypto.hops === 1 || this.destroyed !== undefined, "CREATED2");
    if (this.destroyed !== undefined) throw new Error(`CREATE2 refused: ${this.destroyed}`);
  }

  /** The EXTEND2 relay cell (sealed for the last hop, in RELAY_EARLY) towards `entry`. */
  extendCell(entry: RelayEntry, edit?: (body: Uint8Array) => Uint8Array): Cell {
    const body = encodeExtend2({
      address: entry.address,
      port: entry.orPort,
      id: fingerprintDigest(entry.fingerprint),
      create: this.#skin(entry),
    });
    return this.cell(RelayCommand.EXTEND2, 0, edit ? edit(body) : body, { early: true });
  }

  /** Extends to `entry` and waits for EXTENDED2 (or a DESTROY / TRUNCATED). */
  async extend(entry: RelayEntry): Promise<void> {
    const hops = this.crypto.hops;
    await this.raw.send(this.extendCell(entry));
    await this.until(
      () => this.crypto.hops > hops || this.destroyed !== undefined || this.truncated(),
      "EXTENDED2",
    );
    if (this.crypto.hops === hops) throw new Error("extend refused");
  }

  /** True once a TRUNCATED arrived. */
  truncated(): boolean {
    return this.relayCells.some((r) => r.cell.command === RelayCommand.TRUNCATED);
  }

  /** A relay cell sealed for `hop` (default the last), ready to send. */
  cell(
    command: number,
    streamId: number,
    data: Uint8Array,
    o: { early?: boolean; hop?: number } = {},
  ): Cell {
    const payload = encodeRelayCell({ command, streamId, data });
    this.crypto.encrypt(payload, o.hop ?? this.crypto.hops - 1);
    return {
      circId: this.circId,
      command: o.early ? CellCommand.RELAY_EARLY : CellCommand.RELAY,
      payload,
    };
  }

  /** Sends one relay cell. */
  relay(
    command: number,
    streamId: number,
    data: Uint8Array,
    o?: { early?: boolean; hop?: number },
  ) {
    return this.raw.send(this.cell(command, streamId, data, o));
  }

  /** Relay cells received with this command (optionally on this stream). */
  got(command: number, streamId?: number): RelayCell[] {
    return this.relayCells.filter((r) =>
      r.cell.command === command && (streamId === undefined || r.cell.streamId === streamId)
    ).map((r) => r.cell);
  }

  /** Sends DESTROY. */
  destroy(reason = 0): Promise<void> {
    return this.raw.send({
      circId: this.circId,
      command: CellCommand.DESTROY,
      payload: Uint8Array.of(reason),
    });
  }
}

/** Sends `n` CREATE2 cells (fresh circuit ids unless `circId`) on `raw`, 250 per write. */
export async function sendCreate2Cells(
  raw: RawLink,
  entry: RelayEntry,
  n: number,
  circId?: number,
): Promise<void> {
  // One onion skin for all (the attacker spends no CPU; the relay still runs ntor per cell).
  const [, skin] = ntorClient1({
    id: fingerprintDigest(entry.fingerprint),
    onionKey: fromBase64(entry.onionKey),
  });
  for (let i = 0; i < n; i += 250) {
    const cells = [];
    for (let j = i; j < Math.min(n, i + 250); j++) {
      cells.push({
        circId: circId ?? raw.circId(),
        command: CellCommand.CREATE2,
        payload: encodeCreate2({ htype: HandshakeType.NTOR, hdata: skin }),
      });
    }
    await raw.sendMany(cells);
  }
}

/** The process's resident set size in MiB. */
export function rssMiB(): number {
  return Math.round(Deno.memoryUsage().rss / 2 ** 20);
}
