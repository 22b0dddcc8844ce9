// Data that survives mistakes: the kernel's lock, torn last lines, unique run ids, the records
// schema and its validator, back-off and "proxy down", and fetches stopped under way.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./_assert.ts";
import { LockedError, RecordWriter, toRecord } from "../lib/measure/record.ts";
import { checkLine, readRecords, RecordError, validateRecord } from "../lib/measure/schema.ts";
import { ProxyDownError, runId, runMeasurement } from "../lib/measure/run.ts";
import { newFetchResult } from "../lib/measure/result.ts";
import { OUTCOME_NAMES } from "../lib/measure/outcome.ts";
import { slowProxy } from "./_slow_proxy.ts";

const root = new URL("..", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function sampleRecord(): Record<string, unknown> {
  const { r } = newFetchResult("raw");
  r.phases = { tcp: 0.1, socks: 1, request: 1.1, first_byte: 5, last_byte: 9 };
  r.bytes = 10;
  r.status = 200;
  return toRecord(r, {
    run: runId(),
    id: 1,
    label: "t",
    transport: null,
    url: "http://x/",
  }) as unknown as Record<string, unknown>;
}

Deno.test("RecordWriter holds the kernel's lock: a second writer is refused, a killed holder's lock is gone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/r.jsonl`;
    const w = await RecordWriter.open(path);
    await assertRejects(() => RecordWriter.open(path), LockedError, "another run");
    await w.append({ a: 1 });
    await w.close();
    // A process that holds the lock and is killed: the kernel releases it, no stale file.
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { RecordWriter } from "${root}lib/measure/record.ts";
         await RecordWriter.open(${JSON.stringify(path)}); console.log("held");
         setInterval(() => {}, 1000);`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      assertStringIncludes(first.value ?? "", "held");
      await reader.cancel();
      await assertRejects(() => RecordWriter.open(path), LockedError);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
    // An old-style PID lock file naming a live process (ours) blocks nothing any more.
    await Deno.writeTextFile(`${path}.lock`, `${Deno.pid}\n`);
    const w2 = await RecordWriter.open(path);
    await w2.append({ a: 2 });
    await w2.close();
    assertEquals((await Deno.readTextFile(path)).trim().split("\n").length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RecordWriter sets a torn last line aside (said) and completes a whole one before appending", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/r.jsonl`;
    await Deno.writeTextFile(path, `{"a":1}\n{"a":2}\n{"a":3,"b":[1,2`);
    const notes: string[] = [];
    const w = await RecordWriter.open(path, { notice: (m) => notes.push(m) });
    await w.append({ a: 4 });
    await w.close();
    assertEquals(
      (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l).a),
      [1, 2, 4],
    );
    assertEquals(await Deno.readTextFile(`${path}.torn`), `{"a":3,"b":[1,2\n`);
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0]!, "torn");
    // A whole record that lacks only its newline is kept.
    await Deno.writeTextFile(path, `{"a":5}`, { append: true });
    const notes2: string[] = [];
    const w2 = await RecordWriter.open(path, { notice: (m) => notes2.push(m) });
    await w2.append({ a: 6 });
    await w2.close();
    assertEquals(
      (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l).a),
      [1, 2, 4, 5, 6],
    );
    assertStringIncludes(notes2[0]!, "newline");
    // A clean file: nothing said.
    const notes3: string[] = [];
    await (await RecordWriter.open(path, { notice: (m) => notes3.push(m) })).close();
    assertEquals(notes3, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runId is unique within one millisecond and sorts by time", () => {
  const d = new Date("2026-12-04T01:02:03.045Z");
  const ids = new Set(Array.from({ length: 2000 }, () => runId(d)));
  assert(ids.size >= 1999, `${ids.size} distinct of 2000`);
  const one = runId(d, () => 0);
  assertEquals(one, "r-20261204-010203.045-000000");
  assert(runId(new Date("2026-12-04T01:02:03.046Z"), () => 0) > runId(d, () => 0.99));
});

Deno.test("validateRecord accepts what the run writes and names the first wrong field", () => {
  const good = sampleRecord();
  assertEquals(validateRecord(good), null);
  assertEquals(
    validateRecord({ ...good, phases_ms: { first_byte: "12" } })?.field,
    "phases_ms.first_byte",
  );
  assertEquals(validateRecord({ ...good, bytes: -1 })?.field, "bytes");
  assertEquals(validateRecord({ ...good, outcome: "weird" })?.field, "outcome");
  assertEquals(validateRecord({ ...good, start: "yesterday" })?.field, "start");
  assertEquals(
    validateRecord({ ...good, circuit: { id: "1", path: ["a", 2], build_ms: null } })?.field,
    "circuit.path.1",
  );
  assertEquals(validateRecord({ ...good, arm: "" })?.field, "arm");
  const { run: _r, ...noRun } = good;
  assertEquals(validateRecord(noRun)?.field, "run");
  // Every outcome of the table is valid, "interrupted" among them.
  assert(OUTCOME_NAMES.includes("interrupted"));
  for (const o of OUTCOME_NAMES) {
    assertEquals(validateRecord({ ...good, outcome: o, error: o === "ok" ? null : "x" }), null);
  }
  // Run-settings lines are not records, and not errors.
  assertEquals("skip" in checkLine(`{"type":"run","run":"r"}`, "f", 1), true);
});

Deno.test("readRecords names file, line and field; with onBad it goes on and counts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/m.jsonl`;
    const good = JSON.stringify(sampleRecord());
    const bad = JSON.stringify({ ...sampleRecord(), status: "200" });
    await Deno.writeTextFile(path, `${good}\n{"type":"run"}\n\n${bad}\nnot json\n${good}\n`);
    const e = await assertRejects(() => readRecords(path), RecordError) as RecordError;
    assertEquals([e.file, e.line, e.field], [path, 4, "status"]);
    assertStringIncludes(e.message, `${path}:4: status: expected a non-negative integer`);
    const seen: RecordError[] = [];
    const res = await readRecords(path, { onBad: (x) => seen.push(x) });
    assertEquals(res.records.length, 2);
    assertEquals(seen.map((x) => [x.line, x.field]), [[4, "status"], [5, null]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the records shipped under measurements/ are valid against the schema", async () => {
  let files = 0, records = 0;
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".jsonl") && !e.name.endsWith(".runs.jsonl")) {
        files++;
        records += (await readRecords(p)).records.length;
      }
    }
  };
  await walk(`${root}measurements`);
  assert(files > 0 && records > 0, `${files} files, ${records} records`);
});

Deno.test("runMeasurement backs off while the proxy refuses and stops with ProxyDownError", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/down.jsonl`;
    const t0 = performance.now();
    const e = await assertRejects(
      () =>
        runMeasurement({
          socks: `127.0.0.1:${freePort()}`,
          workloads: [{ label: "x", urls: ["http://127.0.0.1:1/"] }],
          durationS: 60,
          concurrency: 3,
          proxyDown: { firstDelayMs: 40, attempts: 4 },
          out,
        }),
      ProxyDownError,
      "is down",
    ) as ProxyDownError;
    const ms = performance.now() - t0;
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    // Without back-off this was thousands of records a second; now a few rounds of 3 workers.
    assert(recs.length >= 4 && recs.length <= 12, `${recs.length} records`);
    assert(recs.every((r) => r.outcome === "proxy-connect"));
    assertEquals(e.summary.failed, recs.length);
    // 40 + 80 + 160 ms of pauses at least, and far from the 60 s duration.
    assert(ms >= 250 && ms < 30_000, `${ms.toFixed(0)} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runMeasurement records fetches under way as interrupted: on abort and when --duration ends", async () => {
  const proxy = slowProxy();
  const dir = await Deno.makeTempDir();
  try {
    const ctl = new AbortController();
    const out = `${dir}/i.jsonl`;
    setTimeout(() => ctl.abort("stopped by SIGINT"), 300);
    const t0 = performance.now();
    const sum = await runMeasurement({
      socks: `127.0.0.1:${proxy.port}`,
      workloads: [{ label: "x", urls: ["http://example.test/big"] }],
      count: 5,
      concurrency: 2,
      out,
      signal: ctl.signal,
    });
    const ms = performance.now() - t0;
    assert(ms < 5000, `stopped after ${ms.toFixed(0)} ms`);
    assertEquals([sum.total, sum.interrupted, sum.failed], [2, 2, 0]);
    const recs = (await readRecords(out)).records;
    assertEquals(recs.map((r) => r.outcome), ["interrupted", "interrupted"]);
    assert(recs.every((r) => r.bytes > 0 && r.error!.includes("SIGINT")), JSON.stringify(recs));
    // The duration's end, no grace: the fetch under way is stopped and written, not dropped.
    const out2 = `${dir}/d.jsonl`;
    const sum2 = await runMeasurement({
      socks: `127.0.0.1:${proxy.port}`,
      workloads: [{ label: "x", urls: ["http://example.test/big"] }],
      durationS: 0.3,
      graceS: 0,
      out: out2,
    });
    assertEquals([sum2.total, sum2.interrupted], [1, 1]);
    const r2 = (await readRecords(out2)).records[0]!;
    assertEquals(r2.outcome, "interrupted");
    assertStringIncludes(r2.error!, "duration");
  } finally {
    await proxy.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export keeps every stream of colliding run ids and names bad lines (exit 3)", async () => {
  const { pctcp } = await import("./_cli.ts");
  const dir = await Deno.makeTempDir();
  try {
    const rec = (id: number) => JSON.stringify({ ...sampleRecord(), run: "r-same", id });
    await Deno.writeTextFile(`${dir}/a.jsonl`, `${rec(1)}\n${rec(2)}\n`);
    await Deno.writeTextFile(`${dir}/b.jsonl`, `${rec(1)}\n${rec(2)}\n`);
    const op = await pctcp("export", "--format", "onionperf", `${dir}/a.jsonl`, `${dir}/b.jsonl`);
    assertEquals(op.code, 0, op.stderr);
    const doc = JSON.parse(op.stdout);
    const streams = Object.values(doc.data as Record<string, { tgen: { streams: object } }>)
      .flatMap((d) => Object.keys(d.tgen.streams));
    assertEquals(streams.length, 4);
    assertStringIncludes(op.stderr, "suffix");
    await Deno.writeTextFile(`${dir}/b.jsonl`, `{"v":1,"run":"x"}\n`, { append: true });
    const csv = await pctcp("export", `${dir}/a.jsonl`, `${dir}/b.jsonl`);
    assertEquals(csv.code, 3);
    assertStringIncludes(csv.stderr, `${dir}/b.jsonl:3: skipped: id:`);
    assertEquals(csv.stdout.trim().split("\n").length, 5); // header + 4 records
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stats and report read through the schema: a wrong type is named by file, line and field", async () => {
  const { pctcp } = await import("./_cli.ts");
  const dir = await Deno.makeTempDir();
  try {
    const bad = sampleRecord();
    (bad.phases_ms as Record<string, unknown>).last_byte = "12";
    const file = `${dir}/w.jsonl`;
    await Deno.writeTextFile(file, `${JSON.stringify(sampleRecord())}\n${JSON.stringify(bad)}\n`);
    const s = await pctcp("stats", file, "--format", "json");
    assertStringIncludes(s.stderr, `${file}:2: skipped: phases_ms.last_byte: expected`);
    assert(!/TypeError|at file:/.test(s.stderr), s.stderr);
    // report (lib/report, helper E's) reads through the same reader: no crash, the skip said.
    const r = await pctcp("report", file, "--out", `${dir}/out`);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(
      await Deno.readTextFile(`${dir}/out/report.html`),
      "1 malformed lines skipped",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
