// `pctcp measure` as a user meets it: exit codes (0, 3 partial, 1 proxy down), Ctrl-C
// (interrupted records, exit 130), results alone on stdout.
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { instrument, pctcp, spawnPctcp } from "./_cli.ts";
import { slowProxy } from "./_slow_proxy.ts";
import { readRecords } from "../lib/measure/schema.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("measure exits 3 when some fetches failed, 0 when none did; stdout holds the summary alone", async () => {
  const inst = await instrument();
  const dir = await Deno.makeTempDir();
  try {
    const socks = `127.0.0.1:${inst.socksPort}`;
    const some = await pctcp(
      "measure",
      "--socks",
      socks,
      "--url",
      `${inst.server}/bytes/1KiB`,
      `${inst.server}/missing`,
      "--count",
      "2",
      "--timeout",
      "20s",
      "--out",
      `${dir}/p.jsonl`,
    );
    assertEquals(some.code, 3, some.stderr);
    const summary = JSON.parse(some.stdout);
    assertEquals([summary.ok, summary.failed], [1, 1]);
    assertEquals(some.stdout.trim().split("\n").length, 1);
    assertStringIncludes(some.stderr, "http");
    const all = await pctcp(
      "measure",
      "--socks",
      socks,
      "--url",
      `${inst.server}/bytes/1KiB`,
      "--timeout",
      "20000",
      "--out",
      `${dir}/ok.jsonl`,
    );
    assertEquals(all.code, 0, all.stderr);
    // A bare --timeout is ms, as before units.
    assertEquals((await readRecords(`${dir}/ok.jsonl`)).records[0]!.timeout_ms, 20000);
  } finally {
    await inst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure against a proxy that is not listening backs off and exits 1 saying the proxy is down", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/down.jsonl`;
    const r = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${freePort()}`,
      "--url",
      "http://127.0.0.1:1/",
      "--duration",
      "2m",
      "--out",
      out,
    );
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(r.stderr, "is down");
    const recs = (await readRecords(out)).records;
    assert(recs.length >= 5 && recs.length <= 6, `${recs.length} records`);
    assertEquals(JSON.parse(r.stdout).failed, recs.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure on Ctrl-C stops the fetch under way as interrupted, writes it and exits 130", async () => {
  const proxy = slowProxy();
  const dir = await Deno.makeTempDir();
  const out = `${dir}/c.jsonl`;
  const child = spawnPctcp([
    "measure",
    "--socks",
    `127.0.0.1:${proxy.port}`,
    "--url",
    "http://example.test/big",
    "--count",
    "100",
    "--out",
    out,
  ], { stdout: "piped", stderr: "piped" });
  try {
    for (const t0 = Date.now(); proxy.connections() < 1 && Date.now() - t0 < 60_000;) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(proxy.connections() >= 1, "the fetch never started");
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    child.kill("SIGINT");
    const res = await child.output();
    const ms = performance.now() - t0;
    assertEquals(res.code, 130, new TextDecoder().decode(res.stderr));
    // Within a second on an idle machine; bounded generously for a loaded one.
    assert(ms < 10_000, `exited ${ms.toFixed(0)} ms after SIGINT`);
    const recs = (await readRecords(out)).records;
    assertEquals(recs.map((r) => r.outcome), ["interrupted"]);
    assertStringIncludes(recs[0]!.error!, "SIGINT");
    const summary = JSON.parse(new TextDecoder().decode(res.stdout));
    assertEquals(summary.interrupted, 1);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
    await proxy.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
