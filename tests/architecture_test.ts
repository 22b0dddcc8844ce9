// The dependency direction of DESIGN.md, read from the import graph (`deno info --json`) and
// the sources: codecs know nothing of sockets, measurement and analysis do not import the
// relay, and lib/ never imports cli/.
import { assert, assertEquals } from "./_assert.ts";

const root = new URL("..", import.meta.url).pathname;

async function localModules(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => s.startsWith("file://"))
    .map((s) => s.slice(`file://${root}`.length));
}

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    if (e.isFile && e.name.endsWith(".ts")) out.push(`${dir}/${e.name}`);
  }
  return out;
}

Deno.test("codecs (cell, crypto, circuit, SOCKS) use no Deno.* and import no I/O module", async () => {
  const files = [
    ...await tsFiles("lib/cell"),
    ...await tsFiles("lib/crypto"),
    ...await tsFiles("lib/circuit"),
    "lib/client/socks.ts",
  ];
  assert(files.length > 8);
  for (const f of files) {
    const src = await Deno.readTextFile(`${root}${f}`);
    assert(!/\bDeno\./.test(src), `${f} uses Deno.*`);
    const mods = await localModules(f);
    assert(mods.includes(f), `deno info did not read ${f}`);
    for (const m of mods) {
      assert(
        /^lib\/(cell|crypto|circuit|util|directory\/keys)|^lib\/client\/socks\.ts|^deno\.json/.test(
          m,
        ),
        `${f} imports ${m}`,
      );
    }
  }
});

Deno.test("measurement, statistics and reports do not import the relay, client or channels", async () => {
  const entries = [
    ...await tsFiles("lib/measure"),
    ...await tsFiles("lib/stats"),
    ...await tsFiles("lib/report"),
  ];
  for (const e of entries) {
    const bad = (await localModules(e)).filter((m) =>
      /^lib\/(relay|channel|client|transport|circuit|cell|crypto)\//.test(m)
    );
    assertEquals(bad, [], `${e} imports ${bad.join(", ")}`);
  }
});

Deno.test("nothing under lib/ imports cli/", async () => {
  const bad = (await localModules("mod.ts")).filter((m) => m.startsWith("cli/"));
  assertEquals(bad, []);
});
