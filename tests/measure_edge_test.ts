// Measurement edge cases: HTTPS through the onion network, a proxy that dies mid-transfer,
// bad command lines, and the exit code when every fetch fails.
import { assert, assertEquals, assertStringIncludes } from "./_assert.ts";
import { startNet } from "./_net.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { bodySha256, bodyStream } from "../lib/serve/body.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { pctcp, spawnPctcp } from "./_cli.ts";

Deno.test("timedFetch fetches HTTPS through the onion network and checks the body", async () => {
  const dir = await Deno.makeTempDir();
  const net = await startNet(3, ["tor", "tor", "tor"]);
  let server: Deno.HttpServer | undefined;
  try {
    // A self-signed certificate for 127.0.0.1 made with openssl for this test.
    const gen = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertEquals(gen.code, 0, new TextDecoder().decode(gen.stderr));
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    const key = await Deno.readTextFile(`${dir}/key.pem`);
    server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
      () =>
        new Response(bodyStream(300_000), {
          headers: { "x-content-sha256": bodySha256(300_000), "content-length": "300000" },
        }),
    );
    const url = `https://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`;
    const ok = await timedFetch(url, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      caCerts: [cert],
    });
    assertEquals(ok.outcome, "ok", ok.error ?? "");
    assertEquals(ok.sha256Ok, true);
    const untrusted = await timedFetch(url, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
    });
    assertEquals(untrusted.outcome, "tls");
  } finally {
    await server?.shutdown();
    await net.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a proxy that closes mid-transfer gives a short-read record, not a hang", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxy = (async () => {
    const c = await l.accept();
    const b = new Uint8Array(512);
    await c.read(b);
    await c.write(Uint8Array.of(5, 0));
    await c.read(b);
    await c.write(Uint8Array.of(5, 0, 0, 1, 0, 0, 0, 0, 0, 0));
    await c.read(b);
    await c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"));
    await c.write(new Uint8Array(40_000));
    c.close();
  })();
  const r = await timedFetch("http://example.test/", {
    socksHost: "127.0.0.1",
    socksPort: (l.addr as Deno.NetAddr).port,
    timeoutMs: 60_000, // only a bound: the proxy closes, so it ends at once
  });
  await proxy;
  l.close();
  assertEquals(r.outcome, "short-read");
  assertEquals(r.bytes, 40_000);
  assertStringIncludes(r.error!, "of 1000000");
});

Deno.test("measure: bad URLs and proxies are usage errors (exit 2); all fetches failing exits 1 with records", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = await pctcp(
      "measure",
      "--socks",
      "127.0.0.1:9050",
      "--url",
      "not a url",
      "--out",
      `${dir}/x.jsonl`,
    );
    assertEquals(bad.code, 2);
    assertStringIncludes(bad.stderr, "not a URL");
    const badProxy = await pctcp(
      "measure",
      "--socks",
      "nowhere",
      "--url",
      "http://127.0.0.1/",
      "--out",
      `${dir}/x.jsonl`,
    );
    assertEquals(badProxy.code, 2);
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const out = `${dir}/fail.jsonl`;
    const all = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${port}`,
      "--url",
      "http://127.0.0.1/",
      "--count",
      "2",
      "--out",
      out,
    );
    assertEquals(all.code, 1);
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((x) => JSON.parse(x));
    assertEquals(recs.map((x) => x.outcome), ["proxy-connect", "proxy-connect"]);
    assert(recs.every((x) => typeof x.error === "string"));
    // No TTY: quiet but for errors; stdout has the one summary line.
    assertEquals(all.stdout.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure --duration with an interval stops on time and keeps fetches from overlapping", async () => {
  const dir = await Deno.makeTempDir();
  const net = await startNet(3, ["tor", "tor", "tor"]);
  try {
    const out = `${dir}/d.jsonl`;
    const t0 = performance.now();
    const r = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${net.client.socksPort}`,
      "--url",
      `http://127.0.0.1:${net.serverPort}/`,
      "--duration",
      "2",
      "--interval",
      "0.5",
      "--jitter",
      "0.1",
      "--out",
      out,
      "--seed",
      "4",
    );
    const ms = performance.now() - t0;
    assertEquals(r.code, 0, r.stderr);
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((x) => JSON.parse(x));
    // Starts at most every 0.5 s ± 10 %, none after the 2 s: at most 5. How many fit depends
    // on how slow the (loaded) machine is, so only "more than one" is asserted below that.
    assert(recs.length >= 2 && recs.length <= 5, `${recs.length} fetches in 2 s at 0.5 s`);
    const starts = recs.map((x) => Date.parse(x.start));
    for (let i = 1; i < starts.length; i++) {
      assert(
        starts[i]! - starts[i - 1]! >= 450 - 5,
        "fetches of one schedule overlap or come too fast",
      );
      // Stops on time: no fetch starts after the duration (a 5 ms allowance for clock reads).
      assert(
        starts[i]! - starts[0]! < 2000 + 5,
        `a fetch started ${starts[i]! - starts[0]!} ms in`,
      );
    }
    // And the process ends after its last fetch instead of running on: its wall time less
    // Deno's start-up (timed below on this machine, same load) is well under twice the duration.
    const t1 = performance.now();
    await pctcp("--version");
    const startup = performance.now() - t1;
    assert(ms - startup < 6000, `measure ran ${ms.toFixed(0)} ms (start-up ${startup.toFixed(0)})`);
    const runs = JSON.parse((await Deno.readTextFile(`${out}.runs.jsonl`)).trim());
    assertEquals(runs.seed, 4);
    assertEquals(typeof runs.version, "string");
  } finally {
    await net.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a measurement killed mid-run leaves valid JSONL up to the last fetch, and a rerun appends", async () => {
  const dir = await Deno.makeTempDir();
  const net = await startNet(3, ["tor", "tor", "tor"]);
  try {
    const out = `${dir}/k.jsonl`;
    const child = spawnPctcp([
      "measure",
      "--socks",
      `127.0.0.1:${net.client.socksPort}`,
      "--url",
      `http://127.0.0.1:${net.serverPort}/big`,
      "--count",
      "1000",
      "--out",
      out,
    ]);
    // Wait for 3 records (bounded by the test's own clock, generous for a loaded machine).
    for (const t0 = Date.now(); Date.now() - t0 < 60_000;) {
      const n = await Deno.readTextFile(out).then((t) => t.split("\n").length - 1, () => 0);
      if (n >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await child.status;
    const text = await Deno.readTextFile(out);
    assert(text.endsWith("\n"), "the last line is complete");
    const before = text.trim().split("\n").map((l) => JSON.parse(l));
    assert(before.length >= 3);
    assert(before.every((r) => r.outcome === "ok"));
    // The dead run's lock is stale: a rerun takes it over and appends.
    const again = await pctcp(
      "measure",
      "--socks",
      `127.0.0.1:${net.client.socksPort}`,
      "--url",
      `http://127.0.0.1:${net.serverPort}/`,
      "--out",
      out,
    );
    assertEquals(again.code, 0, again.stderr);
    assertEquals((await Deno.readTextFile(out)).trim().split("\n").length, before.length + 1);
  } finally {
    await net.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("measure --page fetches the document and its sub-resources and records the page load time", async () => {
  const dir = await Deno.makeTempDir();
  const root = new URL("../measurements/web", import.meta.url).pathname;
  const net = await networkUp({ dir, relays: 3, webRoot: root });
  try {
    const out = `${dir}/p.jsonl`;
    const r = await pctcp(
      "measure",
      "--socks",
      net.socks,
      "--page",
      `${net.server}/index.html`,
      "--count",
      "2",
      "--label",
      "web",
      "--out",
      out,
    );
    assertEquals(r.code, 0, r.stderr);
    const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    for (const x of recs) {
      assertEquals(x.outcome, "ok", x.error);
      assertEquals(x.resources, { count: 10, failed: 0 });
      assert(x.page_ms >= x.phases_ms.last_byte, "the page ends after its document");
    }
  } finally {
    await networkDown(dir);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the client's SOCKS port binds 127.0.0.1 unless told otherwise", async () => {
  const dir = await Deno.makeTempDir();
  const net = await networkUp({ dir, relays: 3 });
  try {
    const port = Number(net.socks.split(":")[1]);
    const out = await new Deno.Command("ss", {
      args: ["-tlnH", `sport = :${port}`],
      stdout: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assertStringIncludes(text, `127.0.0.1:${port}`);
    assert(!text.includes(`0.0.0.0:${port}`) && !text.includes(`*:${port}`));
  } finally {
    await networkDown(dir);
    await Deno.remove(dir, { recursive: true });
  }
});
