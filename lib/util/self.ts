/**
 * How this program runs itself again (child relays, clients, the emulator, cron lines), the
 * same way it was started: `deno run -A cli/main.ts` from source, `deno run -A pctcp.js` from
 * the bundle (wherever the file was copied), or the compiled binary alone.
 * @module
 */

/** True when this module runs from the source tree (not bundled, not compiled). */
function fromSource(): boolean {
  return import.meta.url.startsWith("file:") && import.meta.url.endsWith("/lib/util/self.ts");
}

/**
 * The command line that starts this program: `[deno, "run", "-A", (--v8-flags), entry]` under
 * Deno (entry: cli/main.ts from source, else the bundle this code is part of, `Deno.mainModule`),
 * or `[binary]` when compiled.
 */
export function selfCommand(v8Flags: string[] = []): string[] {
  const exe = Deno.execPath();
  const base = exe.split("/").pop() ?? "";
  if (!/^deno(\.exe)?$/.test(base)) return [exe];
  const entry = fromSource()
    ? decodeURIComponent(new URL("../../cli/main.ts", import.meta.url).pathname)
    : Deno.mainModule.startsWith("file:")
    ? decodeURIComponent(new URL(Deno.mainModule).pathname)
    : Deno.mainModule;
  return [
    exe,
    "run",
    "-A",
    ...(v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : []),
    entry,
  ];
}

/** How the program was started: "source", "bundle" or "compiled" (for `--version` and help). */
export function selfForm(): "source" | "bundle" | "compiled" {
  const base = Deno.execPath().split("/").pop() ?? "";
  if (!/^deno(\.exe)?$/.test(base)) return "compiled";
  return fromSource() ? "source" : "bundle";
}
