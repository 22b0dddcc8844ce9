// `pctcp schedule`: crontab lines (pure), and one real run by Debian's cron daemon (root
// only; shown as skipped elsewhere): a one-minute entry appends records to a daily file, and
// `schedule remove` leaves the crontab byte-identical.
import { assert, assertEquals, assertStringIncludes, assertThrows, skipUnless } from "./_assert.ts";
import {
  cronEscape,
  everyToCron,
  makeEntry,
  parseEntries,
  withEntry,
  withoutEntries,
} from "../lib/schedule/crontab.ts";
import { expandDatePattern } from "../lib/schedule/date_pattern.ts";
import { expandRecordFiles } from "../lib/stats/load.ts";
import { instrument, pctcp } from "./_cli.ts";

Deno.test("everyToCron turns periods into cron fields and refuses uneven ones", () => {
  assertEquals(everyToCron("1m"), "* * * * *");
  assertEquals(everyToCron("5m"), "*/5 * * * *");
  assertEquals(everyToCron("60m"), "0 * * * *");
  assertEquals(everyToCron("6h"), "0 */6 * * *");
  assertEquals(everyToCron("1d"), "0 0 * * *");
  assertThrows(() => everyToCron("7m"), RangeError, "does not divide");
  assertThrows(() => everyToCron("5 minutes"), SyntaxError);
});

Deno.test("makeEntry writes one tagged line with absolute paths and cron-escaped %", () => {
  const e = makeEntry({
    name: "daily",
    cron: "*/5 * * * *",
    argv: ["/usr/bin/deno", "run", "-A", "/p/cli/main.ts", "measure", "--out", "r-%Y-%m-%d.jsonl"],
    cwd: "/data dir",
    log: "/data dir/x.log",
  });
  assertEquals(
    e.line,
    "*/5 * * * * cd '/data dir' && /usr/bin/deno run -A /p/cli/main.ts measure --out " +
      "'r-\\%Y-\\%m-\\%d.jsonl' >>'/data dir/x.log' 2>&1 # pctcp-schedule daily",
  );
  assertEquals(cronEscape("a\\b%"), "a\\\\b\\%");
  assertEquals(parseEntries(`# a comment\n${e.line}\n0 1 * * * other\n`).map((x) => x.name), [
    "daily",
  ]);
  assertThrows(
    () => makeEntry({ name: "x y", cron: "* * * * *", argv: [], cwd: "/", log: "/l" }),
    SyntaxError,
  );
  assertThrows(
    () => makeEntry({ name: "x", cron: "* * * * *", argv: [], cwd: "rel", log: "/l" }),
    TypeError,
  );
});

Deno.test("withEntry is idempotent by name and withoutEntries gives back the exact text", () => {
  const before = "# mine\nMAILTO=x\n0 3 * * * backup\n";
  const e = makeEntry({ name: "a", cron: "* * * * *", argv: ["/bin/true"], cwd: "/", log: "/l" });
  const once = withEntry(before, e);
  assertEquals(withEntry(once, e), once, "adding twice changes nothing");
  const moved = makeEntry({
    name: "a",
    cron: "*/2 * * * *",
    argv: ["/bin/true"],
    cwd: "/",
    log: "/l",
  });
  assertEquals(parseEntries(withEntry(once, moved)).map((x) => x.cron), ["*/2 * * * *"]);
  assertEquals(withoutEntries(once, ["a"]), before);
  assertEquals(withoutEntries(withEntry("", e), null), "");
  assertEquals(withoutEntries(once, ["b"]), once);
});

Deno.test("expandDatePattern fills UTC date fields whatever the time zone and refuses unknown ones", async () => {
  const d = new Date(Date.UTC(2026, 0, 5, 7, 8, 9));
  assertEquals(expandDatePattern("r-%Y-%m-%d_%H%M%S-%%.jsonl", d), "r-2026-01-05_070809-%.jsonl");
  // Late on 31 December in UTC is already 1 January in Tokyo: the file is still the UTC day's.
  const late = "2026-12-31T23:30:00Z";
  const other = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { expandDatePattern } from "${
        new URL("../lib/schedule/date_pattern.ts", import.meta.url).href
      }"; console.log(expandDatePattern("%Y-%m-%d", new Date("${late}")), new Date("${late}").getDate());`,
    ],
    env: { TZ: "Asia/Tokyo" },
    stdout: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(other.stdout).trim(), "2026-12-31 1");
  assertThrows(() => expandDatePattern("r-%q.jsonl", d), SyntaxError, "%q");
});

Deno.test("expandRecordFiles reads the daily files a pattern names, sorted, and says when none match", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const n of ["r-2026-01-02.jsonl", "r-2026-01-01.jsonl", "r-2026-01-01.jsonl.runs.jsonl"]) {
      await Deno.writeTextFile(`${dir}/${n}`, "");
    }
    assertEquals(await expandRecordFiles([`${dir}/r-*.jsonl`, "plain.jsonl"]), [
      `${dir}/r-2026-01-01.jsonl`,
      `${dir}/r-2026-01-02.jsonl`,
      "plain.jsonl",
    ]);
    let msg = "";
    await expandRecordFiles([`${dir}/none-*.jsonl`]).catch((e) => msg = e.message);
    assertStringIncludes(msg, "no file matches");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("schedule add --print changes nothing; usage errors exit 2", async () => {
  const r = await pctcp(
    "schedule",
    "add",
    "--every",
    "5m",
    "--print",
    "--",
    "measure",
    "--socks",
    "127.0.0.1:9050",
    "--url",
    "http://127.0.0.1:1/bytes/1KiB",
    "--out",
    "r-%Y-%m-%d.jsonl",
  );
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "*/5 * * * * cd ");
  assertStringIncludes(r.stdout, "r-\\%Y-\\%m-\\%d.jsonl");
  assertStringIncludes(r.stdout, `${Deno.execPath()} run -A `);
  const preset = await pctcp(
    "schedule",
    "add",
    "--preset",
    "onionperf",
    "--socks",
    "127.0.0.1:9050",
    "--server",
    "http://127.0.0.1:8080",
    "--print",
  );
  assertEquals(preset.code, 0, preset.stderr);
  // OnionPerf's model: one 5 MiB stream every 5 minutes, timeout 270 s (its TorperfModel).
  assertStringIncludes(preset.stdout, "/bytes/5MiB");
  assert(!preset.stdout.includes("/bytes/50KiB"), preset.stdout);
  assertStringIncludes(preset.stdout, "--timeout 270s");
  assertStringIncludes(preset.stdout, "--count 1");
  assertStringIncludes(preset.stdout, "*/5 * * * *");
  assertEquals(
    (await pctcp("schedule", "add", "--every", "7m", "--", "measure", "--out", "x")).code,
    2,
  );
  assertEquals((await pctcp("schedule", "add", "--every", "5m", "--", "stats", "x")).code, 2);
});

async function crontabText(): Promise<string | null> {
  const out = await new Deno.Command("crontab", { args: ["-l"], stdout: "piped", stderr: "piped" })
    .output();
  return out.success ? new TextDecoder().decode(out.stdout) : null;
}

async function setCrontab(text: string | null): Promise<void> {
  if (text === null) {
    await new Deno.Command("crontab", { args: ["-r"], stderr: "null" }).output();
    return;
  }
  const c = new Deno.Command("crontab", { args: ["-"], stdin: "piped" }).spawn();
  const w = c.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  assert((await c.status).success, "crontab - failed");
}

const SENTINEL = "# pctcp schedule test: a line that must stay\n17 3 * * * true\n";

function cronPids(): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/comm`).trim() === "cron") {
        pids.push(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return pids;
}

const haveCron = Deno.uid() === 0 &&
  await Deno.stat("/usr/sbin/cron").then(() => true, () => false) &&
  await new Deno.Command("crontab", { args: ["-l"], stdout: "null", stderr: "null" }).output()
    .then(() => true, () => false);

Deno.test({
  name:
    "schedule add --every 1m: Debian's cron runs measure, which appends records to the day's file; remove leaves the crontab byte-identical",
  ignore: skipUnless(haveCron, "needs root and Debian's cron (apt-get install cron)"),
  sanitizeResources: false,
  async fn() {
    // root's crontab is shared by every checkout on this machine: pctcp test runs take turns
    // (a lock), and the test changes only what it added, never restoring a snapshot over
    // someone else's edits.
    const turn = await Deno.open("/tmp/pctcp-crontab-test.lock", { create: true, write: true });
    await turn.lock(true);
    const dir = await Deno.makeTempDir();
    // A crontab with a line of someone else's, which must come out exactly as it went in.
    const sentinel = (await crontabText()) === null;
    if (sentinel) await setCrontab(SENTINEL);
    const before = (await crontabText()) ?? "";
    const inst = await instrument();
    // No daemon running: start one in the foreground, ours to stop (by its pid). Checked again
    // while waiting: a daemon someone else started may go away meanwhile.
    const started: Deno.ChildProcess[] = [];
    const ensureCron = () => {
      if (cronPids().length) return;
      started.push(
        new Deno.Command("/usr/sbin/cron", { args: ["-f"], stdout: "null", stderr: "null" })
          .spawn(),
      );
    };
    const name = `test-${Deno.pid}`;
    try {
      const { socksPort } = inst;
      const serverUrl = inst.server;
      const addArgs = [
        "schedule",
        "add",
        "--every",
        "1m",
        "--name",
        name,
        "--log",
        `${dir}/cron.log`,
        "--",
        "measure",
        "--socks",
        `127.0.0.1:${socksPort}`,
        "--url",
        `${serverUrl}/bytes/10KiB`,
        "--count",
        "2",
        "--out",
        `${dir}/records-%Y-%m-%d.jsonl`,
      ];
      const add = await pctcp(...addArgs);
      assertEquals(add.code, 0, add.stderr);
      const addAgain = await pctcp(...addArgs);
      assertEquals(addAgain.code, 0, addAgain.stderr);
      const listed = JSON.parse((await pctcp("schedule", "list", "--json")).stdout);
      assertEquals(
        listed.filter((e: { name: string }) => e.name === name).length,
        1,
        "adding the same entry twice made two",
      );
      // cron notices a changed crontab by the spool's mtime in whole seconds: a write in the
      // same second as its last look (its start, or the sentinel just above) goes unseen until
      // the next change. So write the same text again a second later, and start our daemon (if
      // none runs) only after that, when it reads every crontab anyway.
      await new Promise((r) => setTimeout(r, 1100));
      await setCrontab((await crontabText()) ?? "");
      ensureCron();
      // Cron starts it at the next minute; Deno's start-up and two fetches follow.
      let records: { outcome: string; client: string }[] = [];
      let file = "";
      for (const t0 = Date.now(); Date.now() - t0 < 140_000;) {
        ensureCron();
        for (const e of Deno.readDirSync(dir)) {
          if (/^records-\d{4}-\d\d-\d\d\.jsonl$/.test(e.name)) file = e.name;
        }
        if (file) {
          const lines = (await Deno.readTextFile(`${dir}/${file}`)).trim().split("\n");
          records = lines.filter(Boolean).map((l) => JSON.parse(l));
          if (records.length >= 2) break;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      const log = await Deno.readTextFile(`${dir}/cron.log`).catch(() => "(no log)");
      assert(records.length >= 2, `cron produced ${records.length} records; log: ${log}`);
      assert(records.every((r) => r.outcome === "ok" && r.client === "raw"), log);
      assertStringIncludes(log, '"ok":2'); // measure's summary line went to the log
      const stats = await pctcp("stats", `${dir}/records-*.jsonl`, "--format", "json");
      assertEquals(stats.code, 0, stats.stderr);
      const rm = await pctcp("schedule", "remove", name);
      assertEquals(rm.code, 0, rm.stderr);
      const after = (await crontabText()) ?? "";
      assert(!parseEntries(after).some((e) => e.name === name), "the entry is still there");
      if (after !== before) {
        // Only a writer outside pctcp's tests (they take turns) can have changed it meanwhile:
        // then check that no line of before was lost, and say so.
        const lines = after.split("\n"), was = before.split("\n");
        const lost = was.filter((l) => l && !lines.includes(l));
        assertEquals(lost, [], "remove lost lines of the crontab");
        const added = lines.filter((l) => l && !was.includes(l));
        assert(
          added.length > 0 && !added.some((l) => l.includes(`pctcp-schedule ${name}`)),
          `not byte-identical, and not by another writer's lines: ${JSON.stringify(after)}`,
        );
        console.warn("schedule test: another writer changed the crontab meanwhile");
      }
    } finally {
      // Take out what this test added (its entry, the sentinel), nothing else.
      const now = await crontabText();
      if (now !== null) {
        let next = withoutEntries(now, [name]);
        if (sentinel) next = next.replace(SENTINEL, "");
        if (next !== now) await setCrontab(next.trim() === "" ? null : next);
      }
      turn.close();
      for (const c of started) {
        try {
          c.kill("SIGTERM");
        } catch { /* gone */ }
        await c.status;
      }
      await inst.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
