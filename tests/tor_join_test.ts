// A relay of ours in a C tor network, the parts without sockets: CREATE_FAST's key
// derivation, the in-band PCTCP hello, descriptor exit policies, the keys file with Tor's key
// set, and key renewal that republishes (injected clock, fake authorities).
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { createFastClient, createFastServer } from "../lib/crypto/create_fast.ts";
import { kdfTor } from "../lib/crypto/kdf.ts";
import { decodePctcpHello, encodePctcpHello, HELLO_BYTES } from "../lib/transport/pctcp_hello.ts";
import { exitPolicyLines, TorNetworkMembership } from "../lib/relay/tor_join.ts";
import {
  generateRelayKeys,
  relayFingerprint,
  relayKeysFromJson,
  relayKeysToJson,
} from "../lib/directory/keys.ts";
import { rsaFingerprintHex } from "../lib/keys/mod.ts";
import { verifyServerDescriptor } from "../lib/dirauth/mod.ts";
import { parseDirAuthorityLine } from "../lib/dirauth/authorities.ts";

Deno.test("createFastServer gives the keys KDF-TOR(X|Y) gives, and the client checks KH", () => {
  const x = crypto.getRandomValues(new Uint8Array(20));
  const y = crypto.getRandomValues(new Uint8Array(20));
  const { keys, reply } = createFastServer(x, y);
  // tor-spec §5.1.3 / §5.2.1: KH [0..20) Df [20..40) Db [40..60) Kf [60..76) Kb [76..92).
  const k = kdfTor(new Uint8Array([...x, ...y]), 92);
  assertEquals(keys, k.slice(20, 92));
  assertEquals(reply, new Uint8Array([...y, ...k.slice(0, 20)]));
  assertEquals(createFastClient(x, reply), keys);
  const bad = reply.slice();
  bad[25]! ^= 1;
  assertThrows(() => createFastClient(x, bad));
  assertThrows(() => createFastServer(new Uint8Array(19)));
});

Deno.test("encodePctcpHello round-trips and anything else in VPADDING is not a hello", () => {
  const linkKey = crypto.getRandomValues(new Uint8Array(32));
  const p = encodePctcpHello({ linkKey, address: "10.77.0.3", orPort: 5001, perCircuit: true });
  assertEquals(p.length, HELLO_BYTES);
  assertEquals(decodePctcpHello(p), {
    linkKey,
    address: "10.77.0.3",
    orPort: 5001,
    perCircuit: true,
  });
  assertEquals(decodePctcpHello(new Uint8Array(64)), undefined); // C tor's padding: zeros
  assertEquals(decodePctcpHello(p.subarray(0, HELLO_BYTES - 1)), undefined);
  assertThrows(() => encodePctcpHello({ linkKey, address: "::1", orPort: 1, perCircuit: false }));
});

Deno.test("exitPolicyLines turns exit allow entries into accept lines before reject *:*", () => {
  assertEquals(exitPolicyLines(["127.0.0.1:*", "10.0.0.0/8:80"], true), [
    "accept 127.0.0.1:*",
    "accept 10.0.0.0/8:80",
    "reject *:*",
  ]);
  assertEquals(exitPolicyLines(["127.0.0.1:*"], false), ["reject *:*"]);
  assertThrows(() => exitPolicyLines(["nonsense"], true));
});

Deno.test("relayKeysToJson keeps Tor's key set; the fingerprint is the RSA identity's", () => {
  const keys = generateRelayKeys();
  const fp = relayFingerprint(keys);
  assertEquals(fp, rsaFingerprintHex(keys.tor.rsaIdentity.publicDer));
  const back = relayKeysFromJson(relayKeysToJson(keys));
  assertEquals(relayFingerprint(back), fp);
  assertEquals(back.identity.public, keys.tor.ed25519Identity.public);
  assertEquals(back.onion.public, keys.tor.ntor.key.public);
  assertEquals(back.link.public, keys.link.public);
  // A v1 file (no Tor keys) is refused with a message that says what to do.
  const e = assertThrows(() =>
    relayKeysFromJson(JSON.stringify({ type: "pctcp-relay-keys", v: 1 }))
  );
  assert(/pctcp keygen/.test(String(e)), String(e));
});

Deno.test("TorNetworkMembership publishes a valid descriptor and republishes when keys renew", async () => {
  const t0 = new Date();
  let now = t0;
  const keys = generateRelayKeys(t0);
  const uploads: string[] = [];
  // A fake DirPort that accepts: a local HTTP server answering POST /tor/ and the GET back.
  const served = new Map<string, string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    if (req.method === "POST") {
      const text = await req.text();
      uploads.push(text);
      served.set("last", text);
      return new Response("", { status: 200, statusText: "[None]" });
    }
    if (u.pathname.startsWith("/tor/server/d/")) return new Response(served.get("last") ?? "");
    return new Response("", { status: 404 });
  });
  try {
    const port = server.addr.port;
    const m = new TorNetworkMembership({
      authorities: [
        parseDirAuthorityLine(
          `DirAuthority fake orport=1 no-v2 v3ident=${"A".repeat(40)} 127.0.0.1:${port} ${
            "B".repeat(40)
          }`,
        ),
      ],
      keys,
      nickname: "ours1",
      address: "127.0.0.1",
      orPort: () => 9001,
      exitPolicy: exitPolicyLines(["127.0.0.1:*"], true),
      now: () => now,
    });
    await m.start();
    assertEquals(uploads.length, 1);
    assertEquals(m.published.length, 1);
    assertEquals(m.published[0]!.status, 200);
    const d = verifyServerDescriptor(uploads[0]!, { now: t0 });
    assert(uploads[0]!.includes("accept 127.0.0.1:*\nreject *:*\n"), "exit policy written");
    assert(!/^platform Tor /m.test(uploads[0]!), "platform does not claim to be Tor");
    assert(d !== undefined);
    // Nothing due yet.
    assertEquals(await m.renew(), []);
    // 29 days on: the onion keys (28 days) and certificates have been renewed; the new
    // descriptor went out at once and carries the new ntor key.
    now = new Date(t0.getTime() + 29 * 24 * 3600_000);
    const oldNtor = keys.onion.public;
    const renewed = await m.renew();
    assert(renewed.includes("ntor"), `renewed: ${renewed}`);
    assert(!keys.onion.public.every((b, i) => b === oldNtor[i]), "ntor key replaced in place");
    assertEquals(keys.onion, keys.tor.ntor.key);
    assertEquals(uploads.length, 2);
    verifyServerDescriptor(uploads[1]!, { now });
    await m.stop();
  } finally {
    await server.shutdown();
  }
});
