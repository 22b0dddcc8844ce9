// Link-level hostile cases (issue 24 items 7 and 9): nonces of the WebCrypto AES-GCM path
// never repeat across links; plaintext hellos start no IPsec check before the peer proved
// its identity.
import { assert, assertEquals } from "./_assert.ts";
import { generateRelayKeys } from "../lib/directory/mod.ts";
import { linkAccept, linkConnect } from "../lib/transport/link.ts";

Deno.test("links without FFI seal concurrent WebCrypto frames with a nonce per link: 8 links × 100 frames all open (item 7)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      new URL("./fixtures/gcm_many_links.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  console.log(`item 7: ${text.trim().split("\n").at(-1)}`);
  assert(out.success && /ok 800$/.test(text.trim()), text);
});

function safeClose(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}

Deno.test("linkAccept asks the plaintext (IPsec) policy only after the peer proved its relay identity (item 9)", async () => {
  const keys = generateRelayKeys();
  const relay = generateRelayKeys();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let checks = 0, accepted = 0, refused = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      linkAccept(conn, {
        keys: { identity: keys.identity.public, link: keys.link },
        allowRelay: (id) => id.every((b, i) => b === relay.identity.public[i]),
        allowPlaintext: () => (checks++, true),
        remoteAddress: "127.0.0.1",
        timeoutMs: 5000,
      }).then((l) => (accepted++, l.close()), () => (refused++, safeClose(conn)));
    }
  })();
  const hello = (self?: typeof relay) =>
    Deno.connect({ hostname: "127.0.0.1", port }).then((c) =>
      linkConnect(c, {
        peer: { identity: keys.identity.public, linkKey: keys.link.public },
        purpose: "circuit",
        circuit: 0x80000001,
        encrypt: false,
        ...(self ? { self: relay.identity } : {}),
      }).then((l) => l.close(), () => safeClose(c))
    );
  try {
    // 200 anonymous plaintext hellos, 20 at a time: none may run the IPsec check.
    for (let k = 0; k < 10; k++) await Promise.all(Array.from({ length: 20 }, () => hello()));
    const end = performance.now() + 10_000;
    while (refused < 200 && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
    console.log(
      `item 9: 200 anonymous plaintext hellos → ${checks} IPsec checks, ${refused} refused`,
    );
    assertEquals(checks, 0, "an unauthenticated hello ran the IPsec check");
    assertEquals(refused, 200);
    // A relay that proves its identity is checked, once.
    await hello(relay);
    while (accepted < 1 && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
    assertEquals([checks, accepted], [1, 1]);
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});
