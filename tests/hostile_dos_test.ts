// The pure rules behind the floods (lib/relay/dos.ts, lib/relay/oom.ts), with an injected
// clock: buckets refill at their rate, a marked address stays marked for the defense period,
// relays' bookkeeping is per address, and the OOM order is oldest first.
import { assert, assertEquals } from "./_assert.ts";
import { DosGuard, OnionQueue, oomVictims } from "../lib/relay/mod.ts";

Deno.test("DosGuard marks an address with 3 links past the CREATE2 burst for the defense period, then forgets", () => {
  let now = 0;
  const g = new DosGuard({}, () => now);
  for (let i = 0; i < 3; i++) assert(g.clientLinkOpened("10.0.0.1", "shared"));
  let ok = 0;
  for (let i = 0; i < 200; i++) if (g.createAllowed("10.0.0.1")) ok++;
  assertEquals(ok, 90, "the burst (DoSCircuitCreationBurst 90)");
  now += 10_000; // refilled 30 tokens, but marked for an hour
  assertEquals(g.createAllowed("10.0.0.1"), false);
  assert(g.createAllowed("10.0.0.2"), "another address is not affected");
  now += 3600_000 + 1;
  assert(g.createAllowed("10.0.0.1"), "the mark expires after DoSCircuitCreationDefenseTimePeriod");
});

Deno.test("DosGuard does not mark an address with fewer than DoSCircuitCreationMinConnections links", () => {
  const now = 0;
  const g = new DosGuard({}, () => now);
  g.clientLinkOpened("10.0.0.1", "shared");
  let ok = 0;
  for (let i = 0; i < 200; i++) if (g.createAllowed("10.0.0.1")) ok++;
  assertEquals(ok, 200);
});

Deno.test("DosGuard counts concurrent links per address and frees them on close", () => {
  const g = new DosGuard({ maxConcurrentConnections: 2 });
  assert(g.connectionAllowed("a"));
  assert(g.clientLinkOpened("a", "shared"));
  assert(g.clientLinkOpened("a", "shared"));
  assertEquals(g.connectionAllowed("a"), false);
  assertEquals(g.clientLinkOpened("a", "shared"), false, "one that raced past accept");
  assert(g.clientLinkOpened("a", "circuit"), "per-circuit links have their own budget");
  g.clientLinkClosed("a", "shared");
  assert(g.connectionAllowed("a"));
});

Deno.test("DosGuard.streamBucket allows the burst then the rate (DoSStreamCreation 100/s, 300)", () => {
  let now = 0;
  const b = new DosGuard({}, () => now).streamBucket();
  let ok = 0;
  for (let i = 0; i < 400; i++) if (b.take()) ok++;
  assertEquals(ok, 300);
  now += 500;
  ok = 0;
  for (let i = 0; i < 100; i++) if (b.take()) ok++;
  assertEquals(ok, 50);
});

Deno.test("oomVictims closes the oldest queued data first, down to 90 % of the limit", () => {
  const c = (id: string, queuedBytes: number, oldestMs: number) => ({ id, queuedBytes, oldestMs });
  const all = [c("young", 400, 30), c("old", 500, 10), c("mid", 300, 20)];
  assertEquals(oomVictims(all, 2000), [], "under the limit");
  // 1200 queued, limit 1000: down to 900 → the oldest (500) suffices.
  assertEquals(oomVictims(all, 1000).map((v) => v.id), ["old"]);
  // Limit 700: down to 630 → the oldest, then the next oldest.
  assertEquals(oomVictims(all, 700).map((v) => v.id), ["old", "mid"]);
});

Deno.test("OnionQueue runs handshakes at once while idle, queues past a slice, drops those older than the wait cutoff, refuses past MaxOnionQueueDelay", async () => {
  let now = 0;
  const q = new OnionQueue({ now: () => now, sliceMs: 1, cpuShare: 1 });
  const ran: number[] = [], expired: number[] = [];
  const job = (i: number, cost = 0) => ({
    run: () => (ran.push(i), now += cost),
    expire: () => expired.push(i),
  });
  q.add(job(0, 2)); // idle: run at once, and this turn's slice is spent
  assertEquals(ran, [0]);
  q.add(job(1)); // queued
  now += 6000; // older than onion_queue_wait_cutoff (5 s) when its turn comes
  q.add(job(2));
  await new Promise((r) => setTimeout(r, 5));
  assertEquals([ran, expired], [[0, 2], [1]]);
  // Handshakes that cost 10 ms each: once ~175–185 wait (1750 ms of work at the measured
  // cost), new ones are refused.
  for (let i = 0; i < 30; i++) q.add(job(100 + i, 10));
  await new Promise((r) => setTimeout(r, 30));
  let refused = 0;
  for (let i = 0; i < 1000; i++) if (!q.add(job(1000 + i, 10))) refused++;
  assert(refused > 700, `${refused} refused`);
  assert(q.length <= 200, `${q.length} waiting`);
  q.close();
});
