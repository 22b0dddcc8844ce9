import { assert, assertEquals, assertStringIncludes, assertThrows } from "./_assert.ts";
import { Fuzz } from "./_fuzz.ts";
import { fromOnionPerf, toOnionPerf } from "../lib/report/onionperf.ts";
import {
  asciiCdf,
  binTimeSeries,
  cdfSpec,
  ecdf,
  renderSvg,
  svgToPng,
} from "../lib/report/plots.ts";
import type { MeasureRecord } from "../lib/measure/record.ts";
import { pctcp } from "./_cli.ts";

function rec(i: number, over: Partial<MeasureRecord> = {}): MeasureRecord {
  const fb = 10 + (i % 7), lb = 100 + (i % 13) * 3;
  return {
    v: 1,
    run: "r-1",
    id: i,
    label: i % 2 ? "web" : "bulk",
    transport: i % 3 ? "tor" : "pctcp",
    url: "http://127.0.0.1:1/bytes/51200",
    size: 51200,
    start: new Date(Date.UTC(2026, 10, 24, 0, 0, i)).toISOString(),
    phases_ms: { tcp: 0.2, socks: 2, request: 2.1, first_byte: fb, last_byte: lb },
    progress_ms: { "10": fb, "50": (fb + lb) / 2, "100": lb },
    marks_ms: { "10240": fb, "51200": lb },
    bytes: 51200,
    status: 200,
    sha256: null,
    sha256_ok: true,
    circuit: { id: String(i % 4), path: ["relay1", "relay2", "relay3"], build_ms: 5 },
    source_port: 40000 + i,
    outcome: i % 10 === 0 ? "timeout" : "ok",
    error: i % 10 === 0 ? "no answer" : null,
    ...over,
  };
}

Deno.test("plots render to SVG and PNG without a browser; the ASCII CDF has a row per decile", async () => {
  const svg = await renderSvg(
    cdfSpec("t", "ms", [{ name: "a", values: [1, 2, 3, 4] }, { name: "b", values: [2, 4, 6] }]),
  );
  assertStringIncludes(svg, "<svg");
  assertStringIncludes(svg, "cumulative fraction");
  const png = (await svgToPng(svg, 300))!;
  assertEquals(Array.from(png.subarray(1, 4)), [0x50, 0x4e, 0x47]);
  assertEquals(ecdf([3, 1, 2]).at(-1), { x: 3, p: 1 });
  const a = asciiCdf("x", [{ name: "a", values: [1, 2, 3] }]);
  assertEquals(a.split("\n").filter((l) => /^\d\.\d \|/.test(l)).length, 10);
});

Deno.test("export csv always has the error class; export onionperf, import and report a folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/runs.jsonl`;
    await Deno.writeTextFile(
      file,
      Array.from({ length: 40 }, (_, i) => JSON.stringify(rec(i + 1))).join("\n") + "\n{bad\n",
    );
    const csv = await pctcp("export", file);
    assertEquals(csv.code, 3, csv.stderr); // partial: one line skipped (docs/cli.md)
    const lines = csv.stdout.trim().split("\n");
    assertEquals(lines.length, 41);
    assert(lines[0]!.endsWith("outcome,error"));
    assert(lines.some((l) => l.includes(",timeout,no answer")));
    assertStringIncludes(csv.stderr, `${file}:41: skipped`);
    const op = await pctcp("export", file, "--format", "onionperf", "--out", `${dir}/op.json`);
    assertEquals(op.code, 3, op.stderr);
    const imp = await pctcp(
      "import",
      "onionperf",
      `${dir}/op.json`,
      "--out",
      `${dir}/imported.jsonl`,
    );
    assertEquals(imp.code, 0, imp.stderr);
    assertEquals(JSON.parse(imp.stdout).imported, 40);
    const rep = await pctcp("report", dir);
    assertEquals(rep.code, 0, rep.stderr);
    // The report goes to DIR-report: the records folder is only read.
    const html = await Deno.readTextFile(`${dir}-report/report.html`);
    assert((html.match(/<svg/g) ?? []).length >= 4, "CDFs, box plot and time series");
    for (
      const f of ["cdf-web-download.png", "box-download-by-size.png", "timeseries-download.svg"]
    ) {
      assert((await Deno.stat(`${dir}-report/${f}`)).size > 0, f);
      assert(!await Deno.stat(`${dir}/${f}`).then(() => true, () => false), `${f} not in DIR`);
    }
    await Deno.remove(`${dir}-report`, { recursive: true });
    const md = await pctcp("stats", file, "--format", "markdown");
    assertStringIncludes(md.stdout, "| label | transport |");
    const filtered = await pctcp("stats", file, "--format", "json", "--outcome", "timeout");
    const rows = JSON.parse(filtered.stdout);
    assert(rows.every((r: { ok: number }) => r.ok === 0));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report over a glob of daily files: one CDF per arm, a time series of both, the paired comparison", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/daily`);
    let id = 0;
    for (const day of [24, 25, 26]) {
      const lines: string[] = [];
      for (let block = 0; block < 20; block++) {
        for (const arm of ["tor", "pctcp"]) {
          id++;
          const lb = (arm === "pctcp" ? 200 : 300) + (id % 17) * 5;
          lines.push(JSON.stringify(rec(id, {
            label: "web",
            run: `r-202611${day}`,
            start: new Date(Date.UTC(2026, 10, day, 1, block, arm === "tor" ? 0 : 30))
              .toISOString(),
            phases_ms: { first_byte: lb / 4, last_byte: lb },
            outcome: arm === "pctcp" && block === 3 ? "timeout" : "ok",
            error: arm === "pctcp" && block === 3 ? "no answer within 2000 ms" : null,
            arm,
            arm_block: block,
            worker: 0,
          })));
        }
      }
      await Deno.writeTextFile(`${dir}/daily/measure-202611${day}.jsonl`, lines.join("\n") + "\n");
    }
    const out = `${dir}/report`;
    const r = await pctcp(
      "report",
      `${dir}/daily/measure-*.jsonl`,
      "--out",
      out,
      "--baseline",
      "tor",
    );
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim(), `${out}/report.html`);
    const html = await Deno.readTextFile(`${out}/report.html`);
    const has = (text: string, part: string) => assert(text.includes(part), `missing: ${part}`);
    has(html, "120 records from 3 file(s)");
    has(html, "web: pctcp against tor, paired by time block");
    // Three blocks lost their pctcp fetch to a timeout: left out of the pairing, said so.
    has(html, "57 paired blocks (3 unpaired left out)");
    has(html, "pctcp: 60 fetches, 57 ok, 3 timed out");
    const cdfSvg = await Deno.readTextFile(`${out}/cdf-web-download.svg`);
    has(cdfSvg, "pctcp (n=57)");
    has(cdfSvg, "tor (n=60)");
    const ts = await Deno.readTextFile(`${out}/timeseries-download.svg`);
    has(ts, "web/pctcp");
    has(ts, "web/tor");
    // A folder is not a glob: without --out, files need a folder.
    const bad = await pctcp("report", `${dir}/daily/measure-20261124.jsonl`);
    assertEquals(bad.code, 2);
    const none = await pctcp("report", `${dir}/daily/weekly-*.jsonl`, "--out", out);
    assertEquals(none.code, 1);
    assertStringIncludes(none.stderr, "no file matches");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("binTimeSeries gives per group and bin the median of successes and the failures", () => {
  const pts = Array.from({ length: 400 }, (_, i) => ({
    time: new Date(Date.UTC(2026, 10, 24) + i * 60_000).toISOString(),
    value: i % 2 ? 100 : 300,
    group: i % 2 ? "a" : "b",
    ok: i % 10 !== 0,
  }));
  const bins = binTimeSeries(pts, 10);
  assert(bins.length >= 18 && bins.length <= 22, `${bins.length} bins`);
  assert(bins.filter((b) => b.group === "a").every((b) => b.value === 100));
  assertEquals(bins.reduce((a, b) => a + b.failed, 0), 40);
  assertEquals(bins.reduce((a, b) => a + b.n, 0), 360);
});

// A measurement host as OnionPerf 3.1 writes it, after its schema (schema/onionperf-3.1.json,
// tpo/metrics/onionperf; read from the hiromipaw/onionperf mirror): counts and microsecond
// times as strings in byte_info and time_info ("-1": step not reached), elapsed_seconds only
// for the payload marks, no circuit_id on tgen streams, circuit ids as integers. The values
// are made up; the shape is the schema's.
const OP31_HOST = {
  measurement_ip: "192.0.2.1",
  tgen: {
    streams: {
      "7:op-ab:localhost:21:op-ab": {
        byte_info: {
          "payload-bytes-recv": "51200",
          "payload-bytes-send": "0",
          "payload-progress-recv": "100.0%",
          "payload-progress-send": "100.0%",
          "total-bytes-recv": "51438",
          "total-bytes-send": "381",
        },
        elapsed_seconds: {
          payload_bytes_recv: { "10240": 1.0, "51200": 1.41 },
          payload_progress_recv: { "0.0": 0.912, "0.5": 1.1, "1.0": 1.41 },
        },
        is_complete: true,
        is_error: false,
        is_success: true,
        stream_id: "7:op-ab:localhost:21:op-ab",
        stream_info: {
          error: "NONE",
          id: "7",
          name: "op-ab",
          peername: "localhost",
          recvsize: "51200",
          recvstate: "RECV_SUCCESS",
          sendsize: "0",
          sendstate: "SEND_SUCCESS",
          vertexid: "stream",
        },
        time_info: {
          "created-ts": "5487412",
          "now-ts": "6897412",
          "usecs-to-checksum-recv": "1410321",
          "usecs-to-checksum-send": "459321",
          "usecs-to-command": "459100",
          "usecs-to-first-byte-recv": "912000",
          "usecs-to-first-byte-send": "-1",
          "usecs-to-last-byte-recv": "1410000",
          "usecs-to-last-byte-send": "-1",
          "usecs-to-proxy-choice": "151",
          "usecs-to-proxy-init": "327",
          "usecs-to-proxy-request": "461",
          "usecs-to-proxy-response": "459000",
          "usecs-to-response": "912000",
          "usecs-to-socket-connect": "120",
          "usecs-to-socket-create": "40",
        },
        transport_info: {
          error: "NONE",
          fd: "12",
          local: "localhost:127.0.0.1:21",
          proxy: "localhost:127.0.0.1:9050",
          remote: "op-ab:192.0.2.1:8080",
          state: "SUCCESS_EOF",
        },
        unix_ts_end: 1732406401.66,
        unix_ts_start: 1732406400.25,
      },
    },
  },
  tor: {
    circuits: {
      "12": {
        circuit_id: 12,
        elapsed_seconds: [["GUARD_WAIT", 0.1], ["BUILT", 0.5]],
        path: [["$0000000000000000000000000000000000000001~relay1", 0.2]],
        buildtime_seconds: 0.5,
        unix_ts_start: 1732406399.0,
        unix_ts_end: 1732406460.0,
        filtered_out: false,
      },
    },
    streams: {},
  },
};

Deno.test("fromOnionPerf reads a stream as OnionPerf 3.1 writes it (strings in byte_info and time_info)", () => {
  const [r, ...rest] = fromOnionPerf({
    type: "onionperf",
    version: "3.1",
    data: { "op-ab": OP31_HOST },
  });
  assertEquals(rest.length, 0);
  assertEquals(r!.phases_ms, {
    tcp: 0.327,
    socks: 459,
    request: 459.1,
    first_byte: 912,
    last_byte: 1410,
  });
  assertEquals(r!.progress_ms, { "50": 1100, "100": 1410 });
  assertEquals(r!.marks_ms, { "10240": 1000, "51200": 1410 });
  assertEquals([r!.bytes, r!.size, r!.outcome, r!.transport], [51438, 51200, "ok", "op-ab"]);
  assertEquals(r!.start, "2024-11-24T00:00:00.250Z");
  assertEquals(r!.circuit, null); // tgen streams do not name their circuit in 3.1
});

// OnionPerf import fuzz: mutants of a parsed analysis (not of its JSON text), checked against
// a declarative schema of what fromOnionPerf reads. A mutant the schema finds valid must be
// accepted, as sane records (and, when only an unread field changed, as the same records);
// one it finds invalid must be refused with a SyntaxError naming the bad field. No mutant is
// tolerated either way.
type Schema =
  | { leaf: (v: unknown) => boolean }
  | { fields: Record<string, [Schema, "required" | "optional"]> }
  | { each: Schema; keys?: (k: string) => boolean }
  | { items: Schema };

const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const secs = (max: number) => (v: unknown) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= max;
const elapsed: Schema = { leaf: secs(86_400) };
const str: Schema = { leaf: (v) => typeof v === "string" };
const count: Schema = {
  leaf: (v) =>
    (typeof v === "string" && /^\d{1,15}$/.test(v)) ||
    (Number.isSafeInteger(v) && (v as number) >= 0),
};
const usecs: Schema = {
  leaf: (v) => v === "-1" || v === -1 || (count.leaf(v) && Number(v) <= 86_400e6),
};
const idLike: Schema = { leaf: (v) => typeof v === "string" || Number.isSafeInteger(v) };
const opt = (s: Schema): [Schema, "optional"] => [s, "optional"];
const req = (s: Schema): [Schema, "required"] => [s, "required"];
const CIRCUIT: Schema = {
  fields: {
    circuit_id: opt(idLike),
    path: req({ items: { leaf: (v) => Array.isArray(v) && typeof v[0] === "string" } }),
    buildtime_seconds: opt({ leaf: (v) => v === null || secs(86_400)(v) }),
  },
};
const ONIONPERF: Schema = {
  fields: {
    type: req({ leaf: (v) => v === "onionperf" }),
    data: req({
      each: {
        fields: {
          tor: opt({
            fields: {
              // Only the circuits a stream names are read (checked in importProblems): OnionPerf
              // writes failed circuits without a path.
              circuits: opt({ each: { leaf: () => true } }),
            },
          }),
          tgen: opt({
            fields: {
              streams: opt({
                each: {
                  fields: {
                    elapsed_seconds: opt({
                      fields: {
                        proxy_init: opt(elapsed),
                        proxy_response: opt(elapsed),
                        command: opt(elapsed),
                        first_byte_recv: opt(elapsed),
                        last_byte_recv: opt(elapsed),
                        payload_progress_recv: opt({
                          each: elapsed,
                          keys: (k) => /^\d+(\.\d+)?$/.test(k) && Number(k) <= 1,
                        }),
                        payload_bytes_recv: opt({
                          each: elapsed,
                          keys: (k) => /^\d{1,15}$/.test(k),
                        }),
                      },
                    }),
                    is_success: req({ leaf: (v) => typeof v === "boolean" }),
                    unix_ts_start: req({ leaf: secs(8.64e12) }),
                    stream_info: opt({
                      fields: {
                        error: opt(str),
                        label: opt(str),
                        url: opt(str),
                        transport: opt({ leaf: (v) => v === null || typeof v === "string" }),
                        recvsize: opt(count),
                      },
                    }),
                    byte_info: opt({
                      fields: { total_bytes_recv: opt(count), "total-bytes-recv": opt(count) },
                    }),
                    time_info: opt({
                      fields: {
                        "usecs-to-proxy-init": opt(usecs),
                        "usecs-to-proxy-response": opt(usecs),
                        "usecs-to-command": opt(usecs),
                        "usecs-to-first-byte-recv": opt(usecs),
                        "usecs-to-last-byte-recv": opt(usecs),
                      },
                    }),
                    circuit_id: opt(idLike),
                  },
                },
              }),
            },
          }),
        },
      },
    }),
  },
};

type Seg = string | number;
const showPath = (p: Seg[]) =>
  p.map((s, i) => typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`).join("");

/** Every place `v` breaks schema `s`, as paths (a key problem as "<path> keys"). */
function problems(s: Schema, v: unknown, at: Seg[] = []): string[] {
  if ("leaf" in s) return s.leaf(v) ? [] : [showPath(at)];
  if ("items" in s) {
    if (!Array.isArray(v)) return [showPath(at)];
    return v.flatMap((x, i) => problems(s.items, x, [...at, i]));
  }
  if (!isObj(v)) return [showPath(at)];
  const o = v as Record<string, unknown>;
  if ("each" in s) {
    return Object.entries(o).flatMap(([k, x]) => [
      ...(s.keys && !s.keys(k) ? [`${showPath(at)} keys`] : []),
      ...problems(s.each, x, [...at, k]),
    ]);
  }
  return Object.entries(s.fields).flatMap(([k, [f, need]]) =>
    o[k] === undefined
      ? (need === "required" ? [showPath([...at, k])] : [])
      : problems(f, o[k], [...at, k])
  );
}

/** The schema's problems, and those of every circuit a stream names. */
function importProblems(doc: unknown): string[] {
  const bad = problems(ONIONPERF, doc);
  if (bad.length) return bad;
  const data = (doc as { data: Record<string, Record<string, Record<string, unknown>>> }).data;
  for (const [nick, host] of Object.entries(data)) {
    const circuits = (host.tor?.circuits ?? {}) as Record<string, unknown>;
    const streams = (host.tgen?.streams ?? {}) as Record<string, { circuit_id?: unknown }>;
    for (const st of Object.values(streams)) {
      const k = st.circuit_id === undefined ? undefined : String(st.circuit_id);
      if (k !== undefined && Object.hasOwn(circuits, k)) {
        bad.push(...problems(CIRCUIT, circuits[k], ["data", nick, "tor", "circuits", k]));
      }
    }
  }
  return bad;
}

/** True when the schema reads the field at `p` (false: fromOnionPerf ignores it). */
function schemaReads(s: Schema, p: Seg[]): boolean {
  if (p.length === 0) return true;
  if ("leaf" in s) return true; // inside a leaf the leaf's test looks at it
  if ("items" in s) return schemaReads(s.items, p.slice(1));
  if ("each" in s) return schemaReads(s.each, p.slice(1));
  const f = s.fields[String(p[0])];
  return f !== undefined && schemaReads(f[0], p.slice(1));
}

/** Each imported record is well-formed: finite non-negative times, real dates, counts. */
function assertSaneRecords(recs: MeasureRecord[]): void {
  for (const r of recs) {
    const times = [
      ...Object.values(r.phases_ms),
      ...Object.values(r.progress_ms),
      ...Object.values(r.marks_ms ?? {}),
      ...(r.circuit?.build_ms != null ? [r.circuit.build_ms] : []),
    ];
    for (const t of times) {
      assert(typeof t === "number" && Number.isFinite(t) && t >= 0, `time ${t}`);
    }
    assert(!Number.isNaN(Date.parse(r.start)), `start ${r.start}`);
    assert(Number.isSafeInteger(r.bytes) && r.bytes >= 0, `bytes ${r.bytes}`);
    assert(r.size === null || (Number.isSafeInteger(r.size) && r.size >= 0), `size ${r.size}`);
    for (const x of [r.label, r.url, r.outcome]) assert(typeof x === "string", `string ${x}`);
    assert(r.transport === null || typeof r.transport === "string", "transport");
    assert(r.circuit === null || r.circuit.path.every((h) => typeof h === "string"), "path");
  }
}

/** Paths to every value inside `v` (objects and arrays), outermost first. */
function allPaths(v: unknown, at: Seg[] = []): Seg[][] {
  const out: Seg[][] = at.length ? [at] : [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...allPaths(x, [...at, i])));
  else if (isObj(v)) {
    for (const [k, x] of Object.entries(v as object)) out.push(...allPaths(x, [...at, k]));
  }
  return out;
}

Deno.test("fuzz: fromOnionPerf accepts exactly the structural mutants that are still valid, and names the bad field of the rest", () => {
  const base = JSON.parse(JSON.stringify(toOnionPerf(
    Array.from({ length: 6 }, (_, i) => rec(i + 1)),
    "host1",
  )));
  base.data["op-ab"] = structuredClone(OP31_HOST);
  assertEquals(importProblems(base), [], "the base document is valid");
  const baseRecords = fromOnionPerf(base);
  assertEquals(baseRecords.length, 7);
  const paths = allPaths(base);
  const values: unknown[] = [
    "x",
    "12",
    null,
    true,
    false,
    [],
    {},
    -1,
    -1e-9,
    0,
    1.5,
    86_400,
    86_401,
    1e12,
    2 ** 53,
    1e308,
    NaN,
    Infinity,
    -Infinity,
  ];
  const f = new Fuzz(0x0b1e);
  const tally = { accepted: 0, rejected: 0, unreadSame: 0 };
  for (let i = 0; i < 3000; i++) {
    const doc = structuredClone(base);
    const p = paths[f.int(0, paths.length - 1)]!;
    const parent = p.slice(0, -1).reduce((o: Record<Seg, unknown>, s) => o[s] as never, doc);
    const key = p[p.length - 1]!;
    const old = parent[key];
    let what: string;
    switch (f.int(0, 4)) {
      case 0:
        delete parent[key];
        what = "deleted";
        break;
      case 1: // wrong nesting: wrapped in an array or object, or an array unwrapped
        parent[key] = f.random() < 0.5 ? [old] : Array.isArray(old) ? old[0] : { v: old };
        what = "re-nested";
        break;
      case 2: // a key renamed (byte marks and progress fractions are keys)
        if (Array.isArray(parent)) continue;
        delete parent[key];
        parent[f.pick(["x", "0", "-1", "0.55", "1.5", "2", "12345", "1e3"])] = old;
        what = "renamed";
        break;
      default:
        parent[key] = f.pick(values);
        what = `set to ${String(parent[key])}`;
    }
    const bad = importProblems(doc);
    const where = `mutant ${i}: ${showPath(p)} ${what}`;
    let recs: MeasureRecord[];
    try {
      recs = fromOnionPerf(doc);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw new Error(`${where}: ${e} (not a SyntaxError)`);
      assert(bad.length > 0, `${where}: a valid document was refused: ${e.message}`);
      assert(
        bad.some((b) =>
          b === "type" ? e.message.includes("not an OnionPerf") : e.message.includes(`${b} `)
        ),
        `${where}: the error ${JSON.stringify(e.message)} names none of ${bad.join(", ")}`,
      );
      tally.rejected++;
      continue;
    }
    assertEquals(bad, [], `${where}: accepted, yet invalid at`);
    assertSaneRecords(recs);
    if (!schemaReads(ONIONPERF, p) && what !== "renamed") {
      assertEquals(recs, baseRecords, `${where}: an unread field changed the records`);
      tally.unreadSame++;
    }
    tally.accepted++;
  }
  console.log(`fromOnionPerf fuzz: ${JSON.stringify(tally)}`);
  // Both verdicts happen often enough to mean something.
  assert(tally.accepted > 300 && tally.rejected > 300, JSON.stringify(tally));
  assert(tally.unreadSame > 50, JSON.stringify(tally));
  // Whole-document mutants.
  for (const doc of [null, [], "onionperf", 5, { type: "onionperf" }, { type: "x", data: {} }]) {
    assertThrows(() => fromOnionPerf(doc), SyntaxError);
  }
  assertEquals(fromOnionPerf({ type: "onionperf", data: {} }), []);
});

Deno.test("toOnionPerf writes OnionPerf 3.1's layout, and fromOnionPerf reads back the same times, bytes, outcomes and circuits", () => {
  const recs = Array.from({ length: 30 }, (_, i) => rec(i + 1));
  // A failure cut short (no last byte, fewer bytes than asked) on a circuit of unknown build
  // time, and one with no circuit and no size.
  recs.push(rec(31, {
    outcome: "reset",
    phases_ms: { tcp: 0.25, socks: 3.004, request: 3.1, first_byte: 17.321 },
    progress_ms: { "10": 17.321 },
    marks_ms: { "10240": 17.321 },
    bytes: 12345,
    circuit: { id: "77", path: ["a", "b", "c"], build_ms: null },
  }));
  recs.push(rec(32, { circuit: null, size: null, phases_ms: { tcp: 1.5 }, progress_ms: {} }));
  const doc = toOnionPerf(recs, "host1");
  assertEquals(doc.type, "onionperf");
  assertEquals(doc.version, "3.1");
  const streams = Object.values(doc.data.host1!.tgen.streams);
  assertEquals(streams.length, 32);
  const st0 = streams[0]!;
  // The 3.1 layout, not ours of before: strings in byte_info, time_info, recvsize.
  assertEquals(st0.byte_info["total-bytes-recv"], "51200");
  assertEquals(st0.stream_info.recvsize, "51200");
  assertEquals(
    st0.time_info["usecs-to-last-byte-recv"],
    String(recs[0]!.phases_ms.last_byte! * 1000),
  );
  assertEquals(st0.time_info["usecs-to-proxy-response"], "2000");
  assertEquals(st0.time_info["usecs-to-checksum-recv"], "-1");
  assertEquals(streams[30]!.time_info["usecs-to-last-byte-recv"], "-1");
  assertEquals(Object.keys(st0.elapsed_seconds).sort(), [
    "payload_bytes_recv",
    "payload_progress_recv",
  ]);
  assert(!("total_bytes_recv" in st0.byte_info));
  assertEquals(
    st0.elapsed_seconds.payload_progress_recv["1.0"],
    recs[0]!.phases_ms.last_byte! / 1000,
  );
  assertEquals(Object.keys(doc.data.host1!.tor.circuits).sort(), ["0", "1", "2", "3", "77"]);
  const back = fromOnionPerf(JSON.parse(JSON.stringify(doc)));
  assertEquals(back.length, 32);
  for (const [i, r] of back.entries()) {
    const want = recs[i]!;
    const at = `record ${want.id}`;
    assertEquals(r.phases_ms, want.phases_ms, at);
    assertEquals(r.progress_ms, want.progress_ms, at);
    assertEquals(r.marks_ms, want.marks_ms, at);
    assertEquals(r.bytes, want.bytes, at);
    assertEquals(r.size, want.size ?? want.bytes, at);
    assertEquals(r.start, want.start, at);
    assertEquals([r.label, r.url, r.transport], [want.label, want.url, want.transport], at);
    assertEquals(r.outcome, want.outcome, at);
    assertEquals(r.circuit, want.circuit && { ...want.circuit }, at);
  }
  assertThrows(() => fromOnionPerf({ type: "other" }), SyntaxError);
});

// What OnionPerf 3.1 requires of an analysis, transcribed from its schema
// (schema/onionperf-3.1.json of tpo/metrics/onionperf; read from the anyone-protocol/onionperf
// mirror at commit 8b09b049b30e993f6706041c7f62e1b125722b38): the "required" lists, the
// "type": "string" fields and their patterns, and the circuit's "additionalProperties": false.
const OP31_REQUIRED = {
  document: ["data", "type", "version"],
  host: ["measurement_ip", "tgen", "tor"],
  tgen: ["streams"],
  tor: ["circuits", "streams"],
  stream: [
    "byte_info",
    "is_complete",
    "is_error",
    "is_success",
    "stream_id",
    "stream_info",
    "time_info",
    "transport_info",
    "unix_ts_end",
    "unix_ts_start",
  ],
  byte_info: [
    "payload-bytes-recv",
    "payload-bytes-send",
    "payload-progress-recv",
    "payload-progress-send",
    "total-bytes-recv",
    "total-bytes-send",
  ],
  stream_info: [
    "error",
    "id",
    "name",
    "peername",
    "recvsize",
    "recvstate",
    "sendsize",
    "sendstate",
    "vertexid",
  ],
  time_info: [
    "created-ts",
    "now-ts",
    "usecs-to-checksum-recv",
    "usecs-to-checksum-send",
    "usecs-to-command",
    "usecs-to-first-byte-recv",
    "usecs-to-first-byte-send",
    "usecs-to-last-byte-recv",
    "usecs-to-last-byte-send",
    "usecs-to-proxy-choice",
    "usecs-to-proxy-init",
    "usecs-to-proxy-request",
    "usecs-to-proxy-response",
    "usecs-to-response",
    "usecs-to-socket-connect",
    "usecs-to-socket-create",
  ],
  transport_info: ["error", "fd", "local", "proxy", "remote", "state"],
  circuit: ["circuit_id", "elapsed_seconds", "unix_ts_end", "unix_ts_start"],
  /** A circuit takes no other properties than these. */
  circuitAllowed: [
    "build_quantile",
    "build_timeout",
    "cbt_set",
    "current_guards",
    "buildtime_seconds",
    "circuit_id",
    "elapsed_seconds",
    "failure_reason_local",
    "failure_reason_remote",
    "filtered_out",
    "path",
    "unix_ts_end",
    "unix_ts_start",
  ],
};

/** Every way `doc` breaks the 3.1 schema's required fields, their types and patterns. */
function op31Problems(doc: unknown): string[] {
  const bad: string[] = [];
  const obj = (v: unknown, at: string): Record<string, unknown> => {
    if (!isObj(v)) bad.push(`${at}: not an object`);
    return isObj(v) ? v as Record<string, unknown> : {};
  };
  const need = (o: Record<string, unknown>, keys: string[], at: string) => {
    for (const k of keys) if (!(k in o)) bad.push(`${at}.${k}: missing`);
  };
  const strings = (o: Record<string, unknown>, keys: string[], at: string, re?: RegExp) => {
    for (const k of keys) {
      if (k in o && (typeof o[k] !== "string" || (re && !re.test(o[k] as string)))) {
        bad.push(`${at}.${k}: ${JSON.stringify(o[k])} is not a string${re ? ` like ${re}` : ""}`);
      }
    }
  };
  const num = (v: unknown, at: string) => {
    if (typeof v !== "number" || !Number.isFinite(v)) bad.push(`${at}: not a number`);
  };
  const d = obj(doc, "document");
  need(d, OP31_REQUIRED.document, "document");
  if (d.type !== "onionperf") bad.push("type: not onionperf");
  strings(d, ["version"], "document", /^3\.[1-9]+$/);
  for (const [nick, hv] of Object.entries(obj(d.data, "data"))) {
    const hp = `data.${nick}`;
    if (!/^[A-Za-z0-9-]+$/.test(nick)) bad.push(`${hp}: source name not ^[A-Za-z0-9-]+$`);
    const h = obj(hv, hp);
    need(h, OP31_REQUIRED.host, hp);
    strings(h, ["measurement_ip"], hp);
    const tgen = obj(h.tgen, `${hp}.tgen`);
    need(tgen, OP31_REQUIRED.tgen, `${hp}.tgen`);
    for (const [sid, sv] of Object.entries(obj(tgen.streams, `${hp}.tgen.streams`))) {
      const sp = `${hp}.tgen.streams.${sid}`;
      const st = obj(sv, sp);
      need(st, OP31_REQUIRED.stream, sp);
      for (const k of ["is_complete", "is_error", "is_success"]) {
        if (typeof st[k] !== "boolean") bad.push(`${sp}.${k}: not a boolean`);
      }
      strings(st, ["stream_id"], sp);
      num(st.unix_ts_start, `${sp}.unix_ts_start`);
      num(st.unix_ts_end, `${sp}.unix_ts_end`);
      const bi = obj(st.byte_info, `${sp}.byte_info`);
      need(bi, OP31_REQUIRED.byte_info, `${sp}.byte_info`);
      const counts = OP31_REQUIRED.byte_info.filter((k) => !k.includes("progress"));
      strings(bi, counts, `${sp}.byte_info`, /^[0-9]+$/);
      strings(
        bi,
        ["payload-progress-recv", "payload-progress-send"],
        `${sp}.byte_info`,
        /^[0-9]+\.[0-9]+%$/,
      );
      for (const part of ["stream_info", "time_info", "transport_info"] as const) {
        const o = obj(st[part], `${sp}.${part}`);
        need(o, OP31_REQUIRED[part], `${sp}.${part}`);
        strings(o, OP31_REQUIRED[part], `${sp}.${part}`);
      }
      const es = st.elapsed_seconds === undefined
        ? {}
        : obj(st.elapsed_seconds, `${sp}.elapsed_seconds`);
      for (
        const [field, keyRe] of [["payload_progress_recv", /^[01]\.[0-9]$/], [
          "payload_bytes_recv",
          /^[0-9]+$/,
        ]] as const
      ) {
        for (const [k, v] of Object.entries(es[field] === undefined ? {} : obj(es[field], field))) {
          if (!keyRe.test(k)) bad.push(`${sp}.elapsed_seconds.${field}: key ${k} not ${keyRe}`);
          num(v, `${sp}.elapsed_seconds.${field}.${k}`);
        }
      }
    }
    const tor = obj(h.tor, `${hp}.tor`);
    need(tor, OP31_REQUIRED.tor, `${hp}.tor`);
    obj(tor.streams, `${hp}.tor.streams`);
    for (const [cid, cv] of Object.entries(obj(tor.circuits, `${hp}.tor.circuits`))) {
      const cp = `${hp}.tor.circuits.${cid}`;
      if (!/^[0-9]+$/.test(cid)) bad.push(`${cp}: circuit key not ^[0-9]+$`);
      const c = obj(cv, cp);
      need(c, OP31_REQUIRED.circuit, cp);
      for (const k of Object.keys(c)) {
        if (!OP31_REQUIRED.circuitAllowed.includes(k)) bad.push(`${cp}.${k}: not allowed`);
      }
      if (!Number.isSafeInteger(c.circuit_id)) bad.push(`${cp}.circuit_id: not an integer`);
      num(c.unix_ts_start, `${cp}.unix_ts_start`);
      num(c.unix_ts_end, `${cp}.unix_ts_end`);
      if (c.buildtime_seconds !== undefined) num(c.buildtime_seconds, `${cp}.buildtime_seconds`);
      for (const k of ["elapsed_seconds", "path"]) {
        if (c[k] === undefined) continue;
        if (!Array.isArray(c[k])) bad.push(`${cp}.${k}: not an array`);
        else {
          for (const [i, e] of (c[k] as unknown[]).entries()) {
            if (
              !Array.isArray(e) || typeof e[0] !== "string" ||
              (e.length > 1 && typeof e[1] !== "number")
            ) bad.push(`${cp}.${k}[${i}]: not a [string, number] pair`);
          }
        }
      }
    }
  }
  return bad;
}

Deno.test("toOnionPerf's document has every field OnionPerf 3.1's schema requires, with its types", () => {
  const recs = Array.from({ length: 12 }, (_, i) => rec(i + 1));
  recs.push(rec(13, { circuit: { id: "c-x", path: ["a"], build_ms: null }, size: null }));
  recs.push(rec(14, { run: "r-2", phases_ms: {}, progress_ms: { "25": 3 }, outcome: "socks" }));
  const doc = JSON.parse(JSON.stringify(toOnionPerf(recs, "op-test")));
  assertEquals(op31Problems(doc), []);
  // The check itself finds what the schema forbids: the layout we used to write, and a
  // circuit keyed by our "run:id".
  const old = structuredClone(doc);
  const st = Object.values(old.data["op-test"].tgen.streams)[0] as {
    byte_info: unknown;
    stream_info: Record<string, unknown>;
    time_info?: unknown;
  };
  st.byte_info = { total_bytes_recv: 51200, total_bytes_send: 0 };
  st.stream_info.recvsize = 51200;
  delete st.time_info;
  old.data["op-test"].tor.circuits["r-1:1"] = { circuit_id: "r-1:1", path: [], foo: 1 };
  const found = op31Problems(old);
  for (
    const want of [
      "byte_info.total-bytes-recv: missing",
      "stream_info.recvsize: 51200 is not a string",
      "time_info: missing",
      "circuits.r-1:1: circuit key not",
      "circuits.r-1:1.foo: not allowed",
      "circuits.r-1:1.circuit_id: not an integer",
      "circuits.r-1:1.elapsed_seconds: missing",
    ]
  ) assert(found.some((b) => b.includes(want)), `${want} in ${found.join("; ")}`);
  // OnionPerf's own layout (the 3.1 host above) passes the same check.
  assertEquals(
    op31Problems({ type: "onionperf", version: "3.1", data: { "op-ab": OP31_HOST } }),
    [],
  );
});
