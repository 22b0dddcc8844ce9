/**
 * What one link handshake costs (TCP connect + LINK2 handshake, both ends in this process on
 * loopback), as a relay (identity proof: Ed25519 sign and verify) and as an anonymous client,
 * and where its CPU goes: the same crypto calls timed alone.
 *
 * `deno run -A bench/link_handshake.ts [--n 200]`
 * @module
 */
import { linkAccept, linkConnect } from "../lib/transport/link.ts";
import { generateRelayKeys, identityDigest } from "../lib/directory/keys.ts";
import { ntorClient1, ntorClient2, ntorServer } from "../lib/crypto/ntor.ts";
import { ed25519Sign, ed25519Verify } from "../lib/crypto/ed25519.ts";
import { percentile } from "../lib/stats/percentile.ts";

let n = 200;
for (let i = 0; i < Deno.args.length; i++) {
  if (Deno.args[i] === "--n") n = Number(Deno.args[++i]);
  else {
    console.error(`link_handshake: unknown argument: ${Deno.args[i]}`);
    Deno.exit(2);
  }
}

const responder = generateRelayKeys(), initiator = generateRelayKeys();
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;

async function once(asRelay: boolean): Promise<number> {
  const t0 = performance.now();
  const accepted = listener.accept().then((c) =>
    linkAccept(c, {
      keys: { identity: responder.identity.public, link: responder.link },
      allowRelay: () => true,
    })
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const [a, b] = await Promise.all([
    linkConnect(conn, {
      peer: { identity: responder.identity.public, linkKey: responder.link.public },
      ...(asRelay ? { self: initiator.identity } : {}),
      purpose: "circuit",
      circuit: 0x80000001,
    }),
    accepted,
  ]);
  const ms = performance.now() - t0;
  a.close();
  b.close();
  return ms;
}

function timeIt(f: () => void, k = n): number {
  const t0 = performance.now();
  for (let i = 0; i < k; i++) f();
  return (performance.now() - t0) / k;
}

for (const asRelay of [true, false]) {
  for (let i = 0; i < 20; i++) await once(asRelay);
  const ms: number[] = [];
  for (let i = 0; i < n; i++) ms.push(await once(asRelay));
  console.log(
    `link handshake (${asRelay ? "relay, with identity proof" : "client"}): p50 ${
      percentile(ms, 50).toFixed(3)
    } ms, p90 ${percentile(ms, 90).toFixed(3)} ms (${n}, both ends in one process)`,
  );
}
const peer = { id: identityDigest(responder.identity.public), onionKey: responder.link.public };
const server = { ...peer, onionSecret: responder.link.secret };
const msg = new Uint8Array(200);
const sig = ed25519Sign(initiator.identity.secret, msg);
const [state, skin] = ntorClient1(peer);
const [, reply] = ntorServer(server, skin, { keyLength: 96 });
console.log(
  [
    `ntor client1 ${(timeIt(() => ntorClient1(peer)) * 1000).toFixed(0)} µs`,
    `server ${(timeIt(() => ntorServer(server, skin, { keyLength: 96 })) * 1000).toFixed(0)} µs`,
    `client2 ${(timeIt(() => ntorClient2(state, reply, 96)) * 1000).toFixed(0)} µs`,
    `ed25519 sign ${
      (timeIt(() => ed25519Sign(initiator.identity.secret, msg)) * 1000).toFixed(0)
    } µs`,
    `verify ${
      (timeIt(() => ed25519Verify(initiator.identity.public, msg, sig)) * 1000).toFixed(0)
    } µs`,
  ].join(", "),
);
listener.close();
