import { assertEquals, assertStringIncludes } from "./_assert.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("deno bundle gives one JS file that runs offline with deno run -A", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/pctcp.js`;
    const b = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", out, "cli/main.ts"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(b.code, 0, new TextDecoder().decode(b.stderr));
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", out, "--help"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    assertStringIncludes(new TextDecoder().decode(r.stdout), "experiment");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
