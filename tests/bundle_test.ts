// The one-file form: `deno bundle` output copied alone into an empty folder outside the
// repository runs the main jobs (loopback experiment, network up/down, cron lines) from there.
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";

const root = new URL("..", import.meta.url).pathname;
const dec = new TextDecoder();

Deno.test("lib/embedded.ts is up to date with measurements/ (scripts/embed.ts --check)", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/embed.ts", "--check"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(r.code, 0, dec.decode(r.stderr));
});

/** Kills, by pid, every process that a state.json anywhere under `dir` names. */
async function killNetworks(dir: string): Promise<void> {
  const walk = async (d: string): Promise<void> => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else if (e.name === "state.json") {
        const state = await Deno.readTextFile(`${d}/${e.name}`).then(JSON.parse, () => null);
        for (const p of (state?.processes ?? []) as { pid: number }[]) {
          try {
            Deno.kill(p.pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    }
  };
  await walk(dir).catch(() => {});
}

Deno.test({
  name:
    "the bundle alone in an empty folder runs the loopback experiment, network up/down and writes cron lines for itself",
  sanitizeResources: false,
  async fn() {
    const build = await Deno.makeTempDir();
    const home = await Deno.makeTempDir({ prefix: "pctcp-bundle-" });
    try {
      const b = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--platform", "deno", "-o", `${build}/pctcp.js`, "cli/main.ts"],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(b.code, 0, dec.decode(b.stderr));
      await Deno.copyFile(`${build}/pctcp.js`, `${home}/pctcp.js`);
      assert(!home.startsWith(root), "the folder is outside the repository");
      const pctcp = async (args: string[], timeoutMs: number) => {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", `${home}/pctcp.js`, ...args],
          cwd: home,
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).spawn();
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* ended */ }
        }, timeoutMs);
        const out = await child.output();
        clearTimeout(timer);
        return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
      };
      // The built-in scenarios are in the file.
      const noScenario = await pctcp(["experiment", "interference", "--scenario", "nope"], 60_000);
      assertStringIncludes(noScenario.stderr, "built in: ctor-netns, paper, quick, quick-netns");

      // network up / down: the relays and client are this same file, started as children.
      const up = await pctcp(["network", "up", "--dir", "net", "--json"], 120_000);
      assertEquals(up.code, 0, up.stderr);
      const state = JSON.parse(await Deno.readTextFile(`${home}/net/state.json`));
      assert(state.processes.length >= 5, "relays, client and server started");
      const cmdline = await Deno.readTextFile(`/proc/${state.processes[0].pid}/cmdline`);
      assertStringIncludes(cmdline, `${home}/pctcp.js`);
      const down = await pctcp(["network", "down", "--dir", "net"], 60_000);
      assertEquals(down.code, 0, down.stderr);

      // The loopback experiment with a tiny scenario and duration.
      await Deno.copyFile(`${root}tests/fixtures/tiny.json`, `${home}/tiny.json`);
      const exp = await pctcp(
        [
          "experiment",
          "interference",
          "--scenario",
          "tiny.json",
          "--duration",
          "2",
          "--out",
          "exp",
        ],
        300_000,
      );
      assertEquals(exp.code, 0, exp.stderr + exp.stdout);
      const summary = JSON.parse(await Deno.readTextFile(`${home}/exp/summary.json`));
      assert(summary, "summary.json written");
      for (const arm of ["tor", "pctcp"]) {
        assert((await Deno.stat(`${home}/exp/records-${arm}.jsonl`)).size > 0, `${arm} records`);
      }

      // A cron line runs this file, wherever it is.
      const cron = await pctcp([
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
      ], 60_000);
      assertEquals(cron.code, 0, cron.stderr);
      assertStringIncludes(cron.stdout, `${Deno.execPath()} run -A ${home}/pctcp.js measure`);
    } finally {
      await killNetworks(home);
      await Deno.remove(build, { recursive: true });
      await Deno.remove(home, { recursive: true });
    }
  },
});
