import { assert, assertEquals } from "./_assert.ts";
import {
  generateRelayKeys,
  makeDocument,
  type SignedDocument,
  type Transport,
} from "../lib/directory/mod.ts";
import { Relay } from "../lib/relay/relay.ts";
import { OnionClient, type StreamEvent } from "../lib/client/client.ts";
import { socksConnect } from "./_socks.ts";

interface Net {
  relays: Relay[];
  client: OnionClient;
  server: Deno.HttpServer;
  serverPort: number;
  events: StreamEvent[];
  stop(): Promise<void>;
}

/** A loopback network: N relays (last two exits), an HTTP server, a client. */
export async function startNet(
  n: number,
  transports: Transport[],
  clientTransport: Transport = "tor",
  path?: string[],
): Promise<Net> {
  const holder: { doc?: SignedDocument } = {};
  const specs = [];
  const relays: Relay[] = [];
  for (let i = 0; i < n; i++) {
    const keys = generateRelayKeys();
    const r = new Relay({
      keys,
      nickname: `r${i + 1}`,
      directory: () => holder.doc!,
      transport: transports[i] ?? "tor",
      exitAllow: ["127.0.0.1:*"],
    });
    await r.start();
    relays.push(r);
    specs.push({
      nickname: `r${i + 1}`,
      keys,
      address: "127.0.0.1",
      orPort: r.port,
      flags: i === 0 ? ["guard"] : i >= n - 2 ? ["exit"] : [],
      bandwidth: 1000,
      transports: transports[i] === "pctcp"
        ? ["tor", "pctcp"] as Transport[]
        : ["tor"] as Transport[],
    });
  }
  const doc = makeDocument(specs).document;
  holder.doc = doc;
  const body = new Uint8Array(1 << 20).map((_, i) => (i * 31 + 7) & 0xff);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    if (u.pathname === "/big") return new Response(body);
    return new Response("hello onion");
  });
  const events: StreamEvent[] = [];
  const client = new OnionClient({
    directory: doc,
    transport: clientTransport,
    preemptive: false,
    onStream: (e) => events.push(e),
    ...(path ? { path } : {}),
  });
  await client.start();
  return {
    relays,
    client,
    server,
    serverPort: server.addr.port,
    events,
    async stop() {
      await client.stop();
      for (const r of relays) await r.stop();
      await server.shutdown();
    },
  };
}

async function httpGet(socksPort: number, port: number, path: string): Promise<Uint8Array> {
  const conn = await socksConnect(socksPort, "127.0.0.1", port);
  await conn.write(
    new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
  );
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const k = await conn.read(buf);
    if (k === null) break;
    chunks.push(buf.slice(0, k));
  }
  conn.close();
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let off = 0;
  for (const c of chunks) all.set(c, off), off += c.length;
  const sep = all.findIndex((_, i) =>
    all[i] === 13 && all[i + 1] === 10 && all[i + 2] === 13 && all[i + 3] === 10
  );
  return all.subarray(sep + 4);
}

Deno.test("OnionClient fetches a page through three tor relays", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  try {
    const body = await httpGet(net.client.socksPort, net.serverPort, "/");
    assertEquals(new TextDecoder().decode(body), "hello onion");
    assertEquals(net.events[0]?.path, ["r1", "r2", "r3"]);
    assertEquals(net.events[0]?.outcome, "ok");
  } finally {
    await net.stop();
  }
});

Deno.test("OnionClient moves 1 MiB byte-exact over pctcp relays (SENDMEs exercised)", async () => {
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "pctcp", ["r1", "r2", "r3"]);
  try {
    const body = await httpGet(net.client.socksPort, net.serverPort, "/big");
    assertEquals(body.length, 1 << 20);
    assert(body.every((b, i) => b === ((i * 31 + 7) & 0xff)), "body differs");
  } finally {
    await net.stop();
  }
});
