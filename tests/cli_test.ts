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
