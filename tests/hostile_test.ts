// Hostile input and faults: every parser fuzzed (SOCKS, directory, records, link and circuit
// handshakes), slow-drip and truncated handshakes on a live relay and SOCKS port while an
// honest transfer runs, and a relay that restarts and rejoins.
import { assert, assertEquals, within } from "./_assert.ts";
import { sendCreate2, startNet } from "./_net.ts";
import { parseGreeting, parseRequest, parseUserPass, SocksError } from "../lib/client/socks.ts";
import {
  canonicalJson,
  DirectoryError,
  generateRelayKeys,
  makeDocument,
  verifyDocument,
} from "../lib/directory/mod.ts";
import { HandshakeError, ntorClient2, ntorServer } from "../lib/crypto/ntor.ts";
import { type ByteStream, linkAccept, LinkError } from "../lib/transport/link.ts";
import { Channel } from "../lib/channel/channel.ts";
import {
  CellCommand,
  decodeCreate2,
  encodeCreate2,
  encodeCreated2,
  RelayCommand,
} from "../lib/cell/mod.ts";
import { RelayCircuitCore } from "../lib/circuit/mod.ts";
import { ChannelPool, SharedTransport } from "../lib/transport/mod.ts";
import { OnionClient } from "../lib/client/client.ts";
import type { SignedDocument, Transport } from "../lib/directory/mod.ts";
import { socksConnect } from "./_socks.ts";
import { fingerprintDigest, relayFingerprint } from "../lib/directory/keys.ts";
import { torLinkAccept, torLinkConnect } from "../lib/transport/tor_link.ts";
import { readRecords } from "../lib/stats/load.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import { Relay } from "../lib/relay/relay.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

function mutate(seed: Uint8Array, rand: () => number): Uint8Array {
  const out = seed.slice(0, Math.floor(rand() * (seed.length + 8)));
  for (let k = 0; k < 1 + Math.floor(rand() * 4) && out.length; k++) {
    out[Math.floor(rand() * out.length)] = Math.floor(rand() * 256);
  }
  return out;
}

function randomBytes(rand: () => number, max = 300): Uint8Array {
  return new Uint8Array(Math.floor(rand() * max)).map(() => Math.floor(rand() * 256));
}

Deno.test("SOCKS parsers survive 5000 random and mutated inputs with SocksError only", () => {
  const rand = rng(7);
  const seeds = [
    Uint8Array.of(5, 2, 0, 2),
    Uint8Array.of(1, 3, 97, 98, 99, 1, 120),
    Uint8Array.of(5, 1, 0, 3, 3, 97, 46, 98, 0, 80),
    Uint8Array.of(5, 1, 0, 4, ...new Uint8Array(16), 1, 187),
  ];
  for (let i = 0; i < 5000; i++) {
    const input = i % 2 ? randomBytes(rand) : mutate(seeds[i % seeds.length]!, rand);
    for (const f of [parseGreeting, parseUserPass, parseRequest]) {
      try {
        f(input);
      } catch (e) {
        if (!(e instanceof SocksError)) throw new Error(`untyped error on input ${i}: ${e}`);
      }
    }
  }
});

Deno.test("verifyDocument refuses 2000 mutated documents with DirectoryError unless the signed content is unchanged", () => {
  const rand = rng(11);
  const keys = generateRelayKeys();
  const original = makeDocument([{
    nickname: "x",
    keys,
    address: "127.0.0.1",
    orPort: 1,
    flags: [],
    bandwidth: 1,
    transports: ["tor"],
  }]).document;
  const bytes = new TextEncoder().encode(JSON.stringify(original));
  const signed = (d: SignedDocument) => {
    const { signature: _s, ...body } = d;
    return canonicalJson(body);
  };
  let accepted = 0, refused = 0;
  for (let i = 0; i < 2000; i++) {
    const m = new TextDecoder().decode(mutate(bytes, rand));
    let doc: SignedDocument;
    try {
      doc = verifyDocument(m);
    } catch (e) {
      if (!(e instanceof DirectoryError)) throw new Error(`untyped error on input ${i}: ${e}`);
      refused++;
      continue;
    }
    // Accepted only if what the signature covers is what the authority signed: a mutation
    // may have cut nothing or hit a byte base64 ignores, never a signed field.
    assertEquals(signed(doc), signed(original), `mutant ${i} accepted with other content`);
    accepted++;
  }
  assert(refused > 1000, `only ${refused} mutants refused`);
  assertEquals(accepted + refused, 2000);
});

Deno.test("ntor refuses 2000 random onion skins and replies with HandshakeError", () => {
  const rand = rng(13);
  const keys = generateRelayKeys();
  const id = new Uint8Array(20).fill(1);
  for (let i = 0; i < 2000; i++) {
    try {
      ntorServer(
        { id, onionKey: keys.onion.public, onionSecret: keys.onion.secret },
        randomBytes(rand, 120),
      );
      throw new Error("a random skin was accepted");
    } catch (e) {
      if (!(e instanceof HandshakeError)) throw e;
    }
    try {
      ntorClient2({
        relay: { id, onionKey: keys.onion.public },
        x: keys.link.secret,
        publicX: keys.link.public,
      }, randomBytes(rand, 80));
      throw new Error("a random reply was accepted");
    } catch (e) {
      if (!(e instanceof HandshakeError)) throw e;
    }
  }
});

Deno.test("linkAccept refuses 300 random and mutated hellos with LinkError", async () => {
  const rand = rng(17);
  const keys = generateRelayKeys();
  const hello = new Uint8Array([
    ...new TextEncoder().encode("PCTCP-LINK1"),
    0,
    ...new Uint8Array(84),
  ]);
  for (let i = 0; i < 300; i++) {
    const input = i % 2 ? randomBytes(rand, 200) : mutate(hello, rand);
    let off = 0;
    const stream: ByteStream = {
      read(p) {
        if (off >= input.length) return Promise.resolve(null);
        const n = Math.min(p.length, input.length - off);
        p.set(input.subarray(off, off + n));
        off += n;
        return Promise.resolve(n);
      },
      write: (p) => Promise.resolve(p.length),
      close() {},
    };
    try {
      await linkAccept(stream, {
        keys: { identity: keys.identity.public, link: keys.link },
        timeoutMs: 1000,
      });
      throw new Error("a garbage link was accepted");
    } catch (e) {
      if (!(e instanceof LinkError)) throw new Error(`untyped error on input ${i}: ${e}`);
    }
  }
});

Deno.test("readRecords survives random bytes: every bad line reported, nothing thrown", async () => {
  const rand = rng(19);
  const dir = await Deno.makeTempDir();
  try {
    const f = `${dir}/junk.jsonl`;
    const good = JSON.stringify({
      v: 1,
      run: "r",
      id: 1,
      label: "x",
      transport: null,
      url: "u",
      size: null,
      start: "2026-01-01T00:00:00Z",
      phases_ms: {},
      progress_ms: {},
      bytes: 0,
      status: null,
      sha256: null,
      sha256_ok: null,
      circuit: null,
      source_port: null,
      outcome: "ok",
      error: null, // every field docs/records.md requires
    });
    const lines = Array.from(
      { length: 1000 },
      (_, i) =>
        i % 10 === 0 ? good : new TextDecoder().decode(randomBytes(rand, 80)).replace(/\n/g, ""),
    );
    await Deno.writeTextFile(f, lines.join("\n") + "\n");
    let n = 0;
    const res = await readRecords([f], () => n++);
    assertEquals(n + res.badCount, lines.filter((l) => l.trim()).length);
    assert(n >= 100);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("slow-drip and truncated handshakes are dropped while an honest transfer finishes byte-exact", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  const s = await serve();
  const bad: Deno.TcpConn[] = [];
  try {
    const honest = timedFetch(`${s.url}/bytes/2MiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
    });
    // Slow drip on the OR port: one byte now and then, never a whole hello.
    for (let i = 0; i < 5; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: net.relays[0]!.port });
      await c.write(new TextEncoder().encode("PCTC"));
      bad.push(c);
    }
    // Truncated SOCKS greetings.
    for (let i = 0; i < 5; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: net.client.socksPort });
      await c.write(Uint8Array.of(5));
      bad.push(c);
    }
    const r = await honest;
    assertEquals(r.outcome, "ok", r.error ?? "");
    assertEquals(r.sha256Ok, true);
    // The relay drops the drippers once its handshake timeout (2 s here) passes: each read
    // ends in EOF or a reset, never in bytes. 60 s bounds a hang on a loaded box; without the
    // timeout the drippers would be held forever.
    await within(
      60_000,
      Promise.all(
        bad.slice(0, 5).map(async (c, i) => {
          const got = await c.read(new Uint8Array(8)).catch(() => null);
          assertEquals(got, null, `dripper ${i} got bytes`);
        }),
      ),
      "the relay kept a slow-drip handshake open past its handshake timeout",
    );
  } finally {
    for (const c of bad) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await s.stop();
    await net.stop();
  }
});

Deno.test("a relay that restarts with its keys and port rejoins: new circuits through it work", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const s = await serve();
  let revived: Relay | undefined;
  try {
    assertEquals(
      (await timedFetch(`${s.url}/bytes/10KiB`, {
        socksHost: "127.0.0.1",
        socksPort: net.client.socksPort,
        socksUser: "a",
      })).outcome,
      "ok",
    );
    const old = net.relays[1]!;
    const port = old.port;
    const keys = old.keys;
    await old.stop();
    const during = await timedFetch(`${s.url}/bytes/10KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: "b",
      timeoutMs: 5000,
    });
    assert(during.outcome !== "ok", "a circuit through a stopped relay cannot work");
    revived = new Relay({
      keys,
      nickname: "r2",
      orPort: port,
      directory: net.directory,
      exitAllow: ["127.0.0.1:*"],
    });
    await revived.start();
    const after = await timedFetch(`${s.url}/bytes/10KiB`, {
      socksHost: "127.0.0.1",
      socksPort: net.client.socksPort,
      socksUser: "c",
      timeoutMs: 60_000, // an upper bound for a loaded box; the fetch ends when it is done
    });
    assertEquals(after.outcome, "ok", after.error ?? "");
  } finally {
    await revived?.stop();
    await s.stop();
    await net.stop();
  }
});

Deno.test("a relay refuses CREATE2 whose circuit id breaks the initiator's high bit (tor-spec §5.1.1)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"]);
  try {
    const entry = net.directory.relays[0]!;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: entry.orPort });
    const link = await torLinkConnect(conn, { expect: { rsaFingerprint: entry.fingerprint } });
    const got: number[][] = [];
    let twoAnswers!: () => void;
    const answered = new Promise<void>((r) => twoAnswers = r);
    const chan = new Channel(link, {
      initiator: true,
      onCell: (cell) => {
        got.push([cell.circId, cell.command, cell.payload[0]!]);
        if (got.length === 2) twoAnswers();
      },
    });
    const done = chan.run();
    const create = (circId: number) => sendCreate2(chan, entry, circId);
    create(0x00000005); // we opened the link, so our ids must have the high bit set
    create(0x80000005); // this one is right
    // Wait for both answers (60 s only bounds a hang; the relay answers in milliseconds).
    await within(60_000, answered, "the relay did not answer both CREATE2 cells");
    assertEquals(got, [[5, CellCommand.DESTROY, 1], [0x80000005, CellCommand.CREATED2, 0]]);
    chan.close();
    await done;
  } finally {
    await net.stop();
  }
});

/**
 * A hostile middle relay made of the library's own pieces (channel pool, shared transport,
 * relay circuit core): it relays honestly, but once the exit has answered a stream it
 * originates, with its own valid layer, a DATA cell on that stream id.
 */
function hostileMiddle(
  keys: ReturnType<typeof generateRelayKeys>,
  dir: () => SignedDocument,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  type Circ = { core: RelayCircuitCore; prev: [Channel, number]; next?: [Channel, number] };
  const byKey = new Map<Channel, Map<number, Circ>>();
  const put = (ch: Channel, id: number, c: Circ) => {
    if (!byKey.has(ch)) byKey.set(ch, new Map());
    byKey.get(ch)!.set(id, c);
  };
  let injected = 0;
  const pool: ChannelPool = new ChannelPool({
    self: keys,
    channel: {
      onCell: (cell, ch) => {
        const c = byKey.get(ch)?.get(cell.circId);
        if (cell.command === CellCommand.CREATE2 && !c) {
          const [material, reply] = ntorServer({
            id: fingerprintDigest(relayFingerprint(keys)),
            onionKey: keys.onion.public,
            onionSecret: keys.onion.secret,
          }, decodeCreate2(cell.payload).hdata);
          const circ: Circ = {
            prev: [ch, cell.circId],
            core: undefined as unknown as RelayCircuitCore,
          };
          circ.core = new RelayCircuitCore(material, {
            toClient: (p) => circ.prev[0].send(circ.prev[1], CellCommand.RELAY, p),
            toNext: (cmd, p) => circ.next?.[0].send(circ.next[1], cmd, p),
            deliver: () => true,
            streamSendme: () => true,
            streamEnd: () => {},
            begin: () => {},
            extend: async (ext) => {
              const target = dir().relays.find((r) =>
                r.fingerprint ===
                  Array.from(ext.id, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase()
              )!;
              const got = await shared.channelFor(target);
              circ.next = [got.channel, got.circId];
              put(got.channel, got.circId, circ);
              got.channel.sendControl({
                circId: got.circId,
                command: CellCommand.CREATE2,
                payload: encodeCreate2(ext.create),
              });
            },
            truncateNext: () => {},
            destroy: () => {},
          });
          put(ch, cell.circId, circ);
          ch.sendControl({
            circId: cell.circId,
            command: CellCommand.CREATED2,
            payload: encodeCreated2(reply),
          });
        } else if (c && cell.command === CellCommand.CREATED2) {
          c.core.created(cell.payload);
        } else if (
          c && (cell.command === CellCommand.RELAY || cell.command === CellCommand.RELAY_EARLY)
        ) {
          if (ch === c.prev[0] && cell.circId === c.prev[1]) {
            return c.core.fromPrev(cell.command, cell.payload);
          }
          c.core.fromNext(cell.command, cell.payload);
          // The exit's first answer is CONNECTED on stream 1: inject into that stream.
          if (injected++ === 0) {
            c.core.originate(RelayCommand.DATA, 1, new TextEncoder().encode("INJECTED-BY-MIDDLE"));
          }
        }
      },
    },
  });
  const shared = new SharedTransport(pool);
  const loop = (async () => {
    for await (const conn of listener) {
      try {
        pool.adoptTor(await torLinkAccept(conn, { keys: keys.tor }), "hostile", conn);
      } catch {
        conn.close();
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get injected() {
      return injected;
    },
    async stop() {
      listener.close();
      await loop.catch(() => {});
      await pool.closeAll();
    },
  };
}

Deno.test("a middle relay injecting DATA into the exit's stream gets the circuit torn down (layer check, end to end)", async () => {
  const keys = [generateRelayKeys(), generateRelayKeys(), generateRelayKeys()];
  const holder: { doc?: SignedDocument } = {};
  const dir = () => holder.doc!;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("x".repeat(100_000)),
  );
  const real = [0, 2].map((i) =>
    new Relay({ keys: keys[i]!, nickname: `r${i + 1}`, directory: dir, exitAllow: ["127.0.0.1:*"] })
  );
  for (const r of real) await r.start();
  const middle = hostileMiddle(keys[1]!, dir);
  const ports = [real[0]!.port, middle.port, real[1]!.port];
  holder.doc = makeDocument(keys.map((k, i) => ({
    nickname: `r${i + 1}`,
    keys: k,
    address: "127.0.0.1",
    orPort: ports[i]!,
    flags: i === 2 ? ["exit"] : i === 0 ? ["guard"] : [],
    bandwidth: 1,
    transports: ["tor"] as Transport[],
  }))).document;
  const client = new OnionClient({ directory: dir, preemptive: false, path: ["r1", "r2", "r3"] });
  await client.start();
  try {
    const conn = await socksConnect(client.socksPort, "127.0.0.1", server.addr.port);
    await conn.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let text = "";
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert(middle.injected > 0, "the hostile middle never saw the exit answer");
    assert(!text.includes("INJECTED"), "the client delivered the middle relay's bytes");
    assert(!text.includes("x".repeat(100_000)), "the circuit should have been torn down");
  } finally {
    await client.stop();
    for (const r of real) await r.stop();
    await middle.stop();
    await server.shutdown();
  }
});

Deno.test("Relay.stats answers before the relay has a directory (stats are written from the start)", async () => {
  const relay = new Relay({
    keys: generateRelayKeys(),
    nickname: "early",
    directory: () => {
      throw new DirectoryError("no valid directory yet");
    },
  });
  await relay.start();
  try {
    const st = relay.stats();
    assertEquals([st.nickname, st.circuits, st.peers.length], ["early", 0, 0]);
  } finally {
    await relay.stop();
  }
});
