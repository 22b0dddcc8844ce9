/**
 * Runs `pctcp ARGS` from source in a subprocess, for tests of the command line.
 * @module
 */

const main = new URL("../cli/main.ts", import.meta.url).pathname;

/** The exit code and output of one run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pctcp` with `args` and waits for it. */
export async function pctcp(...args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
