import { assert, assertEquals } from "./_assert.ts";
import { socksConnect } from "./_socks.ts";
import { startNet } from "./_net.ts";

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
