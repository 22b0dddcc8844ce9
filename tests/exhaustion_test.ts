// The socket-exhaustion attack on PCTCP: one client opens many circuits through the same
// pctcp relay pair. The relay stays up, its per-circuit connections stay under the caps,
// the rest fall back to the shared link (counted), and honest circuits still move bytes.
import { assert, assertEquals } from "./_assert.ts";
import { connectionsTo, startNet } from "./_net.ts";
import { OnionClient } from "../lib/client/client.ts";
import { serve } from "../lib/serve/server.ts";
import { timedFetch } from "../lib/measure/fetch.ts";

Deno.test("1000 circuits at one pctcp relay: caps hold, fallbacks are counted, honest fetches work", async () => {
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "tor", ["r1", "r2", "r3"], {
    pctcp: { caps: { perPeer: 40, total: 60 } },
    fdBudget: 200,
  });
  const relays = net.relays;
  // The attacker reaches the guard over the shared link and asks for circuit after circuit.
  const attacker = net.client;
  const honest = new OnionClient({
    directory: net.directory,
    transport: "tor",
    preemptive: false,
    path: ["r1", "r2", "r3"],
  });
  await honest.start();
  const s = await serve();
  try {
    let built = 0;
    for (let batch = 0; batch < 20; batch++) {
      const res = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => attacker.buildCircuit(`a${batch}-${i}`)),
      );
      built += res.filter((r) => r.status === "fulfilled").length;
    }
    assertEquals(built, 1000);
    const st = relays[0]!.stats();
    const toR2 = st.peers.find((p) => p.nickname === "r2")!;
    assert(toR2.circuitConnections <= 40, `per-peer cap broken: ${toR2.circuitConnections}`);
    assert(toR2.fallbacks >= 1000 - 40, `fallbacks not counted: ${toR2.fallbacks}`);
    assert(st.sockets <= 200, `socket budget broken: ${st.sockets}`);
    assertEquals(st.circuits, 1000);
    const r = await timedFetch(`${s.url}/bytes/1MiB`, {
      socksHost: "127.0.0.1",
      socksPort: honest.socksPort,
      timeoutMs: 20_000,
    });
    assertEquals(r.outcome, "ok", r.error ?? "");
    assertEquals(r.sha256Ok, true);
  } finally {
    await s.stop();
    await honest.stop();
    await net.stop();
  }
});

// The same flood under each transport, side by side: connections from the guard to the middle
// relay (ss, the sockets themselves) at 1000 circuits. tor keeps one link, PCTCP one per
// circuit up to its cap, IMUX as many as the pair's share of its budget up to its cap
// (Geddes, Jansen & Hopper, WPES 2014: IMUX resists the socket exhaustion PCTCP suffers).
Deno.test("1000 circuits at one relay pair: connections per peer are 1 under tor, at most the cap under pctcp and imux", async () => {
  const perPeer = 40;
  const counts: Record<string, number> = {};
  for (const transport of ["tor", "pctcp", "imux"] as const) {
    const net = await startNet(3, [transport, transport, transport], "tor", ["r1", "r2", "r3"], {
      pctcp: { caps: { perPeer, total: 60 } },
      imux: { caps: { perPeer, total: 200 } },
      fdBudget: 200,
    });
    try {
      let built = 0;
      for (let batch = 0; batch < 20; batch++) {
        const res = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => net.client.buildCircuit(`a${batch}-${i}`)),
        );
        built += res.filter((r) => r.status === "fulfilled").length;
      }
      assertEquals(built, 1000, transport);
      const st = net.relays[0]!.stats();
      assertEquals(st.circuits, 1000, transport);
      assert(st.sockets <= 200, `${transport}: socket budget broken: ${st.sockets}`);
      counts[transport] = await connectionsTo(net.relays[1]!.port);
      const toR2 = st.peers.find((p) => p.nickname === "r2")!;
      console.log(
        `${transport}: ${
          counts[transport]
        } connections r1→r2 (links ${toR2.links}, per-circuit ${toR2.circuitConnections}, fallbacks ${toR2.fallbacks}), ${st.sockets} sockets at r1`,
      );
    } finally {
      await net.stop();
    }
  }
  assertEquals(counts.tor, 1);
  // PCTCP: its per-circuit connections up to the cap, and the shared link for the rest.
  assert(counts.pctcp! > 1 && counts.pctcp! <= perPeer + 1, `pctcp: ${counts.pctcp}`);
  // IMUX: several links, never more than its cap (the shared link among them).
  assert(counts.imux! > 1 && counts.imux! <= perPeer, `imux: ${counts.imux}`);
});
