// The pieces that keep a flood from taking a relay's CPU (issue 24 item 5): an O(1) FIFO for
// the channel's control cells and output buffer, and warnings limited per shape.
import { assert, assertEquals } from "./_assert.ts";
import { ChunkFifo } from "../lib/channel/fifo.ts";
import { type Logger, rateLimitWarnings } from "../lib/util/log.ts";

Deno.test("ChunkFifo keeps order across its compaction, with pushes while it is taken from", () => {
  const q = new ChunkFifo();
  const n = 200_000;
  for (let i = 0; i < n; i++) q.push(Uint8Array.of(i & 0xff, (i >> 8) & 0xff, i >> 16));
  assertEquals(q.length, n);
  for (let i = 0; i < n; i++) {
    const c = q.shift()!;
    assertEquals(c[0]! | (c[1]! << 8) | (c[2]! << 16), i);
    if (i === n / 2) q.push(Uint8Array.of(1, 2, 3)); // pushing while taking
  }
  assertEquals(Array.from(q.shift()!), [1, 2, 3]);
  assertEquals(q.length, 0);
  assertEquals(q.shift(), undefined);
});

Deno.test("rateLimitWarnings lets a burst of one shape through per window, then says how many it suppressed", () => {
  let now = 0;
  const lines: string[] = [];
  const base: Logger = {
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
  const log = rateLimitWarnings(base, { burst: 2, windowMs: 1000, now: () => now });
  for (let i = 0; i < 100; i++) log.warn(`CREATE2 ${i} on link ${i % 7} refused: onion queue full`);
  log.warn("extend to relay2 failed: refused"); // another shape
  for (let i = 0; i < 10; i++) log.info(`info ${i}`); // info is never limited
  assertEquals(lines.filter((l) => l.startsWith("warn CREATE2")).length, 2);
  assert(lines.includes("warn extend to relay2 failed: refused"));
  assertEquals(lines.filter((l) => l.startsWith("info")).length, 10);
  now = 1500;
  log.warn("CREATE2 7 on link 3 refused: onion queue full");
  assertEquals(
    lines.at(-1),
    "warn CREATE2 7 on link 3 refused: onion queue full [98 similar message(s) suppressed in the last 1 s]",
  );
});
