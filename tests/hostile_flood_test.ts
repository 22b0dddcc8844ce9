// Floods against a live loopback network (issue 24 items 1, 2, 4, 5): each test prints the
// process's RSS (the relays run in it) before and during the flood, and an honest fetch's
// time through the attacked relay against the same fetch without the attack.
import { assert, assertEquals } from "./_assert.ts";
import { startNet } from "./_net.ts";
import { type RawCircuit, RawLink, rssMiB, sendCreate2Cells } from "./_hostile.ts";
import { encodeBegin, RelayCommand } from "../lib/cell/mod.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";

type Net = Awaited<ReturnType<typeof startNet>>;

/** Median time (ms) of three honest 256 KiB fetches through the network's client. */
async function honestMs(net: Net, url: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = await timedFetch(`${url}/bytes/256KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: "honest",
      timeoutMs: 60_000,
    });
    assertEquals(r.outcome, "ok", r.error ?? "");
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1]!;
}

/** Prints and loosely bounds the honest fetch under attack (a busy CI box: no tight assert). */
function reportHonest(item: string, base: number, attacked: number): void {
  console.log(
    `${item}: honest 256 KiB fetch ${base.toFixed(0)} ms without the attack, ` +
      `${attacked.toFixed(0)} ms under it (${(attacked / base).toFixed(2)}×)`,
  );
  assert(
    attacked < base * 10 + 3000,
    `honest fetch ${attacked} ms under attack, ${base} ms before`,
  );
}

Deno.test("Relay closes a circuit whose client overruns a stream window towards a server that never reads (item 1)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"], {
    maxCircuitQueue: 1e9, // the queue limit out of the way: the stream window alone
    maxMemInQueues: 2 ** 40,
  });
  const s = await serve();
  // A server that accepts and never reads.
  const sink = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of sink) held.push(c);
  })();
  let raw: RawLink | undefined;
  try {
    const base = await honestMs(net, s.url);
    const [e1, e2, e3] = net.directory.relays;
    raw = await RawLink.open(e1!);
    const circ = await raw.create(e1!);
    await circ.extend(e2!);
    await circ.extend(e3!);
    await circ.relay(
      RelayCommand.BEGIN,
      1,
      encodeBegin({ host: "127.0.0.1", port: (sink.addr as Deno.NetAddr).port }),
    );
    await circ.until(() => circ.got(RelayCommand.CONNECTED, 1).length > 0, "CONNECTED");
    const before = rssMiB();
    // 40,000 DATA cells (≈ 20 MB) on one stream, no SENDME awaited: the exit may buffer at
    // most its deliver window (500 cells) beyond what the server's socket took.
    const data = new Uint8Array(498).fill(0x41);
    const flood = (async () => {
      for (let i = 0; i < 80 && circ.destroyed === undefined; i++) {
        await raw!.sendMany(
          Array.from({ length: 500 }, () => circ.cell(RelayCommand.DATA, 1, data)),
        );
      }
    })().catch(() => {});
    const attacked = await honestMs(net, s.url);
    await circ.until(() => circ.destroyed !== undefined, "the exit to close the circuit", 20_000);
    const during = rssMiB();
    await flood;
    // PROTOCOL from the exit, forwarded by the guard as DESTROYED (tor-spec §5.4).
    assert([1, 11].includes(circ.destroyed!), `closed with reason ${circ.destroyed}`);
    console.log(`item 1: RSS ${before} MiB before the stream flood, ${during} MiB during it`);
    reportHonest("item 1", base, attacked);
    assert(during - before < 200, `RSS grew ${during - before} MiB`);
  } finally {
    raw?.close();
    sink.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
    await s.stop();
    await net.stop();
  }
});

Deno.test("Relay closes a circuit whose queue towards a client that does not read passes 2500 cells (item 1, RELAY_CIRC_CELL_QUEUE_SIZE)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"], {
    maxMemInQueues: 2 ** 40, // the watchdog out of the way: the queue limit alone
  });
  let raw: RawLink | undefined;
  try {
    const e1 = net.directory.relays[0]!;
    raw = await RawLink.open(e1);
    const circ = await raw.create(e1);
    raw.pause();
    const before = rssMiB();
    // Each TRUNCATE is answered with a TRUNCATED, outside any window.
    for (let i = 0; i < 60 && net.relays[0]!.stats().circuits > 0; i++) {
      await raw.sendMany(
        Array.from({ length: 500 }, () => circ.cell(RelayCommand.TRUNCATE, 0, new Uint8Array(0))),
      );
    }
    const end = performance.now() + 20_000;
    while (net.relays[0]!.stats().circuits > 0 && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`item 1 (queue): RSS ${before} MiB before, ${rssMiB()} MiB after the flood`);
    assertEquals(net.relays[0]!.stats().circuits, 0, "the circuit outlived 2500 queued cells");
  } finally {
    raw?.close();
    await net.stop();
  }
});

Deno.test("Relay's memory watchdog closes the circuit with the oldest queued data first (item 1, tor-spec §8.1)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"], {
    maxCircuitQueue: 1e9, // the per-circuit limit out of the way: the watchdog alone
    maxMemInQueues: 2 * 2 ** 20,
  });
  let raw: RawLink | undefined;
  try {
    const e1 = net.directory.relays[0]!;
    raw = await RawLink.open(e1);
    const a = await raw.create(e1);
    const b = await raw.create(e1);
    raw.pause();
    const truncates = (c: typeof a, n: number) =>
      raw!.sendMany(
        Array.from({ length: n }, () => c.cell(RelayCommand.TRUNCATE, 0, new Uint8Array(0))),
      );
    // A first, enough to fill the socket buffers and queue megabytes; then B, a little.
    for (let i = 0; i < 60 && net.relays[0]!.stats().oomClosedCircuits === 0; i++) {
      await truncates(a, 500);
      await new Promise((r) => setTimeout(r, 5));
    }
    await truncates(b, 1000);
    const end = performance.now() + 20_000;
    while (net.relays[0]!.stats().oomClosedCircuits === 0 && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(net.relays[0]!.stats().oomClosedCircuits >= 1, "the watchdog closed nothing");
    raw.resume();
    await a.until(() => a.destroyed !== undefined, "DESTROY of the oldest circuit", 30_000);
    assertEquals(a.destroyed, 5, "RESOURCELIMIT");
    assertEquals(b.destroyed, undefined, "the younger circuit was closed too");
  } finally {
    raw?.close();
    await net.stop();
  }
});

Deno.test("Relay forgets an EXTEND2 that a TRUNCATE overtook: no zombie next-hop circuits or per-circuit connections (item 2)", async () => {
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  let raw: RawLink | undefined;
  try {
    const base = await honestMs(net, s.url);
    const [e1, e2] = net.directory.relays;
    const r2Before = net.relays[1]!.stats().circuits;
    const before = rssMiB();
    raw = await RawLink.open(e1!);
    const circs: RawCircuit[] = [];
    const attacks = (async () => {
      for (let k = 0; k < 30; k++) {
        const circ = await raw!.create(e1!);
        circs.push(circ);
        // Eight rounds (the RELAY_EARLY budget) of EXTEND2 then TRUNCATE, all in one write:
        // every extension is still opening its channel when the next TRUNCATE comes.
        await raw!.sendMany(
          Array.from({ length: 8 }, () => [
            circ.extendCell(e2!),
            circ.cell(RelayCommand.TRUNCATE, 0, new Uint8Array(0)),
          ]).flat(),
        );
      }
      // The client destroys its circuits once the extensions had time to open their channels.
      await new Promise((r) => setTimeout(r, 1000));
      for (const c of circs) await c.destroy();
    })();
    const attacked = await honestMs(net, s.url);
    await attacks;
    const during = rssMiB();
    // Everything the attack opened goes once its circuits are gone (10 s bounds a busy box).
    const end = performance.now() + 10_000;
    const r2Circuits = () => net.relays[1]!.stats().circuits - r2Before;
    const toR2 = () =>
      net.relays[0]!.stats().peers.find((p) => p.nickname === "r2")?.circuitConnections ?? 0;
    while ((r2Circuits() > 0 || toR2() > 2) && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = await honestMs(net, s.url);
    console.log(
      `item 2: RSS ${before} MiB before, ${during} MiB after 240 EXTEND2+TRUNCATE; ` +
        `r2 circuits left ${r2Circuits()}, r1→r2 per-circuit connections ${toR2()}; ` +
        `honest fetch after the attack ${after.toFixed(0)} ms`,
    );
    reportHonest("item 2 (attacker in the same process and thread)", base, attacked);
    reportHonest("item 2 (after)", base, after);
    assertEquals(r2Circuits(), 0, "zombie circuits left at the next hop");
    // One channel opening per circuit at a time: of each circuit's 8 EXTEND2 in one write,
    // those that came while the first still connected were answered TRUNCATED RESOURCELIMIT
    // (before: every one opened a per-circuit connection r1 → r2, 240 in all).
    const refusedExtends = circs.flatMap((c) =>
      c.relayCells
    ).filter(({ cell }) => cell.command === RelayCommand.TRUNCATED && cell.data[0] === 5).length;
    console.log(`item 2: ${refusedExtends} of 240 EXTEND2 answered TRUNCATED (RESOURCELIMIT)`);
    assert(refusedExtends >= 120, `${refusedExtends} EXTEND2 refused while one still connects`);
    assert(toR2() <= 2, `${toR2()} per-circuit connections r1→r2 left (honest: 1 + a spare)`);
  } finally {
    raw?.close();
    await s.stop();
    await net.stop();
  }
});

Deno.test("Relay holds at most DoSConnectionMaxConcurrentCount client links per address; honest traffic on an open link goes on (item 4)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  const links: RawLink[] = [];
  try {
    const base = await honestMs(net, s.url); // the honest client's link to r1 is open now
    const e1 = net.directory.relays[0]!;
    const before = rssMiB();
    let refused = 0;
    // 200 anonymous links from the same address, 20 at a time.
    for (let k = 0; k < 10; k++) {
      const got = await Promise.allSettled(Array.from({ length: 20 }, () => RawLink.open(e1)));
      for (const g of got) g.status === "fulfilled" ? links.push(g.value) : refused++;
    }
    // A link the relay refused after its handshake closes at once: count those still open.
    await new Promise((r) => setTimeout(r, 300));
    const alive = links.filter((l) => !l.closedByPeer).length;
    const attacked = await honestMs(net, s.url);
    const during = rssMiB();
    console.log(
      `item 4: RSS ${before} MiB before, ${during} MiB holding the links; ` +
        `${alive} of 200 attacker links open, ${refused} refused at accept`,
    );
    reportHonest("item 4", base, attacked);
    // 50 per address, the honest client's link among them.
    assert(alive <= 49, `${alive} anonymous links from one address held`);
    assert(alive >= 30, `only ${alive} links held: the limit is 50, not less`);
  } finally {
    for (const l of links) l.close();
    await s.stop();
    await net.stop();
  }
});

Deno.test("Relay refuses BEGIN past DoSStreamCreationBurst on one circuit (item 4)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const sink = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of sink) held.push(c);
  })();
  let raw: RawLink | undefined;
  try {
    const [e1, e2, e3] = net.directory.relays;
    raw = await RawLink.open(e1!);
    const circ = await raw.create(e1!);
    await circ.extend(e2!);
    await circ.extend(e3!);
    const begin = encodeBegin({ host: "127.0.0.1", port: (sink.addr as Deno.NetAddr).port });
    for (let k = 0; k < 4; k++) {
      await raw.sendMany(
        Array.from(
          { length: 250 },
          (_, i) => circ.cell(RelayCommand.BEGIN, 1 + k * 250 + i, begin),
        ),
      );
    }
    await circ.until(
      () => circ.got(RelayCommand.CONNECTED).length + circ.got(RelayCommand.END).length >= 1000,
      "an answer to every BEGIN",
    );
    const connected = circ.got(RelayCommand.CONNECTED).length;
    const limited = circ.got(RelayCommand.END).filter((c) => c.data[0] === 11).length;
    console.log(
      `item 4 (streams): 1000 BEGIN → ${connected} CONNECTED, ${limited} END RESOURCELIMIT`,
    );
    assert(connected <= 400, `${connected} exit streams opened on one circuit at once`);
    assert(limited >= 500, `${limited} refused`);
  } finally {
    raw?.close();
    sink.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
    await net.stop();
  }
});

Deno.test("Relay refuses CREATE2 past DoSCircuitCreationBurst from an address with 3 links; honest circuits go on (item 5)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  const links: RawLink[] = [];
  try {
    const base = await honestMs(net, s.url);
    const e1 = net.directory.relays[0]!;
    const before = rssMiB();
    for (let i = 0; i < 3; i++) links.push(await RawLink.open(e1));
    // 3,000 CREATE2 cells over three links, as fast as they go.
    const flood = Promise.all(links.map((l) => sendCreate2Cells(l, e1, 1000)));
    const attacked = await honestMs(net, s.url);
    await flood;
    const answered = () =>
      links.reduce(
        (n, l) => n + l.received.filter((c) => c.command === 11 || c.command === 4).length,
        0,
      );
    const end = performance.now() + 20_000;
    while (answered() < 3000 && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const created = links.reduce(
      (n, l) => n + l.received.filter((c) => c.command === 11).length,
      0,
    );
    const during = rssMiB();
    console.log(
      `item 5: RSS ${before} MiB before, ${during} MiB after 3000 CREATE2; ${created} created, ` +
        `${net.relays[0]!.stats().dosRefused.circuits} refused; relay circuits ${
          net.relays[0]!.stats().circuits
        }`,
    );
    reportHonest("item 5", base, attacked);
    assert(created <= 150, `${created} circuits created from one address in a burst`);
    assert(net.relays[0]!.stats().circuits <= 160);
  } finally {
    for (const l of links) l.close();
    await s.stop();
    await net.stop();
  }
});

Deno.test("Relay drops a duplicate CREATE2 and keeps the circuit, as C tor (item 12)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  let raw: RawLink | undefined;
  try {
    const e1 = net.directory.relays[0]!;
    raw = await RawLink.open(e1);
    const circ = await raw.create(e1);
    await sendCreate2Cells(raw, e1, 1, circ.circId);
    // A TRUNCATE gets a TRUNCATED: the circuit still works, and no DESTROY came.
    await circ.relay(RelayCommand.TRUNCATE, 0, new Uint8Array(0));
    await circ.until(() => circ.truncated(), "TRUNCATED");
    assertEquals(circ.destroyed, undefined, "a DESTROY answered the duplicate CREATE2");
    assertEquals(raw.received.filter((c) => c.command === 11).length, 1, "two CREATED2");
  } finally {
    raw?.close();
    await net.stop();
  }
});

Deno.test("Relay stops reading a link whose CREATE2 handshakes pile up and holds at most 1000 circuits per client link: a one-link flood is answered at the relay's pace and leaves room for honest traffic (item 5)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  let raw: RawLink | undefined;
  try {
    const base = await honestMs(net, s.url);
    const e1 = net.directory.relays[0]!;
    raw = await RawLink.open(e1); // one link: the per-address circuit bucket does not apply
    const before = rssMiB();
    const t0 = performance.now();
    const n = 3000;
    const flood = sendCreate2Cells(raw, e1, n);
    const attacked = await honestMs(net, s.url);
    await flood;
    const end = performance.now() + 60_000;
    while (raw.received.length < n && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const st = net.relays[0]!.stats();
    console.log(
      `item 5 (one link): ${n} CREATE2 answered in ${(performance.now() - t0).toFixed(0)} ms; ` +
        `${st.circuits} circuits, link paused ${st.onionQueue.linkPauses} times, ` +
        `${st.onionQueue.dropped} refused by the onion queue; RSS ${before} → ${rssMiB()} MiB`,
    );
    reportHonest("item 5 (one link)", base, attacked);
    assertEquals(raw.received.length, n, "every CREATE2 answered");
    // Before the back-pressure the link was read at line rate: never paused.
    assert(st.onionQueue.linkPauses > 0, "the flooding link was never paused");
    assert(st.onionQueue.waiting <= 64, `${st.onionQueue.waiting} handshakes waiting`);
    // One client link holds at most maxCircuitsPerClientLink (1000) circuits; the rest refused.
    assert(st.circuits <= 1000 + 5, `${st.circuits} circuits held after ${n} CREATE2 on one link`);
    assert(raw.received.filter((c) => c.command === 4).length >= n - 1000, "DESTROY past the cap");
  } finally {
    raw?.close();
    await s.stop();
    await net.stop();
  }
});
