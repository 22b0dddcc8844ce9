// The transport seam and the link handshake under attack, over real TCP: an on-path
// attacker that flips the encryption flag or rebinds a per-circuit link, a responder that
// applies its own plaintext policy, a peer that asks a per-circuit link to carry a second
// circuit, and a destroyed circuit that closes only its own connection.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { connectionsTo, sendCreate2, startNet } from "./_net.ts";
import { generateRelayKeys, type RelayKeys } from "../lib/directory/keys.ts";
import { type Link, linkAccept, linkConnect, LinkError } from "../lib/transport/link.ts";
import { Channel } from "../lib/channel/channel.ts";
import { ChannelPool } from "../lib/transport/pool.ts";
import { CellCommand } from "../lib/cell/mod.ts";
import { fromBase64 } from "../lib/util/bytes.ts";
import { serve } from "../lib/serve/server.ts";
import { timedFetch } from "../lib/measure/fetch.ts";

const HELLO_FLAGS = "PCTCP-LINK2".length; // offset of the flags byte in the hello
const HELLO_CIRCUIT = HELLO_FLAGS + 1; // offset of the bound CircID (u32)

/**
 * A responder on port 0 behind an on-path attacker that rewrites the first bytes the
 * initiator sends (`tamper`) and forwards everything else both ways.
 */
function onPath(
  responder: RelayKeys,
  tamper: (hello: Uint8Array) => void,
  accept: { allowPlaintext?: (a: string) => boolean } = {},
) {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    const conn = await server.accept();
    try {
      return await linkAccept(conn, {
        keys: { identity: responder.identity.public, link: responder.link },
        remoteAddress: "127.0.0.1",
        timeoutMs: 3000,
        ...accept,
      });
    } catch (e) {
      try {
        conn.close();
      } catch { /* closed */ }
      throw e;
    }
  })();
  accepted.catch(() => {});
  const relay = (async () => {
    const a = await proxy.accept();
    const b = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    const pipe = async (from: Deno.Conn, to: Deno.Conn, first: boolean) => {
      const buf = new Uint8Array(65536);
      let done = !first;
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          const chunk = buf.slice(0, n);
          if (!done && n > HELLO_CIRCUIT + 4) {
            tamper(chunk);
            done = true;
          }
          await to.write(chunk);
        }
      } catch { /* closed */ }
      try {
        to.close();
      } catch { /* closed */ }
    };
    await Promise.all([pipe(a, b, true), pipe(b, a, false)]);
  })();
  return Promise.resolve({
    port: (proxy.addr as Deno.NetAddr).port,
    accepted,
    async close() {
      server.close();
      proxy.close();
      await relay.catch(() => {});
    },
  });
}

async function connectVia(port: number, responder: RelayKeys, o: object): Promise<Link> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    return await linkConnect(conn, {
      peer: { identity: responder.identity.public, linkKey: responder.link.public },
      ...o,
    });
  } catch (e) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw e;
  }
}

Deno.test("linkConnect and linkAccept refuse a hello whose encrypt flag was flipped on the path", async () => {
  const r = generateRelayKeys();
  const me = generateRelayKeys();
  // The responder would even accept plaintext: only the authenticated transcript stops it.
  const path = await onPath(r, (h) => h[HELLO_FLAGS]! |= 2, { allowPlaintext: () => true });
  try {
    await assertRejects(
      () =>
        connectVia(path.port, r, {
          self: me.identity,
          purpose: "circuit",
          circuit: 0x80000007,
        }),
      LinkError,
    );
    await assertRejects(() => path.accepted, LinkError);
  } finally {
    await path.close();
  }
});

Deno.test("linkAccept refuses a per-circuit link rebound to another circuit on the path", async () => {
  const r = generateRelayKeys();
  const path = await onPath(r, (h) => new DataView(h.buffer).setUint32(HELLO_CIRCUIT, 0x80000009));
  try {
    await assertRejects(
      () => connectVia(path.port, r, { purpose: "circuit", circuit: 0x80000007 }),
      LinkError,
    );
    await assertRejects(() => path.accepted, LinkError, "does not authenticate");
  } finally {
    await path.close();
  }
});

Deno.test("linkAccept applies its own plaintext policy: refused by default, allowed for relays it covers", async () => {
  const r = generateRelayKeys();
  const me = generateRelayKeys();
  const untouched = () => {};
  // Default: no policy, no plaintext, whatever the initiator asks.
  const a = await onPath(r, untouched);
  try {
    await assertRejects(
      () =>
        connectVia(a.port, r, {
          self: me.identity,
          purpose: "circuit",
          circuit: 0x80000001,
          encrypt: false,
        }),
      LinkError,
    );
    await assertRejects(() => a.accepted, LinkError, "refusing an unencrypted link");
  } finally {
    await a.close();
  }
  // Covered (IPsec check true, or lab mode): a relay's plaintext per-circuit link is fine…
  const b = await onPath(r, untouched, { allowPlaintext: () => true });
  try {
    const link = await connectVia(b.port, r, {
      self: me.identity,
      purpose: "circuit",
      circuit: 0x80000001,
      encrypt: false,
    });
    const got = await b.accepted;
    assertEquals([got.encrypted, got.purpose, got.boundCircId], [false, "circuit", 0x80000001]);
    assertEquals(got.peer.identity, me.identity.public);
    link.close();
    got.close();
  } finally {
    await b.close();
  }
  // …but never a client's, and never a shared link.
  const c = await onPath(r, untouched, { allowPlaintext: () => true });
  try {
    await assertRejects(
      () => connectVia(c.port, r, { purpose: "circuit", circuit: 0x80000001, encrypt: false }),
      LinkError,
    );
    await assertRejects(() => c.accepted, LinkError, "from a client");
  } finally {
    await c.close();
  }
});

Deno.test("a pctcp relay carries one circuit per per-circuit link: the bound one, once", async () => {
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "pctcp");
  try {
    const entry = net.directory.relays[0]!;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: entry.orPort });
    const bound = 0x80000011;
    const link = await linkConnect(conn, {
      peer: { identity: fromBase64(entry.identity), linkKey: fromBase64(entry.linkKey) },
      purpose: "circuit",
      circuit: bound,
    });
    const got: number[][] = [];
    const chan = new Channel(link, {
      initiator: true,
      onCell: (cell) => got.push([cell.circId, cell.command]),
    });
    const done = chan.run();
    const create = (circId: number) => sendCreate2(chan, entry, circId);
    create(0x80000012); // not the circuit this link was bound to
    create(bound);
    create(0x80000013); // a second circuit on a per-circuit link
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assertEquals(got, [
      [0x80000012, CellCommand.DESTROY],
      [bound, CellCommand.CREATED2],
      [0x80000013, CellCommand.DESTROY],
    ]);
    // Destroying the bound circuit closes this connection (the relay closes its side).
    chan.sendControl({ circId: bound, command: CellCommand.DESTROY, payload: Uint8Array.of(3) });
    await done;
    assert(chan.closed);
  } finally {
    await net.stop();
  }
});

Deno.test("destroying one pctcp circuit closes its own connection and no other", async () => {
  // Connections are counted exactly: no link opened ahead of the next circuit.
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "tor", ["r1", "r2", "r3"], {
    pctcp: { preopen: false },
  });
  const s = await serve();
  try {
    const [a, b] = await Promise.all([net.client.buildCircuit("a"), net.client.buildCircuit("b")]);
    const r2 = net.relays[1]!.port;
    assertEquals(await connectionsTo(r2), 2);
    net.client.closeCircuit(a!, 3);
    for (let i = 0; i < 100 && (await connectionsTo(r2)) > 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(await connectionsTo(r2), 1);
    assert(!b!.closed);
    // The relays still carry traffic.
    const r = await timedFetch(`${s.url}/bytes/64KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
    });
    assertEquals(r.outcome, "ok", r.error ?? "");
  } finally {
    await s.stop();
    await net.stop();
  }
});

Deno.test("pctcp opens the next per-circuit link ahead: the second circuit takes it, bound to its CircID, and one spare stays open", async () => {
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "tor", ["r1", "r2", "r3"]);
  try {
    const r2 = net.relays[1]!.port;
    const a = await net.client.buildCircuit("a");
    // r1 opened a's link to r2, then one more ahead of the next circuit.
    for (let i = 0; i < 100 && (await connectionsTo(r2)) < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(await connectionsTo(r2), 2, "a's link and one opened ahead");
    const b = await net.client.buildCircuit("b");
    for (let i = 0; i < 100 && (await connectionsTo(r2)) < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(await connectionsTo(r2), 3, "a's, b's (the one opened ahead) and a new spare");
    assertEquals(
      net.relays[0]!.stats().peers.find((p) => p.nickname === "r2")!.circuitConnections,
      3,
    );
    net.client.closeCircuit(a!, 3);
    for (let i = 0; i < 100 && (await connectionsTo(r2)) > 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(await connectionsTo(r2), 2, "a's link closed with it; b's and the spare stay");
    assert(!b!.closed);
  } finally {
    await net.stop();
  }
});

Deno.test("ChannelPool.openShared opens another multiplexed link beside the one shared() keeps", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  const got: [Channel, number][] = [];
  const pool = new ChannelPool({ channel: { onCell: (cell, ch) => got.push([ch, cell.command]) } });
  try {
    const entry = net.directory.relays[0]!;
    const a = await pool.shared(entry);
    const b = await pool.openShared(entry);
    assert(a !== b, "a second link");
    assertEquals(await pool.shared(entry), a, "shared() keeps its one link");
    assertEquals(pool.count(entry.fingerprint), { shared: 2, circuit: 0 });
    assertEquals(
      [b.meta.purpose, b.meta.own, b.meta.initiator, b.meta.peer.fingerprint],
      ["shared", false, true, entry.fingerprint],
    );
    // The relay admits circuits on it as on the shared link.
    sendCreate2(b, entry, b.allocCircId());
    for (let i = 0; i < 500 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assertEquals(got, [[b, CellCommand.CREATED2]]);
  } finally {
    await pool.closeAll();
    await net.stop();
  }
});
