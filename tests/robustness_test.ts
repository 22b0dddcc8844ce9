import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import { startNet } from "./_net.ts";
import { socksConnect } from "./_socks.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import {
  DirectoryError,
  generateRelayKeys,
  makeDocument,
  verifyDocument,
} from "../lib/directory/mod.ts";
import { linkConnect, LinkError } from "../lib/transport/link.ts";
import { CellCommand } from "../lib/cell/cell.ts";
import { ExitPolicy } from "../lib/relay/exit_policy.ts";

Deno.test("a relay fed garbage drops that peer and keeps carrying honest traffic", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  const s = await serve();
  try {
    for (const r of net.relays) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: r.port });
      await c.write(crypto.getRandomValues(new Uint8Array(200)));
      const buf = new Uint8Array(100);
      const got = await c.read(buf).catch(() => null);
      assertEquals(got, null, "relay should close a garbage link");
      c.close();
    }
    const r = await timedFetch(`${s.url}/bytes/200KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
    });
    assertEquals(r.outcome, "ok", r.error ?? "");
  } finally {
    await s.stop();
    await net.stop();
  }
});

Deno.test("the SOCKS port answers bad requests with their reply codes and stays up", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  const s = await serve();
  try {
    // Not SOCKS at all.
    const c = await Deno.connect({ hostname: "127.0.0.1", port: net.client.socksPort });
    await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    const b = new Uint8Array(16);
    const n = await c.read(b).catch(() => null);
    assert(n === null || (b[0] === 5 && b[1] !== 0), "non-SOCKS input must not succeed");
    c.close();
    // Exit policy: a private address not allowed by the network → "not allowed" (2).
    await assertRejects(
      () => socksConnect(net.client.socksPort, "10.1.2.3", 80),
      Error,
      "socks reply 2",
    );
    // A closed port on the allowed server host → "connection refused" (5).
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = (l.addr as Deno.NetAddr).port;
    l.close();
    await assertRejects(
      () => socksConnect(net.client.socksPort, "127.0.0.1", closed),
      Error,
      "socks reply 5",
    );
    // BIND is not supported → 7.
    const c2 = await Deno.connect({ hostname: "127.0.0.1", port: net.client.socksPort });
    await c2.write(Uint8Array.of(5, 1, 0));
    await c2.read(b);
    await c2.write(Uint8Array.of(5, 2, 0, 1, 127, 0, 0, 1, 0, 80));
    const k = await c2.read(b);
    assertEquals([k, b[1]], [10, 7]);
    c2.close();
    const r = await timedFetch(`${s.url}/bytes/10KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
    });
    assertEquals(r.outcome, "ok");
  } finally {
    await s.stop();
    await net.stop();
  }
});

Deno.test("a malformed relay cell closes its circuit, not the relay nor other circuits", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  try {
    const a = await net.client.buildCircuit("a");
    const b = await net.client.buildCircuit("b");
    // Garbage that no hop recognizes: the exit tears circuit a down (tor-spec §5.5.2).
    a.chan.send(a.circId, CellCommand.RELAY, crypto.getRandomValues(new Uint8Array(509)));
    for (let i = 0; i < 100 && !a.closed; i++) await new Promise((r) => setTimeout(r, 20));
    assert(a.closed, "circuit a should be destroyed");
    assert(!b.closed, "circuit b must survive");
    const r = await timedFetch(`${s.url}/bytes/100KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: "b",
    });
    assertEquals(r.outcome, "ok", r.error ?? "");
  } finally {
    await s.stop();
    await net.stop();
  }
});

Deno.test("verifyDocument refuses a tampered, foreign or expired directory", () => {
  const keys = generateRelayKeys();
  const spec = {
    nickname: "x",
    keys,
    address: "127.0.0.1",
    orPort: 9001,
    flags: ["exit"],
    bandwidth: 1,
    transports: ["tor" as const],
  };
  const { document } = makeDocument([spec]);
  const text = JSON.stringify(document);
  assertEquals(verifyDocument(text).relays.length, 1);
  const tampered = JSON.stringify({
    ...document,
    relays: [{ ...document.relays[0]!, orPort: 9002 }],
  });
  assertThrows(() => verifyDocument(tampered), DirectoryError, "signature");
  const other = makeDocument([spec]).document;
  assertThrows(
    () => verifyDocument(text, { authority: other.authority }),
    DirectoryError,
    "another authority",
  );
  assertThrows(
    () => verifyDocument(text, { now: new Date(Date.now() + 10 * 365 * 86400_000) }),
    DirectoryError,
    "not valid now",
  );
  assertThrows(() => verifyDocument("{"), DirectoryError, "not JSON");
});

Deno.test("a link to a relay fails when the other end lacks the relay's link key", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  try {
    const impostorKey = generateRelayKeys();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: net.relays[0]!.port });
    // We expect relay r1's identity but pin the wrong link key: AUTH cannot verify.
    await assertRejects(
      () =>
        linkConnect(conn, {
          peer: { identity: impostorKey.identity.public, linkKey: impostorKey.link.public },
        }),
      LinkError,
    );
    conn.close();
  } finally {
    await net.stop();
  }
});

Deno.test("ExitPolicy refuses private and loopback by default and allows listed entries", () => {
  const p = new ExitPolicy(["127.0.0.1:8080", "10.0.0.0/8:*"]);
  assert(p.allows("127.0.0.1", 8080));
  assert(!p.allows("127.0.0.1", 8081));
  assert(p.allows("10.9.9.9", 22));
  assert(!p.allows("192.168.1.1", 80));
  assert(!p.allows("localhost", 80));
  for (const host of ["172.16.0.1", "169.254.1.1", "0.0.0.0", "127.8.8.8", "::1"]) {
    assert(!p.allows(host, 80), `${host} is private or loopback and not listed`);
  }
  assert(p.allows("93.184.216.34", 443));
  assertThrows(() => new ExitPolicy(["nope"]), SyntaxError);
});
