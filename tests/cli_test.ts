import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { buildProgram } from "../cli/main.ts";
import { VERSION } from "../lib/version.ts";
import { pctcp } from "./_cli.ts";

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
