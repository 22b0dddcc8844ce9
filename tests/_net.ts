/**
 * A loopback onion network in one process, for tests.
 * @module
 */

import {
  generateRelayKeys,
  makeDocument,
  type SignedDocument,
  type Transport,
} from "../lib/directory/mod.ts";
import { Relay, type RelayOptions } from "../lib/relay/relay.ts";
import type { RelayEntry } from "../lib/directory/document.ts";
import type { Channel } from "../lib/channel/channel.ts";
import { CellCommand } from "../lib/cell/cell.ts";
import { encodeCreate2, HandshakeType } from "../lib/cell/messages.ts";
import { ntorClient1 } from "../lib/crypto/ntor.ts";
import { fingerprintDigest } from "../lib/directory/keys.ts";
import { fromBase64 } from "../lib/util/bytes.ts";
import { OnionClient, type StreamEvent } from "../lib/client/client.ts";
import { advertisedTransports } from "../lib/transport/registry.ts";
import { parseSs } from "../lib/experiment/sockets.ts";

interface Net {
  relays: Relay[];
  client: OnionClient;
  server: Deno.HttpServer;
  serverPort: number;
  events: StreamEvent[];
  directory: SignedDocument;
  stop(): Promise<void>;
}

/** A loopback network: N relays (last two exits), an HTTP server, a client. */
export async function startNet(
  n: number,
  transports: Transport[],
  clientTransport: Transport = "tor",
  path?: string[],
  relayOptions: Partial<RelayOptions> = {},
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
      handshakeTimeoutMs: 2000,
      ...relayOptions,
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
      transports: advertisedTransports(transports[i] ?? "tor"),
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
    // The client shares its transport's options with the relays (caps, spare links), not
    // their link protection (security, IPsec check), which is a relay's.
    ...clientSection(clientTransport, relayOptions),
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
    directory: doc,
    async stop() {
      await client.stop();
      for (const r of relays) await r.stop();
      await server.shutdown();
    },
  };
}

/** Sends a CREATE2 (ntor, tor-spec §5.1) for `circId` to the relay `entry` on `chan`. */
export function sendCreate2(chan: Channel, entry: RelayEntry, circId: number): void {
  const [, skin] = ntorClient1({
    id: fingerprintDigest(entry.fingerprint),
    onionKey: fromBase64(entry.onionKey),
  });
  chan.sendControl({
    circId,
    command: CellCommand.CREATE2,
    payload: encodeCreate2({ htype: HandshakeType.NTOR, hdata: skin }),
  });
}

/** Established TCP connections whose peer port is `port` (the initiator's side of each link), from `ss`. */
export async function connectionsTo(port: number): Promise<number> {
  const out = await new Deno.Command("ss", {
    args: ["-tnH", "state", "established", `dport = :${port}`],
    stdout: "piped",
  }).output();
  return parseSs(new TextDecoder().decode(out.stdout), new Set([port])).connections;
}

/** The relays' options section of the client's transport, without the relay-only protection. */
function clientSection(transport: Transport, o: Partial<RelayOptions>): Record<string, unknown> {
  const section = (o as Record<string, unknown>)[transport];
  if (!section || typeof section !== "object") return {};
  const { security: _security, ipsecCheck: _check, ...rest } = section as Record<string, unknown>;
  return { [transport]: rest };
}
