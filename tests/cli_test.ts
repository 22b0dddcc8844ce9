import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { buildProgram } from "../cli/main.ts";
import { VERSION } from "../lib/version.ts";
import { pctcp } from "./_cli.ts";
import { describeStop, isAlive, stopProcesses } from "../lib/network/launcher.ts";
import { timedFetch } from "../lib/measure/fetch.ts";

Deno.test("buildProgram lists every command of DESIGN.md", () => {
  const names = buildProgram().commands.map((c) => c.name());
  for (
    const want of [
      "keygen",
      "relay",
      "client",
      "serve",
      "network",
      "measure",
      "stats",
      "compare",
      "report",
      "experiment",
      "schedule",
    ]
  ) assert(names.includes(want), `missing command ${want}`);
});

Deno.test("pctcp --help exits 0 and lists the commands", async () => {
  const r = await pctcp("--help");
  assertEquals(r.code, 0);
  assertStringIncludes(r.stdout, "experiment");
  assertStringIncludes(r.stdout, "measure");
});

Deno.test("pctcp --version prints the version of deno.json", async () => {
  const r = await pctcp("--version");
  assertEquals(r.code, 0);
  assertEquals(r.stdout.trim(), VERSION);
});

Deno.test("pctcp with an unknown option exits 2 with a message", async () => {
  const r = await pctcp("--no-such-flag");
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "unknown option");
});

/** Starts `sh -c SCRIPT` detached (as `network up` starts its processes) and returns its pid. */
async function spawnOrphan(script: string): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `sh -c ${JSON.stringify(script)} >/dev/null 2>&1 </dev/null & echo $!`],
    stdout: "piped",
  }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

function inProcessTable(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("stopProcesses kills a process that ignores SIGTERM after the grace period and returns once it is gone", async () => {
  const stubborn = await spawnOrphan(`trap "" TERM; while :; do sleep 0.1; done`);
  const polite = await spawnOrphan("sleep 60");
  try {
    const r = await stopProcesses([
      { name: "stubborn", pid: stubborn, log: "" },
      { name: "polite", pid: polite, log: "" },
    ], { graceMs: 300 });
    assertEquals(r.stopped, 2);
    assertEquals(r.killed, 1);
    assertEquals(r.remaining, []);
    assert(!isAlive(stubborn) && !isAlive(polite), "a process outlived stopProcesses");
    assertStringIncludes(describeStop(r), "1 killed (SIGKILL)");
  } finally {
    for (const p of [stubborn, polite]) if (isAlive(p)) Deno.kill(p, "SIGKILL");
  }
});

Deno.test("pctcp network down returns only when no process of the network is left, and says so", async () => {
  const dir = await Deno.makeTempDir();
  let pids: number[] = [];
  try {
    const up = await pctcp("network", "up", "--dir", dir, "--json");
    assertEquals(up.code, 0, up.stderr);
    const s = JSON.parse(up.stdout);
    pids = s.processes.map((p: { pid: number }) => p.pid);
    // A transfer first: relays with live circuits are what used to linger.
    const f = await timedFetch(`${s.server}/bytes/2MiB`, {
      socksHost: "127.0.0.1",
      socksPort: Number(s.socks.split(":")[1]),
      timeoutMs: 30_000,
    });
    assertEquals(f.outcome, "ok", f.error ?? "");
    const down = await pctcp("network", "down", "--dir", dir);
    assertEquals(down.code, 0, down.stderr);
    assertStringIncludes(down.stdout, `${pids.length} processes stopped`);
    // Not running, and (unless `down` said init had not reaped it yet) not even a zombie:
    // `kill -0 PID` in a script sees it gone.
    assertEquals(pids.filter(isAlive), [], "running after down returned");
    if (!down.stdout.includes("not yet reaped")) {
      assertEquals(pids.filter(inProcessTable), [], "still in the process table after down");
    }
  } finally {
    for (const p of pids) if (isAlive(p)) Deno.kill(p, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export --format onionperf refuses a nickname OnionPerf 3.1's schema does not allow", async () => {
  const r = await pctcp("export", "--format", "onionperf", "--nickname", "my_host", "/dev/null");
  assertEquals(r.code, 2, r.stderr);
  assertStringIncludes(r.stderr, "letters, digits and -");
});

Deno.test("every command's help has an example", async () => {
  const { buildProgram } = await import("../cli/main.ts");
  const missing: string[] = [];
  const walk = (c: import("commander").Command, path: string) => {
    let text = "";
    c.configureOutput({ writeOut: (s) => text += s, writeErr: (s) => text += s });
    c.outputHelp();
    if (!/Examples?\b/.test(text)) missing.push(path || "pctcp");
    for (const sub of c.commands) walk(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  walk(buildProgram(), "");
  assertEquals(missing, []);
});

Deno.test("parseDuration takes units everywhere and keeps a bare number in the flag's old unit", async () => {
  const { parseDuration, formatDuration } = await import("../lib/util/duration.ts");
  assertEquals(parseDuration("90s"), 90_000);
  assertEquals(parseDuration("500ms"), 500);
  assertEquals(parseDuration("1m30s"), 90_000);
  assertEquals(parseDuration("2h"), 7_200_000);
  assertEquals(parseDuration("10 ms"), 10);
  assertEquals(parseDuration("250us"), 0.25);
  assertEquals(parseDuration("90"), 90_000, "bare: seconds");
  assertEquals(parseDuration("90", "ms"), 90, "bare: ms (measure --timeout)");
  for (const bad of ["", "5x", "-3s", "1m30", "s", "1e3s"]) {
    let threw = false;
    try {
      parseDuration(bad);
    } catch (e) {
      threw = e instanceof SyntaxError;
    }
    assert(threw, `${JSON.stringify(bad)} refused`);
  }
  assertEquals(formatDuration(850), "850 ms");
  assertEquals(formatDuration(250_000), "4 min 10 s");
});

Deno.test("Progress shows done/total, elapsed and ETA; without a TTY one line per period", async () => {
  const { Progress } = await import("../lib/util/progress.ts");
  let now = 0;
  const out: string[] = [];
  const p = new Progress({
    unit: "fetches",
    total: 10,
    tty: false,
    everyMs: 10_000,
    now: () => now,
    write: (t) => out.push(t),
  });
  now = 4_000;
  p.update(2);
  assertEquals(out, [], "nothing before the first period");
  now = 10_000;
  p.update(5, "5 ok");
  assertEquals(out, ["pctcp: 5/10 fetches, 5 ok; elapsed 10 s, ETA 10 s\n"]);
  now = 12_000;
  p.update(6);
  assertEquals(out.length, 1);
  const tty: string[] = [];
  const q = new Progress({
    unit: "fetches",
    endsAt: 60_000,
    tty: true,
    now: () => 0,
    write: (t) => tty.push(t),
  });
  q.update(1);
  q.done();
  assertStringIncludes(tty[0]!, "1 fetches; elapsed 0 ms, ETA 1 min");
  assertEquals(tty.at(-1), "\n");
});

Deno.test("renamed flags: --time-origin, --arms and --format json work, and the old names still do", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rec = (arm: string, id: number) =>
      JSON.stringify({
        v: 1,
        run: "r-1",
        id,
        label: "t",
        transport: null,
        url: "http://x/",
        size: 10,
        start: "2026-12-01T00:00:00.000Z",
        phases_ms: { tcp: 1, socks: 2, request: 3, first_byte: 10 + id, last_byte: 20 + id },
        progress_ms: {},
        bytes: 10,
        status: 200,
        sha256: null,
        sha256_ok: null,
        circuit: null,
        source_port: null,
        outcome: "ok",
        error: null,
        arm,
      });
    const file = `${dir}/a.jsonl`;
    await Deno.writeTextFile(file, [rec("a", 1), rec("b", 2), rec("a", 3)].join("\n") + "\n");
    const newer = await pctcp("stats", file, "--time-origin", "tgen", "--format", "json");
    const older = await pctcp("stats", file, "--base", "tgen", "--format", "json");
    assertEquals(newer.code, 0, newer.stderr);
    assertEquals(newer.stdout, older.stdout);
    const onion = await pctcp("stats", file, "--format", "json");
    assert(onion.stdout !== newer.stdout, "--time-origin changes the numbers");
    const arms = await pctcp("export", file, "--arms", "a");
    const arm = await pctcp("export", file, "--arm", "a");
    assertEquals(arms.stdout.trim().split("\n").length, 3); // header + 2 of arm a
    assertEquals(arms.stdout, arm.stdout);
    const bad = await pctcp("stats", file, "--time-origin", "nope");
    assertEquals(bad.code, 2);
    const list = await pctcp("schedule", "list", "--format", "json");
    assertEquals(list.code, 0, list.stderr);
    assert(Array.isArray(JSON.parse(list.stdout)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
