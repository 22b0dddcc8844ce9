/**
 * The KIST scheduler's decisions, without I/O (Jansen et al., "Never Been KIST", USENIX
 * Security 2014; tor's src/core/or/scheduler_kist.c). Given each pending channel's socket
 * state, its output buffer and its circuit queues with their EWMA counts, it says how many
 * cells of which circuit to move to which channel's output buffer in this run.
 *
 * Per socket (update_socket_info_impl):
 *
 *     tcp_space   = max(0, (cwnd − unacked) × mss)
 *     extra_space = cwnd × mss × sock_buf_size_factor − notsent − outbuf
 *     limit       = max(0, tcp_space + extra_space)
 *
 * Then (kist_scheduler_run): pop the channel whose best (lowest-EWMA) circuit is lowest
 * across all pending channels (scheduler_compare_channels), move ONE cell from its best
 * circuit (channel_flush_some_cells(chan, 1)), charge the socket a cell, and put the channel
 * back while it has cells and room for another cell (socket_can_write). Repeat until no
 * channel can write. The EWMA count of a circuit grows by one per cell sent, so a bulk
 * circuit's priority falls as it is served and a quiet one goes first.
 * @module
 */

import { CELL_LEN } from "../cell/cell.ts";

/** Tor's defaults: KISTSchedRunInterval 10 ms, KISTSockBufSizeFactor 1.0. */
export const KIST_DEFAULTS = { runIntervalMs: 10, sockBufSizeFactor: 1.0 } as const;

/**
 * Bytes a cell costs against a socket's limit. Tor charges CELL_MAX_NETWORK_SIZE (514) plus
 * TLS_PER_CELL_OVERHEAD (29); our link frames add 20 bytes per write of up to 127 cells, so
 * we charge the cell's own 514 bytes.
 */
export const KIST_CELL_BYTES: number = CELL_LEN;

/**
 * Tor's fallback when the kernel cannot be asked (KISTLite, or no TCP_INFO): as many cells
 * as the connection's outbuf takes up to its high-water mark (channel_num_cells_writeable;
 * OR_CONN_HIGHWATER, 256 KiB by default).
 */
export const KIST_FALLBACK_BYTES = 256 * 1024;

/** The socket numbers KIST reads (segments and bytes as the kernel gives them). */
export interface KistSocketState {
  /** Congestion window, segments. */
  cwnd: number;
  /** Unacknowledged segments. */
  unacked: number;
  /** MSS, bytes. */
  mss: number;
  /** Bytes queued in the kernel and not yet sent. */
  notsent: number;
}

/**
 * The per-socket write limit for one run, bytes. Without socket state (no kernel support)
 * Tor's fallback: room in the outbuf up to {@link KIST_FALLBACK_BYTES}.
 *
 * @example Limit of a socket with room in its congestion window
 * ```ts
 * import { kistLimit } from "./kist.ts";
 * // (10 − 4) × 1000 + 10 × 1000 × 1.0 − 2000 − 500
 * if (kistLimit({ cwnd: 10, unacked: 4, mss: 1000, notsent: 2000 }, 500) !== 13500) {
 *   throw new Error("wrong KIST limit");
 * }
 * ```
 */
export function kistLimit(
  s: KistSocketState | undefined,
  outbuf: number,
  sockBufSizeFactor: number = KIST_DEFAULTS.sockBufSizeFactor,
): number {
  if (!s) return Math.max(0, KIST_FALLBACK_BYTES - outbuf);
  const tcpSpace = s.cwnd >= s.unacked ? (s.cwnd - s.unacked) * s.mss : 0;
  const extra = Math.floor(s.cwnd * s.mss * sockBufSizeFactor) - s.notsent - outbuf;
  return Math.max(0, tcpSpace + extra);
}

/** One circuit with cells waiting on a channel. */
export interface KistCircuitInput {
  /** Circuit id on its channel. */
  id: number;
  /** Cells queued. */
  cells: number;
  /** Its EWMA count now (lower goes first). */
  ewma: number;
}

/** One pending channel. */
export interface KistChannelInput {
  /** Its write limit this run, bytes ({@link kistLimit}). */
  limit: number;
  /** Circuits with cells queued. */
  circuits: KistCircuitInput[];
}

/** Cells to move: `cells` of circuit `circuit` to the output buffer of channel `channel`. */
export interface KistMove {
  /** Index into the input channels. */
  channel: number;
  /** Circuit id. */
  circuit: number;
  /** Cells. */
  cells: number;
}

/** What one run decided. */
export interface KistPlan {
  /** Moves in the order they were made (consecutive cells of one circuit merged). */
  moves: KistMove[];
  /** Bytes charged per channel. */
  written: number[];
  /** Channels that still have cells but no room: they wait for the next run. */
  blocked: number[];
}

/**
 * Plans one KIST run: cells one at a time to the channel whose best circuit has the lowest
 * EWMA count, while that channel's socket has room for a whole cell. Pure: the inputs are
 * not changed.
 */
export function kistPlan(
  channels: readonly KistChannelInput[],
  cellBytes: number = KIST_CELL_BYTES,
): KistPlan {
  const circs = channels.map((c) => c.circuits.filter((x) => x.cells > 0).map((x) => ({ ...x })));
  const written = channels.map(() => 0);
  const moves: KistMove[] = [];
  const canWrite = (i: number) => channels[i]!.limit - written[i]! >= cellBytes;
  const best = (i: number) => {
    let b: { id: number; cells: number; ewma: number } | undefined;
    for (const c of circs[i]!) if (c.cells > 0 && (!b || c.ewma < b.ewma)) b = c;
    return b;
  };
  const pending = new Set<number>();
  for (let i = 0; i < channels.length; i++) if (circs[i]!.length) pending.add(i);
  const blocked = new Set<number>();
  while (pending.size) {
    let ci = -1, cb: ReturnType<typeof best>;
    for (const i of pending) {
      const b = best(i);
      if (!b) continue;
      if (!cb || b.ewma < cb.ewma) ci = i, cb = b;
    }
    if (!cb) break;
    pending.delete(ci);
    if (!canWrite(ci)) {
      blocked.add(ci);
      continue;
    }
    cb.cells--;
    cb.ewma += 1;
    written[ci]! += cellBytes;
    const last = moves[moves.length - 1];
    if (last && last.channel === ci && last.circuit === cb.id) last.cells++;
    else moves.push({ channel: ci, circuit: cb.id, cells: 1 });
    const more = circs[ci]!.some((c) => c.cells > 0);
    if (more && canWrite(ci)) pending.add(ci);
    else if (more) blocked.add(ci);
  }
  return { moves, written, blocked: [...blocked] };
}
