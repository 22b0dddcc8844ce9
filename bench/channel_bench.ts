// The channel's scheduling path without a socket: `deno bench bench/channel_bench.ts`. Each
// iteration queues 640 cells spread over N circuits (EWMA on) and lets the channel write them
// in batches to a link that takes every write at once; reports time per iteration (÷ 640 for a
// cell). Compares the per-cell cost of Channel.send/#next/#flush and the EWMA pick as circuits
// grow (a scan per cell grows with N, a heap with log N).
import { setImmediate } from "node:timers";
import { Channel } from "../lib/channel/mod.ts";
import type { Link } from "../lib/transport/link.ts";

const payload = new Uint8Array(509).fill(7);

/** A link that accepts every write at once and keeps nothing. */
const sink = {
  outbuf: 0,
  write: (_p: Uint8Array) => Promise.resolve(),
  writev: (_p: Uint8Array[]) => Promise.resolve(),
  read: () => new Promise<null>(() => {}),
  tryRead: () => undefined,
  fill: () => new Promise<boolean>(() => {}),
  close() {},
} as unknown as Link;

for (const circuits of [1, 50, 500]) {
  const ch = new Channel(sink, { initiator: true, onCell() {}, ewmaHalflifeMs: 30_000 });
  Deno.bench(`channel: 640 cells over ${circuits} circuit(s), EWMA`, async () => {
    for (let i = 0; i < 640; i++) ch.send(0x80000000 + (i % circuits), 3, payload);
    while (ch.queued > 0) await new Promise((r) => setImmediate(r));
  });
}
