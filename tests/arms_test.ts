// Arms (issue 17): one `measure --arm … --arm …` run interleaves fetches through chosen
// circuits, labels every record with its arm and circuit, rebuilds an arm's circuit after a
// failure, goes on when a relay dies mid-run; `compare --by arm` pairs the arms by time block.
// End to end on our mixed network (a pctcp middle against a tor middle, same guard and exit)
// and on a private network of Debian's tor (two middles pinned through the control port).
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { pctcp, spawnPctcp } from "./_cli.ts";
import { armSlot, armSocksUser, runMeasurement } from "../lib/measure/run.ts";
import { resolveOut } from "../cli/measure.ts";
import { expandDatePattern } from "../lib/schedule/date_pattern.ts";
import { slowServer, tinySocks } from "./_slow.ts";
import { compareArms, comparisonDoubts } from "../lib/stats/compare.ts";
import { seededRandom } from "../lib/util/random.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { haveTor, startTorTestnet, type TorTestnet } from "../lib/tor/testnet.ts";
import { serve } from "../lib/serve/server.ts";
import { pathFromSocksUser } from "../lib/tor/pinned.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";

async function records(path: string): Promise<MeasureRecord[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("armSlot interleaves: round robin from an offset, or each block a seeded permutation", () => {
  const rr = Array.from({ length: 6 }, (_, i) => armSlot(i, 3, "round-robin", 1, [], Math.random));
  assertEquals(rr.map((x) => x.arm), [1, 2, 0, 1, 2, 0]);
  assertEquals(rr.map((x) => x.block), [0, 0, 0, 1, 1, 1]);
  const order = (seed: number) => {
    const blocks: number[][] = [], random = seededRandom(seed);
    return Array.from({ length: 12 }, (_, i) => armSlot(i, 3, "blocks", 0, blocks, random).arm);
  };
  const a = order(5);
  for (let b = 0; b < 4; b++) assertEquals(a.slice(3 * b, 3 * b + 3).sort(), [0, 1, 2]);
  assertEquals(order(5), a, "same seed, same order");
  assert(
    JSON.stringify(order(6)) !== JSON.stringify(a) ||
      JSON.stringify(order(7)) !== JSON.stringify(a),
  );
  // The SOCKS user name carries the path both our client and PinnedCircuits read.
  const user = armSocksUser({ name: "pctcp", path: ["g", "m", "e"] }, 2, "r-1-web-0");
  assertEquals(pathFromSocksUser(user), ["g", "m", "e"]);
  assertEquals(pathFromSocksUser("r-1-web-0"), undefined);
});

Deno.test("compareArms pairs by block: a halving is found, unpaired blocks are left out, doubts are said", () => {
  const random = seededRandom(3);
  const blocks = Array.from({ length: 40 }, (_, i) => {
    const drift = 100 + 50 * Math.sin(i / 5); // the network's mood moves both arms
    return {
      base: { values: [drift * (1 + 0.1 * random())], censoredAt: [] },
      other: { values: i === 7 ? [] : [drift * 0.5 * (1 + 0.1 * random())], censoredAt: [] },
    };
  });
  const c = compareArms(blocks);
  assertEquals(c.pairedBlocks, 39);
  assertEquals(c.unpairedBlocks, 1);
  const med = c.changes.find((x) => x.p === 50)!;
  assert(med.changePct < -40 && med.changePct > -60, `${med.changePct}`);
  assert(med.hi < 0, "interval excludes no change");
  assert(c.pairedPValue < 1e-6, `paired p ${c.pairedPValue}`);
  assert(Math.abs(c.medianBlockRatio - 0.5) < 0.05);
  const doubts = comparisonDoubts(
    { name: "tor", count: 100, ok: 98, timeouts: 1, failed: 1 },
    { name: "pctcp", count: 100, ok: 70, timeouts: 25, failed: 5 },
    8,
  );
  assertEquals(doubts.length, 3, doubts.join("\n"));
  assertStringIncludes(doubts[0]!, "sample sizes differ");
  assertStringIncludes(doubts[1]!, "failure rates differ");
  assertStringIncludes(doubts[2]!, "only 8 time blocks");
  assertEquals(
    comparisonDoubts(
      { name: "a", count: 100, ok: 99, timeouts: 1, failed: 0 },
      { name: "b", count: 100, ok: 98, timeouts: 2, failed: 0 },
      50,
    ),
    [],
  );
  const few = comparisonDoubts(
    { name: "a", count: 4, ok: 4, timeouts: 0, failed: 0 },
    { name: "b", count: 5, ok: 5, timeouts: 0, failed: 0 },
  );
  assertEquals(few.length, 1, few.join("\n"));
  assertStringIncludes(few[0]!, "few samples: 4 (a) and 5 (b)");
});

Deno.test({
  name:
    "measure --arm on a mixed network: pctcp middle vs tor middle, same guard and exit; a relay killed mid-run is recorded and the run goes on",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    let child: Deno.ChildProcess | undefined;
    try {
      // relay1 pctcp (guard), relay2 tor, relay3 pctcp, relay4 tor, relay5 pctcp (exit).
      const net = await networkUp({ dir, relays: 5, transport: "mixed" });
      const transports = Object.fromEntries(net.relays.map((r) => [r.nickname, r.transports]));
      assert(transports.relay3!.includes("pctcp") && !transports.relay2!.includes("pctcp"));
      const out = `${dir}/arms.jsonl`;
      child = spawnPctcp([
        "measure",
        "--socks",
        net.socks,
        "--url",
        `${net.server}/bytes/100KiB`,
        "--arm",
        "pctcp=relay3",
        "--arm",
        "tor=relay2",
        "--arm",
        "victim=relay4",
        "--guard",
        "relay1",
        "--exit",
        "relay5",
        "--count",
        "12",
        "--interval",
        "0.3",
        "--timeout",
        "15000",
        "--seed",
        "11",
        "--streams",
        net.streams,
        "--out",
        out,
      ], { stdout: "piped", stderr: "piped" });
      // Kill relay4 once the first block is measured.
      const victim = net.relays.find((r) => r.nickname === "relay4")!;
      for (let i = 0; i < 200; i++) {
        const n = await Deno.readTextFile(out).then((t) => t.trim().split("\n").length, () => 0);
        if (n >= 4) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      Deno.kill(victim.pid, "SIGKILL");
      const killedAt = Date.now();
      const res = await child.output();
      child = undefined;
      const stderr = new TextDecoder().decode(res.stderr);
      const recs = await records(out);
      assertEquals(recs.length, 12, stderr);
      const by = (arm: string) => recs.filter((x) => x.arm === arm);
      for (const arm of ["pctcp", "tor", "victim"]) assertEquals(by(arm).length, 4);
      // Interleaved: each block of three fetches has one of each arm.
      for (let b = 0; b < 4; b++) {
        assertEquals(recs.filter((x) => x.arm_block === b).map((x) => x.arm).sort(), [
          "pctcp",
          "tor",
          "victim",
        ]);
      }
      // The two healthy arms: every fetch ok, through the asked-for relays, on one circuit.
      for (const [arm, middle] of [["pctcp", "relay3"], ["tor", "relay2"]] as const) {
        for (const x of by(arm)) {
          assertEquals(x.outcome, "ok", `${arm}: ${x.error}`);
          assertEquals(x.circuit?.path, ["relay1", middle, "relay5"]);
          assertEquals(x.arm_path, ["relay1", middle, "relay5"]);
          assertEquals(x.arm_circuit?.n, 1);
          assertEquals(x.arm_circuit?.reason, "first");
        }
        assertEquals(new Set(by(arm).map((x) => x.circuit?.id)).size, 1);
      }
      // The victim: ok before the kill, failures with an error class after, and a fresh
      // circuit after each failure.
      const v = by("victim");
      const after = v.filter((x) => Date.parse(x.start) > killedAt + 50);
      assert(after.length >= 1, "some victim fetches after the kill");
      for (const x of after) {
        assert(x.outcome !== "ok", `victim fetch after the kill: ${x.outcome}`);
        assertEquals(typeof x.error, "string");
      }
      assert(
        v.some((x) => x.arm_circuit?.reason === "failure"),
        JSON.stringify(v.map((x) => x.arm_circuit)),
      );
      assertStringIncludes(stderr, "[victim]");
      assertEquals(res.code, 3, stderr); // partial: some fetches failed (docs/cli.md)
      const summary = JSON.parse(new TextDecoder().decode(res.stdout).trim());
      assertEquals(summary.arms.pctcp.ok, 4);
      assert(summary.arms.victim.failed >= 1);

      // compare --by arm: the change per percentile with intervals, paired by time block.
      const cmp = await pctcp("compare", "--by", "arm", "--baseline", "tor", out);
      assertEquals(cmp.code, 0, cmp.stderr);
      assertStringIncludes(cmp.stdout, "measure: pctcp against tor, paired by time block");
      assertStringIncludes(cmp.stdout, "4 paired blocks");
      assertStringIncludes(cmp.stdout, "95 % CI");
      assertStringIncludes(cmp.stdout, "measure: victim against tor");
      assertStringIncludes(cmp.stdout, "sample sizes differ");
      assertStringIncludes(cmp.stdout, "fetches failed (not timeouts)");
      const st = await pctcp("stats", "--by", "arm", "--format", "csv", out);
      assertEquals(st.code, 0, st.stderr);
      const lines = st.stdout.trim().split("\n");
      const header = lines[0]!.split(",");
      const arms = lines.slice(1).map((l) => l.split(",")[header.indexOf("arm")]);
      assertEquals([...new Set(arms)].sort(), ["pctcp", "tor", "victim"]);
    } finally {
      if (child) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.output().catch(() => {});
      }
      await networkDown(dir).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const tor = await haveTor();

Deno.test({
  name:
    "measure --arm with --control on a private network of Debian's tor: two middles pinned, same guard and exit",
  ignore: !tor,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    let net: TorTestnet | undefined;
    const s = await serve();
    try {
      net = await startTorTestnet({ dir: `${dir}/tor`, readyUrl: `${s.url}/bytes/1KiB` });
      const [g, m1, m2, e] = net.relays.map((r) => r.fingerprint);
      const out = `${dir}/tor-arms.jsonl`;
      const r = await pctcp(
        "measure",
        "--socks",
        net.socks,
        "--control",
        net.control,
        "--url",
        `${s.url}/bytes/50KiB`,
        "--arm",
        `a=${m1}`,
        "--arm",
        `b=${m2}`,
        // A relay this network does not have: every circuit of the arm fails; the run goes on.
        "--arm",
        `ghost=${"AB".repeat(20)}`,
        "--guard",
        g!,
        "--exit",
        e!,
        "--order",
        "round-robin",
        "--count",
        "9",
        "--timeout",
        "30000",
        "--out",
        out,
      );
      assertEquals(r.code, 3, r.stderr); // partial: the ghost arm failed (docs/cli.md)
      const all = await records(out);
      assertEquals(all.map((x) => x.arm).join(" "), "a b ghost a b ghost a b ghost");
      const ghost = all.filter((x) => x.arm === "ghost");
      for (const x of ghost) {
        assertEquals(x.outcome, "circuit", x.error ?? "");
        assertStringIncludes(x.error ?? "", "EXTENDCIRCUIT");
      }
      assertEquals(ghost.map((x) => x.arm_circuit?.reason), ["first", "failure", "failure"]);
      const recs = all.filter((x) => x.arm !== "ghost");
      for (const x of recs) {
        assertEquals(x.outcome, "ok", x.error ?? "");
        const want = [g, x.arm === "a" ? m1 : m2, e];
        assertEquals(x.circuit?.path, want);
        assertEquals(x.arm_path, want);
        assert(typeof x.circuit?.build_ms === "number", JSON.stringify(x.circuit));
      }
      // One circuit per arm, each reused for the arm's fetches.
      const ids = (arm: string) =>
        new Set(recs.filter((x) => x.arm === arm).map((x) => x.circuit?.id));
      assertEquals(ids("a").size, 1);
      assertEquals(ids("b").size, 1);
      assert([...ids("a")][0] !== [...ids("b")][0]);
      const cmp = await pctcp("compare", "--by", "arm", out);
      assertEquals(cmp.code, 0, cmp.stderr);
      assertStringIncludes(cmp.stdout, "measure: b against a, paired by time block");
    } finally {
      await net?.stop();
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("runMeasurement with arms gives each arm a fresh circuit (SOCKS user name) when its circuit is old", async () => {
  const dir = await Deno.makeTempDir();
  const proxy = tinySocks(), web = slowServer();
  try {
    const out = `${dir}/age.jsonl`;
    const sum = await runMeasurement({
      socks: `127.0.0.1:${proxy.port}`,
      workloads: [{ label: "web", urls: [`${web.url}/slow/5`] }],
      arms: [{ name: "a", path: ["g", "m1", "e"] }, { name: "b", path: ["g", "m2", "e"] }],
      armOrder: "round-robin",
      circuitAgeS: 0.5,
      intervalS: 0.15,
      count: 10,
      out,
      run: "r-age",
    });
    assertEquals(sum.arms!.a!.ok, 5);
    const recs = await records(out);
    const a = recs.filter((x) => x.arm === "a");
    assert(
      a.some((x) => x.arm_circuit?.reason === "age"),
      JSON.stringify(a.map((x) => x.arm_circuit)),
    );
    assert(sum.arms!.a!.circuits >= 2);
    // The first fetch of each circuit says so; the proxy saw one user name per circuit.
    assertEquals(a.filter((x) => x.arm_circuit?.first).length, sum.arms!.a!.circuits);
    const aUsers = new Set(proxy.users.filter((u) => u.includes(";arm=a;")));
    assertEquals(aUsers.size, sum.arms!.a!.circuits);
    for (const u of aUsers) assertEquals(pathFromSocksUser(u), ["g", "m1", "e"]);
  } finally {
    await proxy.stop();
    await web.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure --out %Y-%m-%d makes a daily file in a new folder; an arm of fewer than 3 relays is a usage error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = await resolveOut(
      expandDatePattern(`${dir}/daily/arms-%Y-%m-%d-{run}.jsonl`, new Date(2026, 10, 26, 23)),
      "r-1",
    );
    assertEquals(f, `${dir}/daily/arms-2026-11-26-r-1.jsonl`);
    assert((await Deno.stat(`${dir}/daily`)).isDirectory);
    const r = await pctcp(
      "measure",
      "--socks",
      "127.0.0.1:9",
      "--url",
      "http://127.0.0.1:9/",
      "--arm",
      "a=m1",
      "--arm",
      "b=m2",
      "--out",
      `${dir}/x.jsonl`,
    );
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "a circuit needs guard, middle and exit");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
