// IMUX (lib/transport/imux.ts): the connection manager's target, the definition's flags and
// launch arguments, and loopback networks: connections follow circuits within the caps,
// circuits spread over them, bytes arrive exact, idle extras close, plain peers share a link.
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { connectionsTo, startNet } from "./_net.ts";
import { serve } from "../lib/serve/server.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { IMUX_DEFAULT_CAPS, imuxDefinition, imuxTarget } from "../lib/transport/imux.ts";
import { ARMS, armSpec } from "../lib/experiment/arms.ts";
import { TRANSPORT_NAMES } from "../lib/transport/registry.ts";
import {
  advertisedTransports,
  launchArgs,
  transportOptionsFromFlags,
} from "../lib/transport/registry.ts";

const caps = { perPeer: 8, total: 100 };

Deno.test("imuxTarget gives a pair its circuits' share of the budget, bounded as the fork bounds it", () => {
  // Half of all circuits → half the budget, but never more than the pair's circuits and a
  // spare.
  assertEquals(imuxTarget({ pairCircuits: 4, allCircuits: 8, have: 4, openAll: 4, caps }), 5);
  assertEquals(
    imuxTarget({
      pairCircuits: 4,
      allCircuits: 4,
      have: 8,
      openAll: 8,
      caps: { perPeer: 99, total: 100 },
    }),
    5,
  );
  assertEquals(
    imuxTarget({
      pairCircuits: 40,
      allCircuits: 80,
      have: 8,
      openAll: 8,
      caps: { perPeer: 99, total: 20 },
    }),
    10,
  );
  // At most doubling per pass.
  assertEquals(imuxTarget({ pairCircuits: 50, allCircuits: 50, have: 2, openAll: 2, caps }), 4);
  // The per-peer cap.
  assertEquals(imuxTarget({ pairCircuits: 50, allCircuits: 50, have: 8, openAll: 8, caps }), 8);
  // What the budget has left.
  assertEquals(
    imuxTarget({ pairCircuits: 50, allCircuits: 50, have: 2, openAll: 99, caps }),
    3,
  );
  assertEquals(
    imuxTarget({ pairCircuits: 50, allCircuits: 50, have: 2, openAll: 150, caps }),
    2,
  );
  // At least the one shared link; no circuits → one.
  assertEquals(imuxTarget({ pairCircuits: 1, allCircuits: 1000, have: 1, openAll: 1, caps }), 1);
  assertEquals(imuxTarget({ pairCircuits: 0, allCircuits: 0, have: 6, openAll: 6, caps }), 1);
});

Deno.test("imuxDefinition advertises imux, takes its caps as flags and passes them on launch", () => {
  assertEquals(advertisedTransports("imux"), ["tor", "imux"]);
  assertEquals(transportOptionsFromFlags("imux", {}, "relay"), { transport: "imux", imux: {} });
  assertEquals(
    transportOptionsFromFlags("imux", { imuxMaxPerPeer: 3 }, "client"),
    { transport: "imux", imux: { caps: { perPeer: 3, total: IMUX_DEFAULT_CAPS.total } } },
  );
  assertThrows(
    () => transportOptionsFromFlags("imux", { imuxMaxPerPeer: 0, imuxMaxTotal: 5 }, "relay"),
    TypeError,
    "at least 1",
  );
  assertEquals(launchArgs("imux", { role: "relay", caps: { perPeer: 4, total: 9 } }), [
    "--transport",
    "imux",
    "--imux-max-per-peer",
    "4",
    "--imux-max-total",
    "9",
  ]);
  assertEquals(launchArgs("imux", { role: "client", insecureLab: true }), ["--transport", "imux"]);
  assertEquals(imuxDefinition.flags.every((f) => f.flags.startsWith("--imux-")), true);
});

Deno.test("the experiment's arms include imux, with either scheduler, from the registry", () => {
  assert(ARMS.includes("imux") && ARMS.includes("imux-kist"), ARMS.join(","));
  assertEquals(armSpec("imux"), { kind: "ours", transport: "imux", scheduler: "vanilla" });
  assertEquals(armSpec("imux-kist"), { kind: "ours", transport: "imux", scheduler: "kist" });
  // The order and names of the arms before IMUX are unchanged.
  assertEquals(ARMS.slice(0, 4), ["tor", "tor-kist", "pctcp", "pctcp-kist"]);
  for (const a of ["mixed", "ctor", "ctor-nocc"]) {
    assert((ARMS as readonly string[]).includes(a), a);
  }
  // Every transport of the registry is an arm, with either scheduler.
  for (const t of TRANSPORT_NAMES) {
    assert(
      (ARMS as readonly string[]).includes(t) && (ARMS as readonly string[]).includes(`${t}-kist`),
      t,
    );
  }
});

/** Polls `f` until it is true (bounded). */
async function until(f: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return await f();
}

Deno.test("ImuxTransport spreads circuits over several links to an imux peer, moves bytes exact, closes idle extras, and shares one link with a plain peer", async () => {
  // r1, r2 and the client on imux; r3 on tor, so r2 reaches it over the one shared link.
  const net = await startNet(3, ["imux", "imux", "tor"], "imux", ["r1", "r2", "r3"], {
    imux: { caps: { perPeer: 4, total: 64 }, idleMs: 200, intervalMs: 50 },
  });
  const s = await serve();
  try {
    const circs = [];
    for (const u of ["a", "b", "c", "d", "e", "f"]) {
      const c = await net.client.buildCircuit(u);
      c.dirtySince = performance.now(); // in use: SOCKS streams below build their own
      circs.push(c);
    }
    // Six circuits, a cap of 4: the client's links to r1 and r1's to r2 grow to the cap.
    assert(
      await until(async () => (await connectionsTo(net.relays[1]!.port)) === 4),
      `r1→r2 connections: ${await connectionsTo(net.relays[1]!.port)}`,
    );
    assert(await until(async () => (await connectionsTo(net.relays[0]!.port)) === 4));
    const toR2 = net.relays[0]!.stats().peers.find((p) => p.nickname === "r2")!;
    assertEquals(toR2.links, 4);
    assertEquals(toR2.circuitConnections, 0);
    // r3 does not speak imux: one shared link from r2.
    assertEquals(await connectionsTo(net.relays[2]!.port), 1);
    // Bytes through isolated streams (new circuits, placed on the quietest links) arrive exact.
    const rs = await Promise.all(["x", "y", "z"].map((user) =>
      timedFetch(`${s.url}/bytes/2MiB`, {
        socksHost: "127.0.0.1",
        socksPort: net.client.socksPort,
        socksUser: user,
        timeoutMs: 30_000,
      })
    ));
    for (const r of rs) {
      assertEquals(r.outcome, "ok", r.error ?? "");
      assertEquals(r.bytes, 2 * 1024 * 1024);
      assertEquals(r.sha256Ok, true);
    }
    // The client's circuits were spread over its links to r1, none is a link's own.
    const used = new Set(circs.map((c) => c.chan));
    assertEquals(used.size, 4, `six circuits on ${used.size} links`);
    assert(circs.every((c) => !c.chan.meta.own && c.chan.meta.purpose === "shared"));
    // The circuits end: the extras drain and close, the shared link stays.
    // (The fetches' circuits, by their isolation key: SOCKS user and password "x".)
    for (const u of ["x", "y", "z"]) circs.push(await net.client.circuitFor(`${u}\0x`));
    for (const c of circs) net.client.closeCircuit(c, 3);
    assert(
      await until(async () => (await connectionsTo(net.relays[1]!.port)) === 1),
      `r1→r2 connections after the circuits: ${await connectionsTo(net.relays[1]!.port)}`,
    );
    assert(await until(async () => (await connectionsTo(net.relays[0]!.port)) === 1));
  } finally {
    await s.stop();
    await net.stop();
  }
});
