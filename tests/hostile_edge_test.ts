// Edge stream rules against hostile peers (issue 24 items 1, 11 and 12): the stream deliver
// window is enforced with the edge buffer bounded, at the exit and at the client alike (both
// use EdgeStream).
import { assert, assertEquals } from "./_assert.ts";
import { EdgeStream } from "../lib/edge/stream.ts";
import { PackageWindow } from "../lib/circuit/flow.ts";
import { CellCommand, encodeCreated2, EndReason, RelayCommand } from "../lib/cell/mod.ts";
import { ClientCircuitCore, RelayCircuitCore } from "../lib/circuit/mod.ts";
import { generateRelayKeys } from "../lib/directory/mod.ts";
import { fingerprintDigest, identityDigest, relayFingerprint } from "../lib/directory/keys.ts";
import { ntorServer } from "../lib/crypto/ntor.ts";
import { startNet } from "./_net.ts";
import { socksConnect } from "./_socks.ts";
import { ClientCircuit } from "../lib/client/client.ts";
import type { Channel } from "../lib/channel/channel.ts";
import type { RelayEntry } from "../lib/directory/document.ts";
import { toBase64 } from "../lib/util/bytes.ts";

function fakeCircuit(sent: number[]) {
  return {
    sendRelay: (command: number) => void sent.push(command),
    packageWindow: new PackageWindow(1000, 100),
    removeStream: () => {},
  };
}

Deno.test("EdgeStream refuses the 501st cell while its socket does not drain, and buffers at most 500", async () => {
  const sent: number[] = [];
  let writes = 0;
  const stuck = {
    read: () => new Promise<number | null>(() => {}),
    write: () => (writes++, new Promise<number>(() => {})), // a socket that never drains
    close() {},
  };
  const s = new EdgeStream(1, stuck, fakeCircuit(sent));
  const cell = new Uint8Array(498);
  for (let i = 0; i < 500; i++) assert(s.deliver(cell), `cell ${i} refused`);
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(s.deliver(cell), false, "the 501st cell past the window was accepted");
  assert(s.bufferedBytes <= 500 * 498, `${s.bufferedBytes} bytes buffered`);
  assertEquals(sent.filter((c) => c === RelayCommand.SENDME).length, 0, "SENDME before a write");
  assert(writes >= 1);
});

Deno.test("EdgeStream sends one stream SENDME per 50 cells written and keeps taking cells as the socket drains", async () => {
  const sent: number[] = [];
  const sock = {
    read: () => new Promise<number | null>(() => {}),
    write: (p: Uint8Array) => Promise.resolve(p.length),
    close() {},
  };
  const s = new EdgeStream(1, sock, fakeCircuit(sent));
  const cell = new Uint8Array(498);
  // 2000 cells, 250 at a time with the writes let through: an honest sender that waits for
  // SENDMEs never overruns.
  for (let k = 0; k < 8; k++) {
    for (let i = 0; i < 250; i++) assert(s.deliver(cell), `cell ${k * 250 + i} refused`);
    await new Promise((r) => setTimeout(r, 0));
  }
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(sent.filter((c) => c === RelayCommand.SENDME).length, 40);
  assertEquals(s.deliverWindow.value, 500);
});

Deno.test("OnionClient keeps what a server-speaks-first destination sends before the SOCKS socket joins (item 11)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const banners = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  const serving = (async () => {
    for await (const c of banners) {
      const text = new TextEncoder().encode(`BANNER-${n++}\r\n`);
      c.write(text).then(() => c.close(), () => c.close());
    }
  })();
  try {
    // 15 at once, as an application opening several connections would.
    const one = async () => {
      const port = (banners.addr as Deno.NetAddr).port;
      const conn = await socksConnect(net.client.socksPort, "127.0.0.1", port);
      let text = "";
      const buf = new Uint8Array(256);
      for (;;) {
        const k = await conn.read(buf).catch(() => null);
        if (k === null) break;
        text += new TextDecoder().decode(buf.subarray(0, k));
      }
      conn.close();
      return text.startsWith("BANNER-");
    };
    const got = (await Promise.all(Array.from({ length: 15 }, one))).filter(Boolean).length;
    console.log(`item 11: ${got} of 15 banners arrived`);
    assertEquals(got, 15, "banners lost between CONNECTED and the SOCKS socket joining");
  } finally {
    banners.close();
    await serving.catch(() => {});
    await net.stop();
  }
});

Deno.test("ClientCircuitCore.abandonStream sends END and a late CONNECTED, DATA and END no longer close the circuit (item 12)", () => {
  const keys = generateRelayKeys();
  const hop = {
    id: identityDigest(keys.identity.public),
    onionKey: keys.onion.public,
    address: "127.0.0.1",
    port: 9000,
  };
  let relay!: RelayCircuitCore;
  const ended: number[] = [];
  const begun: number[] = [];
  let closed: string | undefined;
  const client: ClientCircuitCore = new ClientCircuitCore([hop], {
    send: (command, payload) => {
      if (command === CellCommand.CREATE2) {
        const [material, reply] = ntorServer(
          { id: hop.id, onionKey: keys.onion.public, onionSecret: keys.onion.secret },
          payload.subarray(4),
        );
        relay = new RelayCircuitCore(material, {
          toClient: (p) => client.onCell(CellCommand.RELAY, p),
          toNext: () => {},
          deliver: () => true,
          streamSendme: () => true,
          streamEnd: (id) => ended.push(id),
          begin: (id) => begun.push(id), // the exit is slow: no answer yet
          extend: () => {},
          truncateNext: () => {},
          destroy: () => {},
        });
        client.onCell(CellCommand.CREATED2, encodeCreated2(reply));
      } else if (command !== CellCommand.DESTROY) relay.fromPrev(command, payload);
    },
    built: () => {},
    connected: () => {},
    streamEnded: () => {},
    deliver: () => true,
    streamSendme: () => true,
    closed: (_r, _remote, why) => closed = why,
  });
  client.start();
  const id = client.begin("127.0.0.1", 80);
  assertEquals(begun, [id]);
  client.abandonStream(id, EndReason.TIMEOUT); // the client's stream timeout
  assertEquals(ended, [id], "no END reached the exit");
  relay.connected(id, new Uint8Array(0)); // the exit's late answer
  relay.originate(RelayCommand.DATA, id, new Uint8Array(10));
  relay.endStream(id, EndReason.DONE);
  assertEquals(closed, undefined, "a late CONNECTED closed the circuit");
  assertEquals(client.state, "open");
});

Deno.test("ClientCircuit keeps DATA that arrives with CONNECTED, before the SOCKS socket is attached (item 11)", async () => {
  const keys = generateRelayKeys();
  const entry = {
    nickname: "x",
    address: "127.0.0.1",
    orPort: 9000,
    identity: toBase64(keys.identity.public),
    fingerprint: relayFingerprint(keys),
    onionKey: toBase64(keys.onion.public),
  } as RelayEntry;
  let relay!: RelayCircuitCore;
  // deno-lint-ignore prefer-const -- assigned below, used by the fake channel's closures
  let circ!: ClientCircuit;
  const banner = new TextEncoder().encode("220 server speaks first\r\n");
  const chan = {
    closed: false,
    send: (_id: number, command: number, payload: Uint8Array) => relay.fromPrev(command, payload),
    sendControl: (cell: { command: number; payload: Uint8Array }) => {
      if (cell.command !== CellCommand.CREATE2) return;
      const [material, reply] = ntorServer({
        id: fingerprintDigest(relayFingerprint(keys)),
        onionKey: keys.onion.public,
        onionSecret: keys.onion.secret,
      }, cell.payload.subarray(4));
      relay = new RelayCircuitCore(material, {
        toClient: (p) => circ.onCell({ circId: 1, command: CellCommand.RELAY, payload: p }),
        toNext: () => {},
        deliver: () => true,
        streamSendme: () => true,
        streamEnd: () => {},
        // CONNECTED and the server's first bytes in one go, as when they share a frame.
        begin: (id) =>
          queueMicrotask(() => {
            relay.connected(id, new Uint8Array(0));
            relay.originate(RelayCommand.DATA, id, banner);
          }),
        extend: () => {},
        truncateNext: () => {},
        destroy: () => {},
      });
      queueMicrotask(() =>
        circ.onCell({ circId: 1, command: CellCommand.CREATED2, payload: encodeCreated2(reply) })
      );
    },
    closeAfterFlush() {},
    freeCircId() {},
  } as unknown as Channel;
  circ = new ClientCircuit("1", [entry], "", {
    chan,
    circId: 1,
    own: false,
    buildTimeoutMs: 5000,
  }, () => {});
  await circ.build();
  const { streamId, result } = await circ.openStream("127.0.0.1", 80, 5000);
  assertEquals(result, "connected");
  await new Promise((r) => setTimeout(r, 10)); // the SOCKS reply is being written meanwhile
  const written: Uint8Array[] = [];
  let eof!: () => void;
  const socket = {
    read: () => new Promise<number | null>((r) => eof = () => r(null)),
    write: (p: Uint8Array) => (written.push(p.slice()), Promise.resolve(p.length)),
    close() {},
  };
  const pumping = circ.attach(streamId, socket);
  await new Promise((r) => setTimeout(r, 10));
  eof();
  await pumping;
  const got = new TextDecoder().decode(new Uint8Array(written.flatMap((w) => [...w])));
  assertEquals(got, "220 server speaks first\r\n", "the server's first bytes were dropped");
  circ.close(0);
});
