import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { isAlive, networkDown, networkStatus, networkUp } from "../lib/network/launcher.ts";
import { createHash } from "node:crypto";
import { pctcp } from "./_cli.ts";

Deno.test("network up starts processes that carry 5 MiB byte-exact; status shows them; down leaves none", async () => {
  const dir = await Deno.makeTempDir();
  let pids: number[] = [];
  try {
    const up = await pctcp(
      "network",
      "up",
      "--dir",
      dir,
      "--relays",
      "3",
      "--transport",
      "pctcp",
      "--json",
    );
    assertEquals(up.code, 0, up.stderr);
    const st = await pctcp("network", "status", "--dir", dir, "--json");
    assertEquals(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    assert(/^127\.0\.0\.1:\d+$/.test(s.socks), s.socks);
    assertStringIncludes(s.server, "http://127.0.0.1:");
    assertEquals(s.relays.length, 3);
    for (const r of s.relays) {
      for (const k of ["nickname", "address", "orPort", "transports", "pid"]) {
        assert(k in r, `relay lacks ${k}`);
      }
    }
    pids = s.processes.map((p: { pid: number }) => p.pid);
    assert(pids.every(isAlive));
    // curl through the network: 5 MiB byte-exact by SHA-256.
    const file = `${dir}/body.bin`;
    const c = await new Deno.Command("curl", {
      args: [
        "-s",
        "-D",
        `${dir}/headers.txt`,
        "-o",
        file,
        "--socks5-hostname",
        s.socks,
        `${s.server}/bytes/5MiB`,
      ],
    }).output();
    assertEquals(c.code, 0, "curl failed");
    const body = await Deno.readFile(file);
    assertEquals(body.length, 5 * 1024 * 1024);
    const published = /x-content-sha256: ([0-9a-f]{64})/i.exec(
      await Deno.readTextFile(`${dir}/headers.txt`),
    )?.[1];
    assertEquals(createHash("sha256").update(body).digest("hex"), published);
    // A crash of one part: down still stops the rest.
    Deno.kill(s.relays[1].pid, "SIGKILL");
    const down = await pctcp("network", "down", "--dir", dir);
    assertEquals(down.code, 0, down.stderr);
    for (let i = 0; i < 50 && pids.some(isAlive); i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    assertEquals(pids.filter(isAlive), []);
    const after = await pctcp("network", "status", "--dir", dir);
    assertEquals(after.code, 1);
    assertStringIncludes(after.stderr, "no network");
  } finally {
    for (const p of pids) if (isAlive(p)) Deno.kill(p, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("networkUp refuses a second network in the same folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = await networkUp({ dir, relays: 3 });
    try {
      let msg = "";
      try {
        await networkUp({ dir, relays: 3 });
      } catch (e) {
        msg = (e as Error).message;
      }
      assertStringIncludes(msg, "already running");
      assert(Object.values((await networkStatus(dir)).alive).every(Boolean));
    } finally {
      await networkDown(dir);
    }
    assert(s.processes.every((p) => !isAlive(p.pid)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("network up --insecure-lab: relay logs and every joined record say the per-circuit links are unencrypted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const up = await pctcp(
      "network",
      "up",
      "--dir",
      dir,
      "--transport",
      "pctcp",
      "--insecure-lab",
      "--json",
    );
    assertEquals(up.code, 0, up.stderr);
    const s = JSON.parse(up.stdout);
    const out = `${dir}/m.jsonl`;
    const m = await pctcp(
      "measure",
      "--socks",
      s.socks,
      "--url",
      `${s.server}/bytes/100KiB`,
      "--count",
      "2",
      "--out",
      out,
      "--streams",
      s.streams,
    );
    assertEquals(m.code, 0, m.stderr);
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    for (const r of recs) {
      assertEquals(r.outcome, "ok");
      assertStringIncludes(r.circuit.security, "INSECURE LAB MODE");
    }
    assertStringIncludes(await Deno.readTextFile(`${dir}/relay1/relay.log`), "INSECURE LAB MODE");
  } finally {
    await pctcp("network", "down", "--dir", dir);
    await Deno.remove(dir, { recursive: true });
  }
});
