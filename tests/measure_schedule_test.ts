// Schedules under load (issue 16): a schedule never cuts a fetch short, overruns are recorded
// (late) or counted (skip), think time pauses after a fetch ends, and stats says what its
// percentiles leave out. Against a deliberately slow server through a tiny SOCKS5 proxy.
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { pctcp } from "./_cli.ts";
import { slowServer, tinySocks } from "./_slow.ts";
import { DEFAULT_TIMEOUT_MS, runMeasurement } from "../lib/measure/run.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";

async function records(path: string): Promise<MeasureRecord[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("measure --interval shorter than the fetch: nothing cut short, the slip recorded (late)", async () => {
  const dir = await Deno.makeTempDir();
  const proxy = tinySocks(), web = slowServer();
  try {
    const out = `${dir}/late.jsonl`;
    const r = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${proxy.port}`,
      "--url",
      `${web.url}/slow/600`,
      "--interval",
      "0.25",
      "--count",
      "4",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const recs = await records(out);
    assertEquals(recs.map((x) => x.outcome), ["ok", "ok", "ok", "ok"]);
    for (const x of recs) {
      assert(x.phases_ms.last_byte! >= 590, `a fetch was cut short: ${x.phases_ms.last_byte}`);
      assertEquals(x.timeout_ms, DEFAULT_TIMEOUT_MS);
      assert(Date.parse(x.scheduled_start!) > 0);
    }
    assertEquals(recs.map((x) => x.late), [false, true, true, true]);
    // Each started when the one before ended, about 350 ms after its slot.
    for (const x of recs.slice(1)) assert(x.slip_ms! > 250, `slip ${x.slip_ms}`);
    assert(Math.abs(recs[0]!.slip_ms!) < 50);
    const summary = JSON.parse(r.stdout.trim());
    assertEquals(summary.late, 3);
    assertEquals(summary.skipped, 0);
    // The run settings say which timeout and policy ran.
    const runs = JSON.parse((await Deno.readTextFile(`${out}.runs.jsonl`)).trim());
    assertEquals(runs.settings.timeoutMs, DEFAULT_TIMEOUT_MS);
    assertEquals(runs.settings.overrun, "late");
  } finally {
    await proxy.stop();
    await web.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runMeasurement overrun skip drops the missed slots and counts them", async () => {
  const dir = await Deno.makeTempDir();
  const proxy = tinySocks(), web = slowServer();
  try {
    const out = `${dir}/skip.jsonl`;
    const sum = await runMeasurement({
      socks: `127.0.0.1:${proxy.port}`,
      workloads: [{ label: "web", urls: [`${web.url}/slow/500`] }],
      intervalS: 0.2,
      overrun: "skip",
      count: 3,
      out,
    });
    const recs = await records(out);
    assertEquals(recs.map((x) => x.outcome), ["ok", "ok", "ok"]);
    // 500 ms fetches on a 200 ms grid: two slots pass during each fetch.
    assertEquals(recs.map((x) => x.skipped_slots ?? 0), [0, 2, 2]);
    assertEquals(sum.skipped, 4);
    assertEquals(sum.late, 0);
    // Started on a slot of the grid (600 ms after the one before), not late.
    for (const x of recs.slice(1)) assert(Math.abs(x.slip_ms!) < 50, `slip ${x.slip_ms}`);
    const gap = Date.parse(recs[1]!.scheduled_start!) - Date.parse(recs[0]!.scheduled_start!);
    assert(Math.abs(gap - 600) < 5, `slots ${gap} ms apart`);
  } finally {
    await proxy.stop();
    await web.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure --think pauses after each fetch ends; --interval with --think is a usage error", async () => {
  const dir = await Deno.makeTempDir();
  const proxy = tinySocks(), web = slowServer();
  try {
    const out = `${dir}/think.jsonl`;
    const r = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${proxy.port}`,
      "--url",
      `${web.url}/slow/300`,
      "--think",
      "0.4",
      "--jitter",
      "0.2",
      "--count",
      "3",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const recs = await records(out);
    for (let i = 1; i < recs.length; i++) {
      const prevEnd = Date.parse(recs[i - 1]!.start) + recs[i - 1]!.phases_ms.last_byte!;
      const pause = Date.parse(recs[i]!.start) - prevEnd;
      assert(pause >= 0.8 * 400 - 5 && pause <= 1.2 * 400 + 100, `pause ${pause} ms`);
    }
    assert(recs.every((x) => x.late === false));
    const both = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${proxy.port}`,
      "--url",
      `${web.url}/slow/1`,
      "--think",
      "1",
      "--interval",
      "1",
      "--out",
      `${dir}/x.jsonl`,
    );
    assertEquals(both.code, 2);
    assertStringIncludes(both.stderr, "--interval");
  } finally {
    await proxy.stop();
    await web.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stats says what its percentiles leave out: timeouts counted, warned, censored with --censor", async () => {
  const dir = await Deno.makeTempDir();
  const proxy = tinySocks(), web = slowServer();
  try {
    const out = `${dir}/mixed.jsonl`;
    // 1 in 4 fetches is slower than the timeout the user asked for.
    const sum = await runMeasurement({
      socks: `127.0.0.1:${proxy.port}`,
      workloads: [{
        label: "web",
        urls: [`${web.url}/slow/10?every=4&ms=900`],
      }],
      timeoutMs: 400,
      count: 8,
      out,
    });
    assertEquals(sum.total, 8);
    assertEquals(sum.failed, 2);
    const recs = await records(out);
    assertEquals(recs.filter((x) => x.outcome === "timeout").length, 2);
    const plain = await pctcp("stats", "--format", "table", out);
    assertEquals(plain.code, 0, plain.stderr);
    assertStringIncludes(
      plain.stdout,
      "percentiles of successes only: 2 of 8 fetches timed out — biased low",
    );
    const csv = await pctcp("stats", "--format", "csv", out);
    assertStringIncludes(csv.stderr, "2 of 8 fetches timed out");
    const header = csv.stdout.split("\n")[0]!.split(",");
    const row = csv.stdout.split("\n")[2]!.split(","); // download row
    assertEquals(row[header.indexOf("timeouts")], "2");
    assertEquals(row[header.indexOf("ok")], "6");
    // Censored: the 90th percentile reaches the timeouts, so it reads "at least 400 ms".
    const cens = await pctcp("stats", "--format", "table", "--censor", out);
    assertEquals(cens.code, 0, cens.stderr);
    assert(!cens.stdout.includes("biased low"), cens.stdout);
    assert(
      /download\s+6\/8\s+2\s+0\s+[\d.]+ \[[^\]]+\]\s+[\d.≥ ]+\s+≥ 400\.0/.test(cens.stdout),
      cens.stdout,
    );
    const json = await pctcp("stats", "--format", "csv", "--censor", out);
    const crow = json.stdout.split("\n")[2]!.split(",");
    // Of 8 values, ranks 6 and 7 are censored: p75 (h = 5.25) already reaches one.
    assertEquals(crow[header.indexOf("lower_bounds")], "p75 p90 p99");
  } finally {
    await proxy.stop();
    await web.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
