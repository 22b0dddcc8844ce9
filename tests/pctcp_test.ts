import { assert, assertEquals } from "./_assert.ts";
import { connectionsTo, startNet } from "./_net.ts";
import { serve } from "../lib/serve/server.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import type { Transport } from "../lib/directory/mod.ts";

for (const [transport, want] of [["tor", 1], ["pctcp", 4]] as const) {
  Deno.test(`4 circuits through one relay pair use ${want} TCP connection(s) under ${transport} (ss)`, async () => {
    const t = transport as Transport;
    // Connections are counted exactly: no link opened ahead of the next circuit.
    const net = await startNet(3, [t, t, t], t, ["r1", "r2", "r3"], {
      pctcp: { preopen: false },
    });
    try {
      const circs = await Promise.all(["a", "b", "c", "d"].map((u) => net.client.buildCircuit(u)));
      assertEquals(circs.length, 4);
      assertEquals(await connectionsTo(net.relays[1]!.port), want);
      const stats = net.relays[0]!.stats().peers.find((p) => p.nickname === "r2")!;
      assertEquals(transport === "pctcp" ? stats.circuitConnections : stats.links, want);
      // Destroying the circuits closes pctcp's per-circuit connections.
      for (const c of circs) net.client.closeCircuit(c, 3);
      if (transport === "pctcp") {
        for (let i = 0; i < 100 && (await connectionsTo(net.relays[1]!.port)) > 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assertEquals(await connectionsTo(net.relays[1]!.port), 0);
      }
    } finally {
      await net.stop();
    }
  });
}

for (
  const transports of [["tor", "pctcp", "tor"], ["pctcp", "tor", "pctcp"], [
    "pctcp",
    "pctcp",
    "tor",
  ]] as Transport[][]
) {
  Deno.test(`a mixed path ${transports.join("→")} moves 2 MiB byte-exact`, async () => {
    const net = await startNet(3, transports, "pctcp", ["r1", "r2", "r3"]);
    const s = await serve();
    try {
      const r = await timedFetch(`${s.url}/bytes/2MiB`, {
        socksHost: "127.0.0.1",
        socksPort: net.client.socksPort,
      });
      assertEquals(r.outcome, "ok", r.error ?? "");
      assertEquals(r.bytes, 2 * 1024 * 1024);
      assert(r.sha256Ok === true);
    } finally {
      await s.stop();
      await net.stop();
    }
  });
}

Deno.test("the client's pctcp caps hold: past them its circuits share the link to the guard (ss)", async () => {
  // Caps of 2 per peer for the client and the relays; no spare links, so counts are exact.
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "pctcp", ["r1", "r2", "r3"], {
    pctcp: { preopen: false, caps: { perPeer: 2, total: 10 } },
  });
  try {
    const circs = await Promise.all(
      ["a", "b", "c", "d", "e"].map((u) => net.client.buildCircuit(u)),
    );
    assertEquals(circs.length, 5);
    // Two per-circuit connections from the client to its guard, and the shared link.
    assertEquals(await connectionsTo(net.relays[0]!.port), 3);
  } finally {
    await net.stop();
  }
});
