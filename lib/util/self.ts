/**
 * How this program runs itself again (child relays, clients, the emulator, cron lines), the
 * same way it was started: `deno run -A cli/main.ts` from source, `deno run -A pctcp.js` from
 * the bundle (wherever the file was copied), or the compiled binary alone.
 * @module
 */

/** Where the program runs from: the executable, this module's URL and the main module. */
export interface SelfFacts {
  /** `Deno.execPath()`: deno, or the compiled binary. */
  execPath: string;
  /** `import.meta.url` of this module: …/lib/util/self.ts from source, else the bundle's. */
  moduleUrl: string;
  /** `Deno.mainModule`: cli/main.ts, the bundle, or a test file. */
  mainModule: string;
}

const here = (): SelfFacts => ({
  execPath: Deno.execPath(),
  moduleUrl: import.meta.url,
  mainModule: Deno.mainModule,
});

/** How the program was started: "source", "bundle" or "compiled". */
export function selfForm(facts: SelfFacts = here()): "source" | "bundle" | "compiled" {
  const base = facts.execPath.split("/").pop() ?? "";
  if (!/^deno(\.exe)?$/.test(base)) return "compiled";
  return facts.moduleUrl.startsWith("file:") && facts.moduleUrl.endsWith("/lib/util/self.ts")
    ? "source"
    : "bundle";
}

/**
 * The command line that starts this program: `[deno, "run", "-A", (--v8-flags), entry]` under
 * Deno (entry: cli/main.ts from source, else the bundle this code is part of, `mainModule`), or
 * `[binary]` when compiled.
 */
export function selfCommand(v8Flags: string[] = [], facts: SelfFacts = here()): string[] {
  const form = selfForm(facts);
  if (form === "compiled") return [facts.execPath];
  const path = (u: string) => u.startsWith("file:") ? decodeURIComponent(new URL(u).pathname) : u;
  const entry = form === "source"
    ? path(new URL("../../cli/main.ts", facts.moduleUrl).href)
    : path(facts.mainModule);
  return [
    facts.execPath,
    "run",
    "-A",
    ...(v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : []),
    ...(Deno.env.get("PCTCP_CPU_PROF")
      ? ["--cpu-prof", `--cpu-prof-dir=${Deno.env.get("PCTCP_CPU_PROF")}`]
      : []),
    entry,
  ];
}
