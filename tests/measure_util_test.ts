// The shared conventions of issue 21 that live in lib/util: the SOCKS-user codec, HOST:PORT,
// the atomic JSON write and the poll-until loop.
import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import { decodeSocksUser, encodeSocksUser } from "../lib/util/socks_user.ts";
import { splitHostPort } from "../lib/util/host_port.ts";
import { writeJsonAtomic } from "../lib/util/atomic.ts";
import { PollTimeoutError, pollUntil } from "../lib/util/poll.ts";
import { armSocksUser } from "../lib/measure/run.ts";
import { pathFromSocksUser } from "../lib/tor/pinned.ts";

Deno.test("encodeSocksUser and decodeSocksUser round-trip and agree with the readers of pctcp-path=", () => {
  const u = encodeSocksUser({
    path: ["r1", "r2", "r3"],
    arm: "pctcp",
    circuit: 7,
    rest: "run-a-0",
  });
  assertEquals(u, "pctcp-path=r1,r2,r3;arm=pctcp;c=7;run-a-0");
  assertEquals(decodeSocksUser(u), {
    path: ["r1", "r2", "r3"],
    arm: "pctcp",
    circuit: 7,
    rest: "run-a-0",
  });
  assertEquals(armSocksUser({ name: "pctcp", path: ["r1", "r2", "r3"] }, 7, "run-a-0"), u);
  // The Tor ControlPort pinner reads the same path from it.
  assertEquals(pathFromSocksUser(u), ["r1", "r2", "r3"]);
  assertEquals(decodeSocksUser("pctcp-path=$AAAA,BBBB;x"), { path: ["AAAA", "BBBB"], rest: "x" });
  assertEquals(decodeSocksUser("plain isolation"), { rest: "plain isolation" });
  assertThrows(() => encodeSocksUser({ path: ["a;b"] }), RangeError);
  assertThrows(() => encodeSocksUser({ path: ["a,b"] }), RangeError);
});

Deno.test("splitHostPort reads IPv4, names and bracketed IPv6, and refuses the rest", () => {
  assertEquals(splitHostPort("127.0.0.1:9050"), ["127.0.0.1", 9050]);
  assertEquals(splitHostPort("[::1]:9050"), ["::1", 9050]);
  assertEquals(splitHostPort("localhost:1"), ["localhost", 1]);
  for (const bad of ["::1:9050", "host", "host:0", "host:70000", ":80"]) {
    assertThrows(() => splitHostPort(bad), SyntaxError);
  }
});

Deno.test("writeJsonAtomic replaces a file whole and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/state.json`;
    await Deno.writeTextFile(p, "old");
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => writeJsonAtomic(p, { i, pad: "x".repeat(10_000) })),
    );
    const v = JSON.parse(await Deno.readTextFile(p));
    assert(v.i >= 0 && v.i < 20 && v.pad.length === 10_000);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pollUntil returns the first value, times out naming what it waited for, and stops on abort", async () => {
  let n = 0;
  assertEquals(
    await pollUntil(() => ++n >= 3 ? "ready" : undefined, {
      what: "x",
      timeoutMs: 10_000,
      everyMs: 5,
    }),
    "ready",
  );
  assertEquals(n, 3);
  const e = await assertRejects(
    () =>
      pollUntil(() => ({ retry: "port file empty" }), {
        what: "the SOCKS port",
        timeoutMs: 60,
        everyMs: 10,
      }),
    PollTimeoutError,
  );
  assert(e.message.includes("the SOCKS port: port file empty"), e.message);
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new Error("stopped")), 30);
  await assertRejects(
    () => pollUntil(() => undefined, { what: "y", timeoutMs: 10_000, signal: ctl.signal }),
    Error,
    "stopped",
  );
});

Deno.test("selfCommand starts the program as it was started: source, bundle or compiled binary", async () => {
  const { selfCommand, selfForm } = await import("../lib/util/self.ts");
  const deno = "/usr/bin/deno";
  const source = {
    execPath: deno,
    moduleUrl: "file:///home/u/pctcp/lib/util/self.ts",
    mainModule: "file:///home/u/pctcp/tests/x_test.ts",
  };
  assertEquals(selfCommand([], source), [deno, "run", "-A", "/home/u/pctcp/cli/main.ts"]);
  assertEquals(
    selfCommand(["--max-old-space-size=64"], source)[3],
    "--v8-flags=--max-old-space-size=64",
  );
  const bundle = {
    execPath: deno,
    moduleUrl: "file:///tmp/any%20dir/pctcp.js",
    mainModule: "file:///tmp/any%20dir/pctcp.js",
  };
  assertEquals(selfForm(bundle), "bundle");
  assertEquals(selfCommand([], bundle), [deno, "run", "-A", "/tmp/any dir/pctcp.js"]);
  const compiled = {
    execPath: "/opt/pctcp",
    moduleUrl: "file:///tmp/deno-compile-pctcp/lib/util/self.ts",
    mainModule: "file:///tmp/deno-compile-pctcp/cli/main.ts",
  };
  assertEquals(selfForm(compiled), "compiled");
  assertEquals(selfCommand([], compiled), ["/opt/pctcp"]);
  // This test runs from source.
  assertEquals(selfForm(), "source");
  assert(selfCommand().at(-1)!.endsWith("/cli/main.ts"));
});
