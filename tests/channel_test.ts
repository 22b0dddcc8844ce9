import { assert, assertEquals } from "./_assert.ts";
import {
  Channel,
  type ChannelLink,
  closesWith,
  EwmaCounts,
  sharedMeta,
  TokenBucket,
} from "../lib/channel/mod.ts";
import { CELL_LEN, CellCommand, encodeCell } from "../lib/cell/cell.ts";
import { CircuitPackageWindow, DeliverWindow, PackageWindow } from "../lib/circuit/mod.ts";

Deno.test("EwmaCounts halves a count per half-life and picks the quietest circuit", () => {
  let t = 0;
  const e = new EwmaCounts(30_000, () => t);
  e.add(1, 100);
  e.add(2, 10);
  assertEquals(e.pick([1, 2]), 2);
  t = 30_000;
  assert(Math.abs(e.get(1) - 50) < 1e-9);
  e.add(2, 100);
  assertEquals(e.pick([1, 2]), 1);
  assertEquals(e.pick([3, 1]), 3);
});

Deno.test("TokenBucket limits the rate and serves waiters lowest priority first", async () => {
  const b = new TokenBucket(2000, 100);
  assert(b.tryTake(100));
  assert(!b.tryTake(100));
  const order: number[] = [];
  const t0 = performance.now();
  await Promise.all([5, 1, 3].map((p) => b.take(100, p).then(() => order.push(p))));
  const ms = performance.now() - t0;
  assertEquals(order, [1, 3, 5]);
  assert(ms >= 120, `3 × 100 B at 2000 B/s took only ${ms.toFixed(0)} ms`);
  b.close();
});

Deno.test("PackageWindow and DeliverWindow follow tor-spec's SENDME arithmetic", async () => {
  const p = new PackageWindow(1000, 100);
  for (let i = 0; i < 1000; i++) assert(p.take());
  assert(!p.take());
  let opened = false;
  const w = p.wait().then(() => opened = true);
  assert(p.sendme());
  await w;
  assert(opened);
  assertEquals(p.value, 100);
  const q = new PackageWindow(1000, 100);
  assert(!q.sendme(), "a SENDME past the start value is a violation");
  const d = new DeliverWindow(1000, 100);
  const verdicts = Array.from({ length: 100 }, () => d.received());
  assertEquals(verdicts.filter((v) => v === "sendme").length, 1);
  assertEquals(verdicts[99], "sendme");
  const tight = new DeliverWindow(1, 1);
  assertEquals(tight.received(), "sendme", "a window of 1 with increment 1 asks for a SENDME");
  assertEquals(new DeliverWindow(0, 1).received(), "violation");
});

Deno.test("CircuitPackageWindow checks each SENDME v1 digest against the one kept", () => {
  const w = new CircuitPackageWindow();
  for (let i = 0; i < 200; i++) {
    w.take();
    w.packaged(() => new Uint8Array(20).fill(i));
  }
  assertEquals(w.circuitSendme(new Uint8Array(20).fill(99)), "ok");
  assertEquals(w.circuitSendme(new Uint8Array(20).fill(7)), "digest");
  const full = new CircuitPackageWindow();
  assertEquals(full.circuitSendme(undefined), "version"); // v0 / empty: proposal 289
  assertEquals(full.circuitSendme(new Uint8Array(20)), "unexpected");
});

/**
 * A link whose writes complete only when the test says so: each write is recorded as the list
 * of cells it carried ("circId:tag", tag = the payload's first byte), so a test sees batches
 * and their order. Reads never return (the channel's read loop is not started).
 */
class FakeLink {
  writes: string[][] = [];
  closed = false;
  closes = 0;
  #gates: (() => void)[] = [];

  write(p: Uint8Array): Promise<void> {
    assertEquals(p.length % CELL_LEN, 0, "a write carries whole cells");
    const cells: string[] = [];
    for (let off = 0; off < p.length; off += CELL_LEN) {
      const circId = new DataView(p.buffer, p.byteOffset + off).getUint32(0);
      cells.push(`${circId}:${p[off + 5]}`);
    }
    this.writes.push(cells);
    return new Promise((resolve) => this.#gates.push(resolve));
  }
  writev(parts: Uint8Array[]): Promise<void> {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) all.set(p, off), off += p.length;
    return this.write(all);
  }
  read(): Promise<Uint8Array | null> {
    return new Promise(() => {});
  }
  tryRead(): undefined {
    return undefined;
  }
  fill(): Promise<boolean> {
    return new Promise(() => {});
  }
  close(): void {
    this.closed = true;
    this.closes++;
  }
  /** Lets the pending write complete and waits until the channel has reacted. */
  async release(): Promise<void> {
    this.#gates.shift()?.();
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  }
  /** Releases writes until none is pending. */
  async drain(): Promise<void> {
    while (this.#gates.length) await this.release();
  }
}

function channelOn(link: FakeLink, ewmaHalflifeMs = 30_000) {
  const closed: (Error | undefined)[] = [];
  const ch = new Channel(link as unknown as ChannelLink, {
    initiator: true,
    onCell() {},
    onClose: (_c, e) => closed.push(e),
    ewmaHalflifeMs,
  });
  return { ch, closed };
}

function payload(tag: number): Uint8Array {
  return new Uint8Array(509).fill(tag);
}

Deno.test("Channel writes a control cell queued behind circuit cells before them", async () => {
  const link = new FakeLink();
  const { ch } = channelOn(link);
  ch.send(7, CellCommand.RELAY, payload(1)); // written at once; the write stays pending
  ch.send(7, CellCommand.RELAY, payload(2));
  ch.send(9, CellCommand.RELAY, payload(3));
  ch.sendControl({ circId: 5, command: CellCommand.DESTROY, payload: payload(4) });
  assertEquals(link.writes, [["7:1"]]);
  await link.drain();
  assertEquals(link.writes[1]?.[0], "5:4", `second write was ${link.writes[1]}`);
  assertEquals(link.writes.flat().sort(), ["5:4", "7:1", "7:2", "9:3"]);
  ch.close();
});

Deno.test("Channel lets a quiet circuit's cell overtake a loud circuit's backlog (EWMA); round-robin does not", async () => {
  async function firstOfQuiet(ewmaHalflifeMs: number): Promise<number> {
    const link = new FakeLink();
    const { ch } = channelOn(link, ewmaHalflifeMs);
    const loud = 0x80000001, quiet = 0x80000002;
    for (let i = 0; i < 300; i++) ch.send(loud, CellCommand.RELAY, payload(1));
    await link.release(); // the first cell
    await link.release(); // one batch: the loud circuit now has a high EWMA count
    ch.send(quiet, CellCommand.RELAY, payload(2));
    await link.release();
    const next = link.writes[link.writes.length - 1]!;
    ch.close();
    return next.indexOf(`${quiet}:2`);
  }
  assertEquals(await firstOfQuiet(30_000), 0, "with EWMA the quiet cell goes first");
  assert((await firstOfQuiet(0)) > 0, "without EWMA the loud circuit is served first");
});

Deno.test("Channel batches queued cells into writes of at most 64 cells", async () => {
  const link = new FakeLink();
  const { ch } = channelOn(link);
  for (let i = 0; i < 200; i++) ch.send(3, CellCommand.RELAY, payload(i & 0xff));
  await link.drain();
  assertEquals(link.writes.map((w) => w.length), [1, 64, 64, 64, 7]);
  assertEquals(link.writes.flat().map((c) => Number(c.split(":")[1])), [
    ...Array.from({ length: 200 }, (_, i) => i & 0xff),
  ], "one circuit's cells keep their order");
  assertEquals(ch.stats.cellsSent, 200);
  ch.close();
});

Deno.test("Channel.closeAfterFlush writes everything queued, then closes the link once", async () => {
  const link = new FakeLink();
  const { ch, closed } = channelOn(link);
  for (let i = 0; i < 100; i++) ch.send(11, CellCommand.RELAY, payload(i));
  ch.sendControl({ circId: 11, command: CellCommand.DESTROY, payload: payload(0) });
  ch.closeAfterFlush();
  assert(!link.closed && !ch.closed, "closed before the queue was written");
  await link.drain();
  assertEquals(link.writes.flat().length, 101);
  assert(link.closed && ch.closed, "not closed after the flush");
  assertEquals(link.closes, 1);
  assertEquals(closed, [undefined]);
  ch.send(11, CellCommand.RELAY, payload(1));
  assertEquals(link.writes.flat().length, 101, "a closed channel writes nothing");
});

Deno.test("TokenBucket serves 60 waiters in priority order, ties in arrival order", async () => {
  const bucket = new TokenBucket(1_000_000, 1000);
  assert(bucket.tryTake(1000));
  let s = 7;
  const rand = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) % 5;
  const want: [number, number][] = [];
  const got: [number, number][] = [];
  const waits: Promise<void>[] = [];
  for (let i = 0; i < 60; i++) {
    const p = rand();
    want.push([p, i]);
    waits.push(bucket.take(1000, p).then(() => void got.push([p, i])));
  }
  await Promise.all(waits);
  want.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  assertEquals(got, want);
});

Deno.test("Channel.whenQueueAtMost resolves when the circuit's queue is written down to the mark, not before", async () => {
  const link = new FakeLink();
  const { ch } = channelOn(link);
  for (let i = 0; i < 200; i++) ch.send(3, CellCommand.RELAY, payload(1));
  let resumed = false;
  const wait = ch.whenQueueAtMost(3, 64).then(() => resumed = true);
  // The first cell went alone; each release lets the next batch of 64 leave the queue.
  await link.release(); // 135 left
  assert(!resumed, `resumed with ${ch.queuedFor(3)} cells queued`);
  await link.release(); // 71 left
  assert(!resumed, `resumed with ${ch.queuedFor(3)} cells queued`);
  await link.release(); // 7 left
  await wait;
  assert(ch.queuedFor(3) <= 64);
  const onDrop = ch.whenQueueAtMost(4, 0); // nothing queued: at once
  await onDrop;
  for (let i = 0; i < 10; i++) ch.send(5, CellCommand.RELAY, payload(1));
  const closed = ch.whenQueueAtMost(5, 0);
  ch.close();
  await closed; // a closed channel releases its waiters
  await link.drain();
});

Deno.test("EwmaCounts keeps active circuits in a heap: the top is the quietest, re-placed as counts grow", () => {
  let t = 0;
  const e = new EwmaCounts(1000, () => t);
  for (const id of [1, 2, 3, 4, 5]) e.activate(id);
  assertEquals(e.top, 1, "ties go to the circuit active longest");
  const served: number[] = [];
  for (let i = 0; i < 10; i++) {
    const id = e.top!;
    served.push(id);
    e.add(id, id); // louder circuits charge more per cell
  }
  assertEquals(served, [1, 2, 3, 4, 5, 1, 1, 2, 1, 3]);
  e.deactivate(1);
  assertEquals(e.top, 2);
  t = 50_000; // 50 half-lives later: rescaled, order kept
  e.add(2, 1);
  assertEquals(e.top, 4, "4 (count 4) and 3 (count 6) decayed below 2's new cell");
  assert(Math.abs(e.get(2) - 1) < 1e-6, `count after decay ${e.get(2)}`);
  assertEquals(e.active, 4);
});

/** An in-memory link that hands out given pieces, then end of stream; writes are dropped. */
class PieceLink implements ChannelLink {
  #pieces: Uint8Array[];
  #filled = false;
  closed = false;
  outbuf = 0;
  constructor(pieces: Uint8Array[]) {
    this.#pieces = pieces;
  }
  tryRead(): Uint8Array | null | undefined {
    // The first read must wait for fill(), as a socket would.
    if (!this.#filled) return undefined;
    return this.#pieces.shift() ?? null;
  }
  fill(): Promise<boolean> {
    this.#filled = true;
    return Promise.resolve(true);
  }
  writev(_parts: Uint8Array[]): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

Deno.test("Channel reads cells from link pieces that end mid-cell and mid-header", async () => {
  const cells = [1, 2, 3].map((i) =>
    encodeCell({ circId: 0x80000000 + i, command: CellCommand.RELAY, payload: payload(i) })
  );
  const stream = new Uint8Array(cells.length * CELL_LEN);
  cells.forEach((c, i) => stream.set(c, i * CELL_LEN));
  // Cuts: inside the first header (3), mid-payload, 1 byte before a cell's end, the rest.
  const cuts = [0, 3, 300, 2 * CELL_LEN - 1, 2 * CELL_LEN + 2, stream.length];
  const pieces = cuts.slice(1).map((end, i) => stream.slice(cuts[i]!, end));
  const got: [number, number][] = [];
  const link = new PieceLink(pieces);
  const ch = new Channel(link, {
    initiator: true,
    onCell: (cell) => got.push([cell.circId, cell.payload[508]!]),
  });
  await ch.run();
  assertEquals(got, [[0x80000001, 1], [0x80000002, 2], [0x80000003, 3]]);
  assert(link.closed, "the channel closes its link at end of stream");
});

Deno.test("Channel.circuitEnded closes an own channel with its bound circuit only", () => {
  const own = {
    ...sharedMeta(true),
    purpose: "circuit" as const,
    boundCircId: 0x80000007,
    own: true,
  };
  assert(closesWith(own, 0x80000007));
  assert(!closesWith(own, 0x80000008));
  assert(!closesWith(sharedMeta(true), 0));
  const link = new PieceLink([]);
  const ch = new Channel(link, { initiator: true, onCell() {}, meta: own });
  ch.circuitEnded(0x80000008);
  assert(!ch.closed, "another circuit's end left the own channel open");
  ch.circuitEnded(0x80000007);
  assert(ch.closed && link.closed, "its own circuit's end closed it");
  const shared = new Channel(new PieceLink([]), { initiator: true, onCell() {} });
  shared.circuitEnded(0);
  assert(!shared.closed);
  shared.close();
});
