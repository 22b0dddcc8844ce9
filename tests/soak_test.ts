// Load: 200 concurrent streams through one client for 60 s (PCTCP_SOAK_SECONDS to change):
// every fetch byte-exact, the client's memory flat. Prints RSS over time. Each worker on a
// circuit of its own: one circuit carrying 600 streams a second is what the exit's
// stream-creation budget (DoSStreamCreationRate 100/s, burst 300; lib/relay/dos.ts) refuses.
import { assert, assertEquals } from "./_assert.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { runMeasurement } from "../lib/measure/run.ts";

const seconds = Number(Deno.env.get("PCTCP_SOAK_SECONDS") ?? 60);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : NaN;
}

Deno.test(`soak: 200 concurrent streams for ${seconds} s are byte-exact and the client's memory stays flat`, async () => {
  const dir = await Deno.makeTempDir();
  const net = await networkUp({ dir, relays: 4, transport: "pctcp" });
  try {
    const client = net.processes.find((p) => p.name === "client")!.pid;
    const samples: { t: number; rss: number }[] = [];
    const t0 = performance.now();
    let on = true;
    const sampler = (async () => {
      while (on) {
        samples.push({ t: Math.round((performance.now() - t0) / 1000), rss: rssMiB(client) });
        await new Promise((r) => setTimeout(r, 5000));
      }
    })();
    const out = `${dir}/soak.jsonl`;
    const sum = await runMeasurement({
      socks: net.socks,
      workloads: [{
        label: "soak",
        urls: [`${net.server}/bytes/100KiB`, `${net.server}/bytes/20KiB`],
      }],
      concurrency: 200,
      durationS: seconds,
      timeoutMs: 30_000,
      isolate: true,
      out,
    });
    on = false;
    await sampler;
    console.log(
      `soak: ${sum.total} fetches, ${sum.failed} failed; client RSS MiB over time: ${
        samples.map((x) => `${x.t}s ${x.rss.toFixed(0)}`).join(", ")
      }`,
    );
    assertEquals(sum.failed, 0);
    assert(sum.total >= 200);
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    assert(recs.every((r) => r.sha256_ok === true), "a body was not byte-exact");
    const warm = Math.max(...samples.slice(0, 3).map((x) => x.rss));
    const last = samples.at(-1)!.rss;
    assert(
      last < warm * 1.5 + 20,
      `client RSS grew from ${warm.toFixed(0)} to ${last.toFixed(0)} MiB`,
    );
  } finally {
    await networkDown(dir);
    await Deno.remove(dir, { recursive: true });
  }
});
