/**
 * Runs a system command (ip, tc, nft, swanctl) and returns its output; a clear error with
 * its stderr when it fails, unless failure is allowed.
 * @module
 */

/** Runs `cmd` and resolves its stdout. */
export async function runCommand(cmd: string[], allowFail = false): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success && !allowFail) {
    throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}
