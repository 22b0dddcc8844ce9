/**
 * TLS through libssl by FFI (lib/transport/tls.ts), against node:tls as the independent peer
 * in both roles, and against itself: exporter, certificates, 1 MiB both ways, a peer that
 * closes mid-handshake, libssl that cannot be loaded.
 */

import * as nodeTls from "node:tls";
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import {
  tlsAccept,
  tlsAvailable,
  tlsConnect,
  type TlsConnection,
  TlsError,
} from "../lib/transport/tls.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  skipUnless,
  within,
} from "./_assert.ts";

const ok = tlsAvailable();
const why = "libssl.so.3 through FFI is not available";

/** A self-signed RSA-2048 certificate made by the openssl command (test fixture only). */
async function makeCert(
  cn: string,
): Promise<{ certDer: Uint8Array; keyDer: Uint8Array; certPem: string; keyPem: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const run = async (args: string[]) => {
      const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
        .output();
      if (!out.success) {
        throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    await run([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-days",
      "2",
      "-keyout",
      `${dir}/k.pem`,
      "-out",
      `${dir}/c.pem`,
    ]);
    await run(["x509", "-in", `${dir}/c.pem`, "-outform", "DER", "-out", `${dir}/c.der`]);
    await run(["pkey", "-in", `${dir}/k.pem`, "-outform", "DER", "-out", `${dir}/k.der`]);
    return {
      certDer: await Deno.readFile(`${dir}/c.der`),
      keyDer: await Deno.readFile(`${dir}/k.der`),
      certPem: await Deno.readTextFile(`${dir}/c.pem`),
      keyPem: await Deno.readTextFile(`${dir}/k.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const certs = ok ? { a: await makeCert("www.a.net"), b: await makeCert("www.b.com") } : undefined;

async function readN(t: TlsConnection, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await t.read(out.subarray(got));
    if (r === null) throw new Error(`end of stream after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

/** An FFI client and an FFI server on a loopback pair. */
async function ffiPair(): Promise<[TlsConnection, TlsConnection]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const acc = l.accept().then((c) => tlsAccept(c, certs!.a));
    const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    const client = tlsConnect(c);
    return await Promise.all([client, acc]) as [TlsConnection, TlsConnection];
  } finally {
    l.close();
  }
}

Deno.test({
  name: "tlsConnect talks to a node:tls server, both ways, and sees its certificate",
  ignore: skipUnless(ok, why),
  async fn() {
    const got: Buffer[] = [];
    let serverSock: nodeTls.TLSSocket | undefined;
    const server = nodeTls.createServer({ key: certs!.b.keyPem, cert: certs!.b.certPem }, (s) => {
      serverSock = s;
      s.on("data", (d: Buffer) => {
        got.push(d);
        if (Buffer.concat(got).toString() === "ping from ffi") s.write("pong from node");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const t = await within(30_000, tlsConnect(conn), "handshake");
    try {
      assertEquals(t.peerCertificateDer(), certs!.b.certDer);
      assertEquals(t.certificateDer(), undefined);
      assert(t.version === "TLSv1.3" || t.version === "TLSv1.2", t.version);
      await t.write(new TextEncoder().encode("ping from ffi"));
      assertEquals(new TextDecoder().decode(await readN(t, 14)), "pong from node");
    } finally {
      t.close();
      serverSock?.destroy();
      await new Promise((r) => server.close(r));
    }
  },
});

Deno.test({
  name: "tlsAccept serves a node:tls client at TLS 1.2 and 1.3 and sees nothing of its certificate",
  ignore: skipUnless(ok, why),
  async fn() {
    for (const v of ["TLSv1.2", "TLSv1.3"] as const) {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const acc = l.accept().then((c) => tlsAccept(c, certs!.a));
      const client = nodeTls.connect({
        host: "127.0.0.1",
        port: (l.addr as Deno.NetAddr).port,
        rejectUnauthorized: false,
        minVersion: v,
        maxVersion: v,
      });
      const data: Buffer[] = [];
      client.on("data", (d: Buffer) => data.push(d));
      const secure = new Promise<void>((
        r,
        j,
      ) => (client.once("secureConnect", r), client.once("error", j)));
      const t = await within(30_000, acc, "handshake");
      try {
        await secure;
        assertEquals(t.version, v);
        const raw = client.getPeerCertificate(true).raw;
        assertEquals(new Uint8Array(raw), certs!.a.certDer);
        assertEquals(t.certificateDer(), certs!.a.certDer);
        assertEquals(t.peerCertificateDer(), undefined);
        client.write("hello from node");
        assertEquals(new TextDecoder().decode(await readN(t, 15)), "hello from node");
        await t.write(new TextEncoder().encode("hello from ffi"));
        await within(
          10_000,
          (async () => {
            while (Buffer.concat(data).toString() !== "hello from ffi") {
              await new Promise((r) => setTimeout(r, 10));
            }
          })(),
          "node client reads the reply",
        );
      } finally {
        t.close();
        client.destroy();
        l.close();
      }
    }
  },
});

Deno.test({
  name:
    "TlsConnection exports the same keying material on both sides and carries 1 MiB each way byte-exact",
  ignore: skipUnless(ok, why),
  async fn() {
    const [c, s] = await within(30_000, ffiPair(), "handshake");
    try {
      const label = "EXPORTER FOR TOR TLS CLIENT BINDING AUTH0003";
      const ctx = new Uint8Array(32).fill(7);
      const e1 = c.exportKeyingMaterial(label, ctx, 32),
        e2 = s.exportKeyingMaterial(label, ctx, 32);
      assertEquals(e1, e2);
      assert(e1.some((x) => x !== 0), "exporter is not all zeros");
      // Another context gives another secret.
      const e3 = c.exportKeyingMaterial(label, new Uint8Array(32), 32);
      assert(!e3.every((x, i) => x === e1[i]), "the context changes the exporter");
      assertEquals(c.peerCertificateDer(), certs!.a.certDer);
      assertEquals(s.certificateDer(), certs!.a.certDer);

      const up = randomBytes(1 << 20), down = randomBytes(1 << 20);
      // Many writes of odd sizes, not awaited one by one: the queue keeps their order.
      const send = async (t: TlsConnection, b: Uint8Array) => {
        for (let off = 0; off < b.length;) {
          const n = Math.min(b.length - off, 1 + ((off * 7919) % 50_000));
          t.queue(b.subarray(off, off + n));
          off += n;
          if (t.outbuf > 256 * 1024) await t.flush();
        }
        await t.flush();
      };
      const [, , gotUp, gotDown] = await within(
        60_000,
        Promise.all([
          send(c, up),
          send(s, down),
          readN(s, up.length),
          readN(c, down.length),
        ]),
        "1 MiB each way",
      );
      const h = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
      assertEquals(h(gotUp), h(up));
      assertEquals(h(gotDown), h(down));
      // A clean close: the peer reads end of stream (close_notify), not an error.
      c.close();
      assertEquals(await within(10_000, s.read(new Uint8Array(10)), "end of stream"), null);
    } finally {
      c.close();
      s.close();
    }
  },
});

Deno.test({
  name: "tlsConnect rejects a peer that closes mid-handshake, and tlsAccept a client that does",
  ignore: skipUnless(ok, why),
  async fn() {
    // A server that reads the ClientHello and hangs up.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const rude = l.accept().then(async (c) => {
      await c.read(new Uint8Array(4096));
      c.close();
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    const e = await within(
      10_000,
      assertRejects(() => tlsConnect(conn), TlsError, "closed"),
      "reject",
    );
    assertStringIncludes(e.message, "handshake");
    await rude;
    // A client that sends half a ClientHello and hangs up.
    const acc = l.accept().then((c) => tlsAccept(c, certs!.a));
    const c2 = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    await c2.write(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00));
    c2.close();
    await within(10_000, assertRejects(() => acc, TlsError, "closed"), "reject");
    // Garbage instead of TLS: an error from OpenSSL, not a hang.
    const acc3 = l.accept().then((c) => tlsAccept(c, certs!.a));
    const c3 = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    await c3.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
    await within(10_000, assertRejects(() => acc3, TlsError, "TLS handshake failed"), "reject");
    c3.close();
    l.close();
  },
});

Deno.test({
  name: "tlsAccept times out a silent peer",
  ignore: skipUnless(ok, why),
  async fn() {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const acc = l.accept().then((c) => tlsAccept(c, { ...certs!.a, timeoutMs: 300 }));
    const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    try {
      await within(10_000, assertRejects(() => acc, TlsError, "timed out"), "timeout");
    } finally {
      c.close();
      l.close();
    }
  },
});

Deno.test("tlsConnect says clearly that libssl cannot be loaded without FFI", async () => {
  const code = `import { tlsConnect } from ${
    JSON.stringify(new URL("../lib/transport/tls.ts", import.meta.url).href)
  };
try { await tlsConnect({ close() {} } as never); } catch (e) { console.log(e.message); }`;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  let text = "";
  try {
    await Deno.writeTextFile(file, code);
    // `deno run` without --allow-ffi (`deno eval` would grant everything).
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--allow-read", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    text = new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(file);
  }
  assertStringIncludes(text, "libssl.so.3");
  assertStringIncludes(text, "FFI permission not granted");
});
