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

/**
 * Starts `pctcp` with `args` and returns the child without waiting (for tests that watch or
 * kill a run); its output goes where `output` says (default: discarded).
 */
export function spawnPctcp(
  args: string[],
  output: { stdout?: "piped" | "null"; stderr?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: output.stdout ?? "null",
    stderr: output.stderr ?? "null",
  }).spawn();
}

/** A plain SOCKS5 forwarder and `pctcp serve`, each its own process (the instrument alone). */
export async function instrument(): Promise<
  { socksPort: number; server: string; stop(): Promise<void> }
> {
  const root = new URL("..", import.meta.url).pathname;
  const spawn = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...args],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).spawn();
  const procs = [spawn(["tests/fixtures/socks_forward.ts"]), spawn(["cli/main.ts", "serve"])];
  const firstLine = async (c: Deno.ChildProcess) => {
    const reader = c.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await reader.cancel();
    return text.split("\n")[0]!;
  };
  const stop = async () => {
    for (const c of procs) {
      try {
        c.kill("SIGTERM");
      } catch { /* gone */ }
      await c.status;
    }
  };
  try {
    const socksPort = Number(await firstLine(procs[0]!));
    const server = JSON.parse(await firstLine(procs[1]!)).server as string;
    return { socksPort, server, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
