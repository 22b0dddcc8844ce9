// The emulated network of a C tor network experiment, hop by hop (lib/experiment/ctor_networks.ts):
// the scenario's per-pair latencies mapped onto every arm's circuit, networks drawn from a
// seed, and the check that only the pair differs — run against the emulator's own resolver.
import { assert, assertEquals, skipUnless } from "./_assert.ts";
import {
  checkArmsAlike,
  networkHostRates,
  networkPairs,
  PAIR_HOSTS,
  sampleNetwork,
  scenarioNetwork,
  slotHost,
} from "../lib/experiment/ctor_networks.ts";
import { describeNetwork, resolveNetwork } from "../lib/emulate/config.ts";
import { loadScenario } from "../lib/experiment/scenario.ts";
import { pctcp } from "./_cli.ts";
import { haveTor } from "../lib/tor/testnet.ts";

const HOSTS = [
  "relay1",
  "relay2",
  "relay3",
  "relay4",
  "ours1",
  "ours2",
  "ours3",
  "ours4",
  "server",
  "client",
  "root",
];

function resolved(pairs: ReturnType<typeof networkPairs>, rates: Record<string, number>) {
  const hosts = Object.fromEntries(Object.entries(rates).map(([h, r]) => [h, { bandwidth: r }]));
  return describeNetwork(
    resolveNetwork({ latency: "30ms", loss: "0.5%", hosts, pairs }, HOSTS, { unshaped: ["root"] }),
  );
}

Deno.test("slotHost puts each arm's pair in the slots under test and C tor's relays around it", () => {
  assertEquals(
    ["client", "A", "B", "C", "server"].map((s) => slotHost(s as "A", "ours-pctcp", "middle-exit")),
    ["client", "relay1", "ours3", "ours4", "server"],
  );
  assertEquals(
    ["A", "B", "C"].map((s) => slotHost(s as "A", "ctor", "guard-middle")),
    ["relay2", "relay3", "relay4"],
  );
});

Deno.test("scenarioNetwork maps the scenario's per-pair latencies along its path onto every arm's circuit", async () => {
  const s = await loadScenario("quick-netns");
  const { draw, unapplied } = scenarioNetwork({
    pairs: s.emulation!.pairs!,
    path: s.path!,
    rateBps: 1572864,
    uniform: { latency: "30ms", loss: "0.5%" },
  });
  assertEquals(unapplied, []);
  assertEquals(draw.hops.map((h) => [h.from, h.to, h.latencyMs]), [
    ["client", "A", 20],
    ["A", "B", 35],
    ["B", "C", 40],
    ["C", "server", 20],
  ]);
  const pairs = networkPairs(draw, "middle-exit");
  const net = resolved(pairs, networkHostRates(draw));
  const lat = (a: string, b: string) =>
    net.paths.find((p) => p.from === a && p.to === b)?.latency_ms;
  // The middle–exit hop is 40 ms for C tor's pair and for both of ours; the guard hop 35 ms.
  assertEquals([lat("relay2", "relay3"), lat("ours1", "ours2"), lat("ours4", "ours3")], [
    40,
    40,
    40,
  ]);
  assertEquals([lat("relay1", "relay2"), lat("relay1", "ours1"), lat("ours3", "relay1")], [
    35,
    35,
    35,
  ]);
  assertEquals([lat("relay3", "server"), lat("ours2", "server"), lat("ours4", "server")], [
    20,
    20,
    20,
  ]);
  // Paths off the circuits keep the uniform 30 ms.
  assertEquals(lat("relay2", "ours2"), 30);
  assertEquals(checkArmsAlike(net, "middle-exit", 1572864), []);
  // At guard–middle the same scenario hops shift: client→pair 20 ms, pair→C tor exit 40 ms.
  const gm = networkPairs(draw, "guard-middle");
  const net2 = resolved(gm, networkHostRates(draw));
  const lat2 = (a: string, b: string) =>
    net2.paths.find((p) => p.from === a && p.to === b)?.latency_ms;
  assertEquals([lat2("client", "ours3"), lat2("ours3", "ours4"), lat2("ours4", "relay4")], [
    20,
    35,
    40,
  ]);
  assertEquals(checkArmsAlike(net2, "guard-middle", 1572864), []);
});

Deno.test("sampleNetwork draws each network from its own seed, within the bounds, the same on every call", () => {
  const dist = { latency: ["10ms", "40ms"], loss: ["0.1%", "0.5%"], rate: ["1MiB", "2MiB"] } as {
    latency: [string, string];
    loss: [string, string];
    rate: [string, string];
  };
  const o = { rateBps: 1e6, uniform: {} };
  const a = [1, 2, 3].map((k) => sampleNetwork(dist, k, 1, o));
  assertEquals(a.map((d) => d.network), [1, 2, 3]);
  assertEquals(JSON.stringify(sampleNetwork(dist, 2, 1, o)), JSON.stringify(a[1]));
  assert(new Set(a.map((d) => d.rateBps)).size === 3, "three networks drew the same rate");
  for (const d of a) {
    assert(d.rateBps >= 1048576 && d.rateBps <= 2097152, `rate ${d.rateBps}`);
    assertEquals(d.hops.length, 4);
    for (const h of d.hops) {
      assert(h.latencyMs! >= 10 && h.latencyMs! <= 40, `latency ${h.latencyMs}`);
      assert(h.loss! >= 0.001 && h.loss! <= 0.005, `loss ${h.loss}`);
    }
    assert(d.words.includes(`network ${d.network}`) && d.words.includes("MiB/s"), d.words);
  }
  assert(
    JSON.stringify(sampleNetwork(dist, 1, 2, o).hops) !== JSON.stringify(a[0]!.hops),
    "another scenario seed drew the same network",
  );
});

Deno.test("checkArmsAlike finds a rate-limited host outside the pairs and a hop that differs between arms", () => {
  const draw = sampleNetwork({ latency: [10, 40] }, 1, 7, { rateBps: 1572864, uniform: {} });
  const pairs = networkPairs(draw, "middle-exit");
  const rates = networkHostRates(draw);
  assertEquals(Object.keys(rates).sort(), Object.values(PAIR_HOSTS).flat().sort());
  assertEquals(checkArmsAlike(resolved(pairs, rates), "middle-exit", 1572864), []);
  const extra = checkArmsAlike(resolved(pairs, { ...rates, relay1: 1e6 }), "middle-exit", 1572864);
  assert(extra.some((p) => p.includes("relay1")), extra.join("; "));
  const slow = checkArmsAlike(resolved(pairs, { ...rates, ours3: 1e6 }), "middle-exit", 1572864);
  assert(slow.some((p) => p.includes("ours3")), slow.join("; "));
  const skewed = [...pairs, { a: "ours3", b: "ours4", latency: 99 }];
  const hop = checkArmsAlike(resolved(skewed, rates), "middle-exit", 1572864);
  assert(hop.some((p) => p.startsWith("hop B→C")), hop.join("; "));
});

Deno.test("loadScenario refuses a sample field that is not [lo, hi] of a known quantity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = JSON.parse(await Deno.readTextFile("measurements/scenarios/ctor-netns.json"));
    for (
      const [sample, msg] of [
        [{ latency: ["10ms"] }, "[lo, hi]"],
        [{ jitter: ["1ms", "2ms"] }, "no field jitter"],
        [{ loss: ["1%", "0.1%"] }, "lo > hi"],
        [{ rate: ["fast", "2MiB"] }, "not a rate"],
      ] as const
    ) {
      await Deno.writeTextFile(`${dir}/s.json`, JSON.stringify({ ...base, sample }));
      const e = await loadScenario(`${dir}/s.json`).then(() => undefined, (e) => e as Error);
      assert(e?.message.includes(msg), `${JSON.stringify(sample)}: ${e?.message}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("experiment interference --networks refuses what it cannot draw, before starting anything", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pctcp-networks-usage-" });
  try {
    const out = `${dir}/out`;
    const noNetns = await pctcp(
      "experiment",
      "interference",
      "--network",
      "ctor",
      "--networks",
      "3",
      "--out",
      out,
    );
    assertEquals(noNetns.code, 2, noNetns.stderr);
    assert(noNetns.stderr.includes("add --netns"), noNetns.stderr);
    const ours = await pctcp("experiment", "interference", "--networks", "3", "--out", out);
    assertEquals(ours.code, 2, ours.stderr);
    assert(ours.stderr.includes("--networks is for --network ctor"), ours.stderr);
    assertEquals([...Deno.readDirSync(dir)], [], "something was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "experiment interference --networks refuses a scenario without sample distributions",
  ignore: skipUnless(await haveTor(), "Debian's tor is not installed"),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "pctcp-networks-usage-" });
    try {
      const out = `${dir}/out`;
      const noSample = await pctcp(
        "experiment",
        "interference",
        "--network",
        "ctor",
        "--netns",
        "--scenario",
        "quick-netns",
        "--networks",
        "3",
        "--out",
        out,
      );
      assertEquals(noSample.code, 2, noSample.stderr);
      assert(noSample.stderr.includes(`"sample" field`), noSample.stderr);
      assertEquals([...Deno.readDirSync(dir)], [], "something was written");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
