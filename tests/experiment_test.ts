import { pctcp, spawnPctcp } from "./_cli.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { isAlive } from "../lib/network/launcher.ts";
import { armSpec } from "../lib/experiment/arms.ts";
import { calibrationVerdict } from "../lib/experiment/analyze.ts";
import { acrossRuns } from "../lib/stats/across.ts";
import { applySweepValue } from "../lib/experiment/sweep.ts";
import { loadScenario } from "../lib/experiment/scenario.ts";

Deno.test("experiment interference measures until the scenario's minimum samples, writes a manifest, summary.json and a report", async () => {
  const out = await Deno.makeTempDir();
  try {
    // One second of measurement, but at least 8 web and 3 bulk samples per arm (≤ 20 s).
    const tiny = JSON.parse(
      await Deno.readTextFile(new URL("./fixtures/tiny.json", import.meta.url)),
    );
    const scenario = `${out}/min.json`;
    await Deno.writeTextFile(
      scenario,
      JSON.stringify({
        ...tiny,
        name: "tiny-min",
        durationS: 1,
        maxDurationS: 20,
        minSamples: { web_response: 8, web_download: 8, bulk_download: 3 },
      }),
    );
    const r = await pctcp("experiment", "interference", "--scenario", scenario, "--out", out);
    const stdout = r.stdout;
    assertEquals(r.code, 0, r.stderr);
    for (const w of ["| pctcp vs tor | web_response |", "Network: loopback", "Baseline: tor"]) {
      assert(stdout.includes(w), `${w} in\n${stdout}`);
    }
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    for (const arm of ["tor", "pctcp"]) {
      const b = s.arms[arm].bulk_download;
      assert(b.n >= 3 && !b.few_samples, `${arm} measured past its duration: ${b.n} bulk`);
      assert(s.arms[arm].web_download.n >= 8, `${arm} web`);
    }
    const manifest = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
    assertEquals(manifest.arms, ["tor", "pctcp"]);
    assertEquals(manifest.netns, false);
    assertEquals(manifest.min_samples.bulk_download, 3);
    assert(typeof manifest.finished === "string");
    const load = JSON.parse(await Deno.readTextFile(`${out}/load.json`));
    assertEquals(load.length, 2);
    assert(load.every((x: { seconds: number }) => x.seconds > 1), "ran past durationS");
    assert(typeof s.self_check.bottleneck === "boolean");
    for (const m of ["web_response", "web_download", "bulk_download"]) {
      for (const p of ["p50", "p75", "p90"]) {
        const e = s[m][p];
        for (const k of ["tor", "pctcp", "change_pct"]) {
          assert(Number.isFinite(e[k]), `${m}.${p}.${k}`);
        }
        assertEquals(e.ci95.length, 2);
      }
    }
    const html = await Deno.readTextFile(`${out}/report.html`);
    assert(html.includes("<svg") && html.includes("Where queues build"));
    // Nothing left running.
    for (const arm of ["tor", "pctcp"]) {
      const stateGone = await Deno.stat(`${out}/net-${arm}/state.json`).then(
        () => false,
        () => true,
      );
      assert(stateGone, `${arm} network state left behind`);
    }
    const q = JSON.parse(await Deno.readTextFile(`${out}/queues.json`));
    for (const arm of ["tor", "pctcp"]) {
      for (const rel of Object.values(q[arm].relays) as { pid?: number }[]) {
        assert(!rel.pid || !isAlive(rel.pid));
      }
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

for (const signal of ["SIGINT", "SIGKILL"] as const) {
  Deno.test(`experiment interference stopped by ${signal} leaves no process behind`, async () => {
    const out = await Deno.makeTempDir();
    try {
      const scenario = `${out}/long.json`;
      await Deno.writeTextFile(
        scenario,
        JSON.stringify({
          name: "long",
          relays: 3,
          bandwidths: ["2MiB", "2MiB", "2MiB"],
          web: { clients: 2, size: "50KiB", thinkS: 0.2 },
          bulk: { clients: 1, size: "1MiB" },
          durationS: 60,
          timeoutS: 20,
          jitter: 0.2,
          seed: 1,
        }),
      );
      const child = spawnPctcp([
        "experiment",
        "interference",
        "--scenario",
        scenario,
        "--out",
        out,
      ]);
      let pids: number[] = [];
      for (let i = 0; i < 200 && pids.length < 5; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          pids = JSON.parse(await Deno.readTextFile(`${out}/net-tor/state.json`)).processes.map((
            p: { pid: number },
          ) => p.pid);
        } catch { /* not yet */ }
      }
      assertEquals(pids.length, 5, "the network came up");
      await new Promise((r) => setTimeout(r, 500));
      child.kill(signal);
      await child.status;
      // Ctrl-C tears down at once; after a crash the processes notice their owner is gone.
      for (let i = 0; i < 100 && pids.some(isAlive); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assertEquals(pids.filter(isAlive), []);
      if (signal === "SIGINT") {
        // Ctrl-C: the arm under way is torn down and what it measured is summarized.
        assertEquals((await child.status).code, 130);
        const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
        assertEquals(s.interrupted, true);
        assertEquals(s.experiment.order, ["tor#1"]);
        assert(await Deno.stat(`${out}/report.html`).then(() => true, () => false));
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}

Deno.test("experiment interference with arms and runs writes arms, changes, runs and queue series", async () => {
  const out = await Deno.makeTempDir();
  try {
    const scenario = new URL("./fixtures/tiny.json", import.meta.url).pathname;
    const r = await pctcp(
      "experiment",
      "interference",
      "--scenario",
      scenario,
      "--arms",
      "tor,tor-kist",
      "--runs",
      "2",
      "--duration",
      "3",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    assertEquals(s.runs, 2);
    assertEquals(s.experiment.order, ["tor#1", "tor-kist#1", "tor#2", "tor-kist#2"]);
    assertEquals(s.experiment.seeds, [1, 2]);
    for (const arm of ["tor", "tor-kist"]) {
      const e = s.arms[arm].web_response.p50;
      assert(Number.isFinite(e.ms) && e.ci.length === 2, `${arm} p50`);
      assertEquals(e.runs_ms.length, 2, `${arm}: one p50 per run`);
      assertEquals(e.across_runs.ci, null, "no across-run interval from 2 runs");
    }
    const c = s.changes["tor-kist_vs_tor"].web_response.p90;
    assert(Number.isFinite(c.pct) && c.ci.length === 2 && c.runs_pct.length === 2);
    assertEquals(s.web_response, null, "no pctcp arm: no version-1 tor/pctcp rows");
    // Relays ran the scheduler the arm names, and KIST read TCP_INFO.
    const q = JSON.parse(await Deno.readTextFile(`${out}/queues.json`));
    assertEquals(q.tor.relays.relay2.scheduler.kind, "vanilla");
    const k = q["tor-kist"].relays.relay2.scheduler;
    assertEquals(k.kind, "kist");
    assert(k.runs > 0 && k.limits.tcpInfo > 0, JSON.stringify(k));
    assertEquals(q["tor-kist"].series.length, 2);
    const p = q["tor-kist"].series[0].points[0];
    for (const f of ["kernel_notsent", "kernel_unacked", "circuit_queues", "outbufs"]) {
      assert(typeof p[f] === "number", f);
    }
    const html = await Deno.readTextFile(`${out}/report.html`);
    assert(html.includes("where bytes wait") || html.includes("Where queues build"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("experiment sweep over loss refuses a value that is not a loss, and an unknown arm, with exit 2", async () => {
  const r = await pctcp("experiment", "sweep", "--param", "loss", "--values", "0,lots");
  const err = r.stderr;
  assertEquals(r.code, 2, err);
  assert(err.includes("--values") && err.includes("lots"), err);
  const bad = await pctcp("experiment", "interference", "--arms", "tor,nope");
  assertEquals(bad.code, 2);
  assert(bad.stderr.includes("unknown arm nope"));
});

Deno.test("armSpec, acrossRuns and applySweepValue", async () => {
  assertEquals(armSpec("tor-kist"), { kind: "ours", transport: "tor", scheduler: "kist" });
  assertEquals(armSpec("pctcp"), { kind: "ours", transport: "pctcp", scheduler: "vanilla" });
  assertEquals(armSpec("ctor"), { kind: "ctor", congestionControl: true });
  assertEquals(armSpec("ctor-nocc"), { kind: "ctor", congestionControl: false });
  // Mean 2, sd 1, n 3: t(0.975, 2) = 4.303 → ± 2.48; none from fewer than 3 runs.
  const a = acrossRuns([1, 2, 3]);
  assertEquals(a.mean, 2);
  assertEquals(a.ci, [-0.48, 4.48]);
  assertEquals(acrossRuns([5]).ci, null);
  assertEquals(acrossRuns([5, 6]).ci, null);
  const s = await loadScenario("quick");
  const bw = applySweepValue(s, "bandwidth", "768KiB").scenario.bandwidths;
  assertEquals(bw, [2 * 1024 * 1024, 768 * 1024, 2 * 1024 * 1024]);
  assertEquals(applySweepValue(s, "bulk-clients", "4").scenario.bulk.clients, 4);
  assertEquals(s.bulk.clients, 2, "the scenario itself is not changed");
  assertEquals(applySweepValue(s, "loss", "1%").emulation, { loss: "1%" });
  assertThrows(() => applySweepValue(s, "latency", "soon"), SyntaxError);
  // The goal is ±15 % at p50; p90 is information, never flagged.
  const v = calibrationVerdict({
    arm: "tor-kist",
    against: "ctor",
    web_response: { p50: { ratio: 1.1 }, p90: { ratio: 1.6 } },
    bulk_download: { p50: { ratio: 0.8 } },
  });
  assert(v.includes("web_response p50 ×1.10,") && v.includes("web_response p90 ×1.60,"), v);
  assert(v.includes("bulk_download p50 ×0.80 (outside ±15 %)") && !v.includes("±25"), v);
  assertEquals(v.match(/outside/g)?.length, 1, v);
});

Deno.test("experiment sweep over bulk clients runs one experiment per value and plots the change", async () => {
  const out = await Deno.makeTempDir();
  try {
    const scenario = new URL("./fixtures/tiny.json", import.meta.url).pathname;
    const r = await pctcp(
      "experiment",
      "sweep",
      "--param",
      "bulk-clients",
      "--values",
      "1,2",
      "--scenario",
      scenario,
      "--duration",
      "3",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const s = JSON.parse(await Deno.readTextFile(`${out}/sweep.json`));
    assertEquals(s.param, "bulk-clients");
    assertEquals(s.results.map((x: { value: string }) => x.value), ["1", "2"]);
    const rows = s.rows.filter((x: { metric: string; p: string }) =>
      x.metric === "web_response" && x.p === "p50"
    );
    assertEquals(rows.length, 2);
    for (const x of rows) assert(Number.isFinite(x.pct) && Number.isFinite(x.lo) && x.lo <= x.hi);
    const one = JSON.parse(await Deno.readTextFile(`${out}/bulk-clients-2/scenario.json`));
    assertEquals(one.bulk.clients, 2);
    assert((await Deno.readTextFile(`${out}/sweep-web_response.svg`)).includes("<svg"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
