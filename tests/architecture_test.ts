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

/** Every .ts file under `dir` (recursively), root-relative. */
async function tsFilesDeep(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    if (e.isDirectory) out.push(...await tsFilesDeep(`${dir}/${e.name}`));
    else if (e.isFile && e.name.endsWith(".ts")) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

/**
 * The import graph of every file under lib/ and cli/ and of mod.ts, from `deno info --json`
 * on one entry that imports them all: code and type-only imports alike (a type import
 * still ties the two modules' designs together).
 */
async function importGraph(): Promise<Map<string, Set<string>>> {
  const files = [...await tsFilesDeep("lib"), ...await tsFilesDeep("cli"), "mod.ts"];
  const entry = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import "${new URL(f, `file://${root}`).href}";\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${root}deno.json`, entry],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).output();
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    const local = (s: string) =>
      s.startsWith(`file://${root}`) ? s.slice(`file://${root}`.length) : undefined;
    const graph = new Map<string, Set<string>>();
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (!from || !from.endsWith(".ts")) continue;
      const to = new Set<string>();
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          const t = s && local(s);
          if (t && t.endsWith(".ts")) to.add(t);
        }
      }
      graph.set(from, to);
    }
    assert(graph.size >= files.length, `deno info read ${graph.size} of ${files.length} files`);
    return graph;
  } finally {
    await Deno.remove(entry);
  }
}

/** The strongly connected components with more than one node, or a node importing itself. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  // Tarjan's algorithm, iterative enough for a few hundred modules.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index), low.set(v, index), index++;
    stack.push(v), onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** The graph between folders (lib/cell, lib/transport, cli, …): an edge per import across two. */
function folderGraph(graph: Map<string, Set<string>>): Map<string, Set<string>> {
  const folder = (f: string) =>
    f.startsWith("lib/") ? f.split("/").slice(0, 2).join("/") : f.split("/")[0]!;
  const out = new Map<string, Set<string>>();
  for (const [from, tos] of graph) {
    const a = folder(from);
    if (!out.has(a)) out.set(a, new Set());
    for (const to of tos) if (folder(to) !== a) out.get(a)!.add(folder(to));
  }
  return out;
}

// Import cycles allowed: none.
const ALLOWED_FILE_CYCLES: string[][] = [];

Deno.test("the import graph has no cycle between files or between lib folders", async () => {
  const graph = await importGraph();
  const allowed = new Set(ALLOWED_FILE_CYCLES.map((c) => [...c].sort().join(" ↔ ")));
  const files = cycles(graph).map((c) => c.join(" ↔ ")).filter((c) => !allowed.has(c));
  assertEquals(files, [], `import cycles between files:\n${files.join("\n")}`);
  const folders = cycles(folderGraph(graph)).map((c) => c.join(" ↔ "));
  assertEquals(folders, [], `import cycles between folders:\n${folders.join("\n")}`);
});

Deno.test("native relay crypto is installed only by installNativeCrypto(), never on import", async () => {
  const bad: string[] = [];
  for (const f of await tsFilesDeep("lib")) {
    if (f === "lib/crypto/relay_crypto.ts" || f === "lib/transport/openssl.ts") continue;
    const src = await Deno.readTextFile(`${root}${f}`);
    if (/\bset(Ctr|Sha1)Implementation\s*\(/.test(src)) bad.push(f);
  }
  assertEquals(bad, [], `files that swap relay crypto themselves: ${bad.join(", ")}`);
  const openssl = await Deno.readTextFile(`${root}lib/transport/openssl.ts`);
  // Only inside the function: no top-level call in the module that defines it.
  const top = openssl.split("export function installNativeCrypto")[0]!;
  assert(!/\bset(Ctr|Sha1)Implementation\s*\(\s*\(/.test(top), "openssl.ts installs on import");
});
