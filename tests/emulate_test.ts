// The link emulator (lib/emulate). Unit tests of the pure parts with a fake clock run
// everywhere; accuracy tests on real TUN devices and namespaces and the end-to-end circuit
// tests need root (ignored with the reason otherwise).
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  graphPaths,
  LinkModel,
  parseDuration,
  parseLoss,
  parseNetworkGraph,
  parseRate,
  type ResolvedNetwork,
  resolveNetwork,
} from "../lib/emulate/mod.ts";
import { probeNetns } from "../lib/network/netns.ts";
import { startEmulatedHosts } from "../lib/network/emulated_hosts.ts";
import {
  isAlive,
  networkDown,
  networkStatus,
  networkUp,
  selfCommand,
} from "../lib/network/launcher.ts";
import { haveIpsecTools } from "../lib/network/ipsec_hosts.ts";
import { createHash } from "node:crypto";
import { pctcp } from "./_cli.ts";

const root = Deno.uid() === 0 && (await probeNetns()).netns;
const whyNotRoot = root ? "" : " (ignored: needs root and network namespaces)";
const ipsecReady = root && await haveIpsecTools();

function net(
  hosts: { up?: number; down?: number; queue?: number }[],
  path: (i: number, j: number) => Partial<ResolvedNetwork["paths"][0][0]>,
  seed = 1,
): ResolvedNetwork {
  return {
    hosts: hosts.map((h, i) => ({
      name: `h${i}`,
      upBps: h.up ?? Infinity,
      downBps: h.down ?? Infinity,
      upQueueBytes: h.queue ?? Infinity,
      downQueueBytes: h.queue ?? Infinity,
    })),
    paths: hosts.map((_, i) =>
      hosts.map((_, j) => ({ latencyMs: 0, jitterMs: 0, loss: 0, lossBurst: 1, ...path(i, j) }))
    ),
    seed,
  };
}

/** Runs the model on a fake clock: sends (time, src, dst, size), returns delivery times. */
function simulate(
  n: ResolvedNetwork,
  sends: [number, number, number, number][],
): { id: number; t: number; dst: number }[] {
  const m = new LinkModel<number>(n);
  const out: { id: number; t: number; dst: number }[] = [];
  const until = (t: number) => {
    for (let x = m.nextTime(); x !== undefined && x <= t; x = m.nextTime()) {
      m.poll(x, (dst, id) => out.push({ id, t: x!, dst }));
    }
  };
  sends.forEach(([t, s, d, size], id) => {
    until(t);
    m.send(t, s, d, size, id);
  });
  until(Infinity);
  return out;
}

Deno.test("parseRate, parseDuration and parseLoss read tc/Shadow units", () => {
  assertEquals(parseRate("20Mbit"), 2_500_000);
  assertEquals(parseRate("100 Mbit"), 12_500_000);
  assertEquals(parseRate("2MiB"), 2 * 1024 * 1024);
  assertEquals(parseRate("1536KiB"), 1536 * 1024);
  assertEquals(parseRate("8000"), 8000);
  assertEquals(parseRate("unlimited"), Infinity);
  assertEquals(parseDuration("40ms"), 40);
  assertEquals(parseDuration("10 ms"), 10);
  assertEquals(parseDuration("0.5s"), 500);
  assertEquals(parseDuration("250us"), 0.25);
  assertEquals(parseLoss("1%"), 0.01);
  assertEquals(parseLoss("0.005"), 0.005);
  assertThrows(() => parseRate("fast"), SyntaxError);
  assertThrows(() => parseDuration("-3ms"), SyntaxError);
  assertThrows(() => parseLoss("150%"), RangeError);
});

// A graph in the shape of Shadow's documentation example (network_graph_spec), with three
// nodes so that the shortest path differs from the direct edge.
const GML = `graph [
  directed 0
  node [ id 0 label "a" host_bandwidth_down "100 Mbit" host_bandwidth_up "20 Mbit" ]
  node [ id 1 host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 2 host_bandwidth_down "50 Mbit" host_bandwidth_up "50 Mbit" ]
  edge [ source 0 target 0 latency "1 ms" packet_loss 0.0 ]
  edge [ source 0 target 1 latency "10 ms" packet_loss 0.01 ]
  edge [ source 1 target 2 latency "10 ms" packet_loss 0.02 ]
  edge [ source 0 target 2 latency "30 ms" packet_loss 0.0 ]
  edge [ source 2 target 2 latency "2 ms" ]
]`;

Deno.test("parseNetworkGraph and graphPaths follow Shadow: latency-shortest paths, losses combine, self-loops for one node", () => {
  const g = parseNetworkGraph(GML);
  assertEquals(g.nodes.get(0)!.up, 2_500_000);
  assertEquals(g.nodes.get(0)!.down, 12_500_000);
  const p = graphPaths(g, [0, 2]);
  assertEquals(p.get("0>2")!.latencyMs, 20);
  assert(Math.abs(p.get("0>2")!.loss - (1 - 0.99 * 0.98)) < 1e-12);
  assertEquals(p.get("2>0")!.latencyMs, 20, "undirected");
  assertEquals(p.get("0>0")!.latencyMs, 1, "self-loop");
  // Without shortest paths, the direct edge.
  assertEquals(graphPaths(g, [0, 2], { useShortestPath: false }).get("0>2")!.latencyMs, 30);
  // Node 1 has no self-loop: two hosts on it cannot be routed (Shadow refuses too).
  assertThrows(() => graphPaths(g, [1]), RangeError, "no edge connecting node 1 to 1");
  // Directed: no way back.
  const d = parseNetworkGraph(GML.replace("directed 0", "directed 1"));
  assertThrows(() => graphPaths(d, [2, 0]), RangeError, "not connected");
  assertThrows(() => parseNetworkGraph("graph [ node [ id 0 ] edge [ source 0 target 0 ] ]"));
  assertThrows(
    () => parseNetworkGraph(`graph [ node [ id 0 ] edge [ source 0 target 0 latency "0 ms" ] ]`),
    RangeError,
  );
});

Deno.test("resolveNetwork layers flags, graph, hosts and pairs; the root namespace stays unshaped", () => {
  const g = parseNetworkGraph(GML);
  const r = resolveNetwork(
    {
      latency: "5ms",
      bandwidth: "10Mbit",
      hosts: { c: { node: 2 }, a: { node: 0, up: "1Mbit" } },
      pairs: [{ a: "a", b: "b", loss: "3%", oneWay: true }],
    },
    ["a", "b", "c", "root"],
    { graph: g, unshaped: ["root"] },
  );
  const [a, b, c, rt] = r.hosts;
  assertEquals(a!.upBps, 125_000, "host field beats the graph");
  assertEquals(a!.downBps, 12_500_000, "graph beats the uniform rate");
  assertEquals(b!.upBps, 2_500_000, "b (no node given) attaches to the first node in id order");
  assertEquals(c!.upBps, 6_250_000);
  assertEquals(rt!.upBps, Infinity);
  assertEquals(r.paths[0]![2]!.latencyMs, 20, "a→c from the graph");
  assertEquals(r.paths[0]![1]!.loss, 0.03, "pair a→b");
  assertEquals(r.paths[1]![0]!.loss, 0, "one way only");
  assertEquals(r.paths[0]![3]!.latencyMs, 0, "root unshaped");
  assertThrows(
    () => resolveNetwork({ hosts: { nobody: {} } }, ["a"]),
    RangeError,
    "not in the network",
  );
});

Deno.test("LinkModel delays by exactly the latency, serializes at the rate and drops at a full queue", () => {
  // Latency: 3 packets 1 ms apart arrive 40 ms later each.
  const lat = simulate(net([{}, {}], (i, j) => (i !== j ? { latencyMs: 40 } : {})), [
    [0, 0, 1, 100],
    [1, 0, 1, 100],
    [2, 1, 0, 100],
  ]);
  assertEquals(lat.map((x) => x.t), [40, 41, 42]);
  // Rate: 1000 B/s up, 1000-byte packets all at t=0 leave one per second; the queue holds 3.
  const rate = simulate(
    net([{ up: 1000, queue: 3000 }, {}], () => ({})),
    Array.from({ length: 5 }, () => [0, 0, 1, 1000] as [number, number, number, number]),
  );
  assertEquals(rate.map((x) => x.t), [1000, 2000, 3000], "two dropped by the full queue");
  // Download side too: two senders into one 2000 B/s receiver.
  const down = simulate(net([{}, {}, { down: 2000, queue: 1e9 }], () => ({})), [
    [0, 0, 2, 1000],
    [0, 1, 2, 1000],
    [0, 0, 2, 1000],
  ]);
  assertEquals(down.map((x) => x.t), [500, 1000, 1500]);
});

Deno.test("LinkModel jitter never reorders, and stays within latency ± jitter", () => {
  const path = net([{}, {}], () => ({ latencyMs: 20, jitterMs: 5 }));
  // Packets 0.1 ms apart (denser than the jitter): in order, never faster than latency − jitter.
  const dense = simulate(
    path,
    Array.from(
      { length: 2000 },
      (_, i) => [i * 0.1, 0, 1, 100] as [number, number, number, number],
    ),
  );
  assertEquals(dense.length, 2000);
  for (let i = 1; i < dense.length; i++) {
    assert(dense[i]!.id > dense[i - 1]!.id && dense[i]!.t >= dense[i - 1]!.t, "in order");
  }
  for (const x of dense) assert(x.t - x.id * 0.1 >= 15 - 1e-9);
  // Packets 20 ms apart: nothing to hold them back, so delays spread over [15, 25] ms.
  const sparse = simulate(
    path,
    Array.from({ length: 2000 }, (_, i) => [i * 20, 0, 1, 100] as [number, number, number, number]),
  );
  const d = sparse.map((x) => x.t - x.id * 20).sort((a, b) => a - b);
  assert(d[0]! >= 15 - 1e-9 && d.at(-1)! <= 25 + 1e-9, `range ${d[0]}..${d.at(-1)}`);
  assert(d[0]! < 15.5 && d.at(-1)! > 24.5, "jitter spans ± 5 ms");
  assert(Math.abs(d[1000]! - 20) < 0.5, `median ${d[1000]}`);
});

Deno.test("LinkModel loss: Bernoulli within 99 % binomial bounds; Gilbert-Elliott keeps the mean, in bursts", () => {
  const n = 20_000, p = 0.05;
  const sends = Array.from(
    { length: n },
    (_, i) => [i, 0, 1, 100] as [number, number, number, number],
  );
  const bern = simulate(net([{}, {}], () => ({ loss: p })), sends);
  const lost = n - bern.length;
  const sd = Math.sqrt(n * p * (1 - p));
  assert(Math.abs(lost - n * p) < 2.576 * sd, `lost ${lost}`);
  const ge = simulate(net([{}, {}], () => ({ loss: p, lossBurst: 4 }), 7), sends);
  const got = new Set(ge.map((x) => x.id));
  let bursts = 0, gaps = 0;
  for (let i = 0; i < n; i++) {
    if (!got.has(i)) {
      gaps++;
      if (got.has(i - 1) || i === 0) bursts++;
    }
  }
  assert(Math.abs(gaps / n - p) < 0.015, `GE mean loss ${gaps / n}`);
  const meanBurst = gaps / bursts;
  assert(meanBurst > 3 && meanBurst < 5, `mean burst ${meanBurst}`);
});

// ---- On real devices (root) ----

const probe = new URL("./fixtures/netprobe.ts", import.meta.url).pathname;

/** What the probes print (each mode fills its own fields). */
interface ProbeOutput {
  rtts: number[];
  received: number;
  bytes: number;
  ms: number;
}

/**
 * Starts a probe in a namespace (at a higher priority: it measures time on a shared machine);
 * `listening` ones resolve once the probe says it listens; `done` is its output.
 */
async function probeIn(
  ns: string,
  args: string[],
  listening = false,
): Promise<{ done: Promise<ProbeOutput> }> {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      "nice",
      "-n",
      "-10",
      Deno.execPath(),
      "run",
      "-A",
      "--unstable-net",
      probe,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  let err = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const drain = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      err += value;
    }
  })();
  if (listening) {
    while (!err.includes("listening")) {
      if (await Promise.race([drain.then(() => true), new Promise((r) => setTimeout(r, 20))])) {
        throw new Error(`probe ${args.join(" ")} did not listen: ${err}`);
      }
    }
  }
  // Wrapped: an async function cannot resolve to a promise (it would wait for it).
  return {
    done: (async () => {
      const [text] = await Promise.all([stdout, child.status, drain]);
      if (!text.trim()) throw new Error(`probe ${args.join(" ")}: ${err}`);
      return JSON.parse(text);
    })(),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

Deno.test({
  name:
    `emulator on TUN devices: RTT, loss, rate and zero-config overhead as configured${whyNotRoot}`,
  ignore: !root,
  async fn(t) {
    const dir = await Deno.makeTempDir();
    // One network, per-pair settings: a↔b 20 ms; a↔c nothing (zero config); a→d 5 % loss;
    // c↔e 2 ms with e at 20 Mbit/s both ways.
    const e = await startEmulatedHosts(dir, ["a", "b", "c", "d", "e"], {
      command: selfCommand(),
      spec: {
        hosts: { e: { bandwidth: "20Mbit" } },
        pairs: [
          { a: "a", b: "b", latency: "20ms" },
          { a: "a", b: "d", loss: "5%", oneWay: true },
          { a: "c", b: "e", latency: "2ms" },
        ],
        seed: 3,
      },
    });
    const ns = (n: string) => e.hosts.hosts.find((h) => h.name === n)!;
    try {
      await t.step(
        "only the emulator links the hosts: lo and one TUN eth0 per namespace",
        async () => {
          for (const h of e.hosts.hosts) {
            const out = new TextDecoder().decode(
              (await new Deno.Command("ip", {
                args: ["-n", h.ns, "-d", "-o", "link", "show"],
                stdout: "piped",
              })
                .output()).stdout,
            );
            const links = out.trim().split("\n").map((l) => l.split(":")[1]!.trim());
            assertEquals(links, ["lo", "eth0"], h.name);
            assert(out.includes("tun type tun"), `${h.name}: eth0 is a TUN`);
          }
        },
      );
      await t.step(
        "ping RTT median within [2 × latency, 2 × latency + 1 ms], jitter off",
        async () => {
          const srv = await probeIn(ns("b").ns, ["udp-echo", "9000", "1"], true);
          const r =
            await (await probeIn(ns("a").ns, ["udp-ping", ns("b").address, "9000", "150", "10"]))
              .done;
          await srv.done;
          const m = median(r.rtts);
          console.log(`a↔b (20 ms one way): RTT median ${m.toFixed(3)} ms over ${r.rtts.length}`);
          assertEquals(r.rtts.length, 150);
          assert(m >= 40 && m <= 41, `RTT median ${m}`);
        },
      );
      await t.step(
        "zero config adds no delay: ≤ 2 ms at the median (against the same probe on lo)",
        async () => {
          const lo = await probeIn(ns("c").ns, ["udp-echo", "9001", "1"], true);
          const base =
            await (await probeIn(ns("c").ns, ["udp-ping", "127.0.0.1", "9001", "200", "5"])).done;
          await lo.done;
          const srv = await probeIn(ns("c").ns, ["udp-echo", "9002", "1"], true);
          const r =
            await (await probeIn(ns("a").ns, ["udp-ping", ns("c").address, "9002", "200", "5"]))
              .done;
          await srv.done;
          const added = median(r.rtts) - median(base.rtts);
          console.log(
            `zero config: RTT median ${median(r.rtts).toFixed(3)} ms, on lo ${
              median(base.rtts).toFixed(3)
            } ms`,
          );
          // A latency applied by mistake (the scenarios' smallest is 10 ms one way) shows up
          // far above 2 ms. The overhead itself, ≈ 0.1–0.3 ms on a quiet machine, is a benchmark's
          // figure, not a timed test's: it passed 0.5 ms on a loaded one (CI, 2 cores).
          assert(added <= 2, `added ${added} ms`);
        },
      );
      await t.step("loss over 2000 packets within the 99 % binomial bounds of 5 %", async () => {
        const sink = await probeIn(ns("d").ns, ["udp-sink", "9003", "1"], true);
        await (await probeIn(ns("a").ns, ["udp-blast", ns("d").address, "9003", "2000", "1"])).done;
        const { received } = await sink.done;
        const n = 2000, p = 0.05, lost = n - received;
        const sd = Math.sqrt(n * p * (1 - p));
        console.log(`a→d (5 %): ${lost} of ${n} lost`);
        assert(Math.abs(lost - n * p) <= 2.576 * sd, `lost ${lost}`);
      });
      await t.step("TCP bulk reaches ≥ 90 % and ≤ 105 % of a 20 Mbit/s host rate", async () => {
        const size = 8_000_000;
        const sink = await probeIn(ns("e").ns, ["tcp-sink", "9004"], true);
        await (await probeIn(ns("c").ns, ["tcp-send", ns("e").address, "9004", String(size)]))
          .done;
        const r = await sink.done;
        const goodput = (r.bytes * 8) / (r.ms / 1000) / 1e6;
        // The rate limits IP packets: each full segment is 1448 bytes of data in 1500 on the
        // wire (IP 20 + TCP 20 + timestamps 12), so the link carries goodput × 1500/1448.
        const wire = goodput * 1500 / 1448;
        console.log(
          `c→e TCP goodput ${goodput.toFixed(2)} Mbit/s, on the wire ${
            wire.toFixed(2)
          } Mbit/s (host rate 20 Mbit/s)`,
        );
        assertEquals(r.bytes, size);
        assert(wire >= 18 && wire <= 21, `wire rate ${wire} Mbit/s`);
      });
    } finally {
      await e.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function fetch5MiB(socks: string, server: string): Promise<{ ok: boolean; ms: number }> {
  const t0 = performance.now();
  const c = await new Deno.Command("curl", {
    args: [
      "-s",
      "-m",
      "120",
      "-D",
      "-",
      "-o",
      "-",
      "--socks5-hostname",
      socks,
      `${server}/bytes/5MiB`,
    ],
    stdout: "piped",
  }).output();
  const raw = c.stdout;
  const text = new TextDecoder("latin1").decode(raw);
  const end = text.indexOf("\r\n\r\n");
  const body = raw.subarray(end + 4);
  const want = /x-content-sha256: ([0-9a-f]{64})/i.exec(text.slice(0, end))?.[1];
  const ok = c.code === 0 && body.length === 5 * 1024 * 1024 &&
    createHash("sha256").update(body).digest("hex") === want;
  return { ok, ms: performance.now() - t0 };
}

async function leftovers(tag: string): Promise<string[]> {
  const run = async (args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command("ip", { args, stdout: "piped" }).output()).stdout,
    );
  return [
    ...(await run(["netns", "list"])).split("\n").filter((l) => l.startsWith(tag)),
    ...(await run(["-o", "link", "show"])).split("\n").filter((l) => l.includes(tag)),
  ];
}

for (const transport of ["tor", "pctcp"] as const) {
  const ipsec = transport === "pctcp";
  Deno.test({
    name: `5 MiB through a 3-hop circuit over 40 ms / 1 % loss links is byte-exact (${
      ipsec
        ? "pctcp under IPsec"
        : "tor; then the emulator killed: reported broken, down removes everything"
    })${ipsec && !ipsecReady ? " (ignored: needs root, strongSwan and nftables)" : whyNotRoot}`,
    ignore: ipsec ? !ipsecReady : !root,
    async fn() {
      const dir = await Deno.makeTempDir();
      let tag = "";
      try {
        const n = await networkUp({
          dir,
          relays: 3,
          transport,
          netns: true,
          ...(ipsec ? { ipsec: true } : {}),
          path: ["relay1", "relay2", "relay3"],
          emulation: { latency: "40ms", loss: "1%", seed: 5 },
        });
        tag = n.netns!.tag;
        assertEquals(n.emulation!.engine, "userspace");
        assert(
          n.emulation!.paths.some((p) =>
            p.from === "relay1" && p.latency_ms === 40 && p.loss === 0.01
          ),
        );
        const r = await fetch5MiB(n.socks, n.server);
        console.log(`${transport}: 5 MiB in ${(r.ms / 1000).toFixed(1)} s over 40 ms / 1 % links`);
        assert(r.ok, "5 MiB byte-exact");
        const st = await networkStatus(dir);
        const em = st.emulator as { model: { droppedLoss: number; delivered: number } };
        assert(em.model.droppedLoss > 0, "the emulator dropped packets");
        assertEquals(st.broken, []);
        if (!ipsec) {
          const pid = n.processes.find((p) => p.name === "emulator")!.pid;
          Deno.kill(pid, "SIGKILL");
          for (let i = 0; i < 50 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
          const s2 = await networkStatus(dir);
          assert(s2.broken.some((b) => b.startsWith("emulator")), JSON.stringify(s2.broken));
          const cut = await new Deno.Command("curl", {
            args: [
              "-s",
              "-m",
              "3",
              "-o",
              "/dev/null",
              "--socks5-hostname",
              n.socks,
              `${n.server}/bytes/1KiB`,
            ],
          }).output();
          assert(cut.code !== 0, "no traffic without the emulator");
          const cli = await pctcp("network", "status", "--dir", dir);
          assertEquals(cli.code, 1, "status exits 1 on a broken network");
          assert(cli.stdout.includes("BROKEN: emulator"));
        }
        await networkDown(dir);
        assertEquals(await leftovers(tag), []);
        for (const p of n.processes) assert(!isAlive(p.pid), `${p.name} still running`);
      } finally {
        await networkDown(dir).catch(() => {});
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test("four-cities topology: RTTs between hosts on different nodes within 20–150 ms, some loss", async () => {
  const { loadTopology, loadGraph } = await import("../lib/emulate/mod.ts");
  const spec = await loadTopology(
    new URL("../measurements/topologies/four-cities.json", import.meta.url).pathname,
  );
  const g = await loadGraph(spec.topology!);
  const names = ["relay1", "relay2", "relay3", "server", "client"];
  const r = resolveNetwork(spec, names, { graph: g });
  const node = (n: string) => spec.hosts![n]!.node;
  let lossy = 0;
  for (const [i, a] of names.entries()) {
    for (const [j, b] of names.entries()) {
      if (i === j || node(a) === node(b)) continue;
      const rtt = r.paths[i]![j]!.latencyMs + r.paths[j]![i]!.latencyMs;
      assert(rtt >= 20 && rtt <= 150, `${a}↔${b} RTT ${rtt}`);
      if (r.paths[i]![j]!.loss > 0) lossy++;
    }
  }
  assert(lossy > 0);
  assertEquals(r.hosts[4]!.downBps, 50e6 / 8, "client node 50 Mbit/s down");
});
