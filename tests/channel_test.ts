import { assert, assertEquals } from "./_assert.ts";
import { EwmaCounts, TokenBucket } from "../lib/channel/mod.ts";
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
  tight.received();
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
  assertEquals(full.circuitSendme(undefined), "unexpected");
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
