import { assert, assertEquals } from "./_assert.ts";
import { isAlive } from "../lib/network/launcher.ts";

const main = new URL("../cli/main.ts", import.meta.url).pathname;

Deno.test("experiment interference writes summary.json with every metric and percentile, and a report", async () => {
  const out = await Deno.makeTempDir();
  try {
    const scenario = new URL("./fixtures/tiny.json", import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "experiment", "interference", "--scenario", scenario, "--out", out],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(r.stdout);
    assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    assert(stdout.includes("| web_response | p50 |"), stdout);
    const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
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
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          main,
          "experiment",
          "interference",
          "--scenario",
          scenario,
          "--out",
          out,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
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
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}
