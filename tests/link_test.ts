import { createCipheriv, createHash } from "node:crypto";
import { assert, assertEquals } from "./_assert.ts";
import { nativeAes } from "../lib/transport/openssl.ts";
import { generateRelayKeys } from "../lib/directory/mod.ts";
import {
  type ByteStream,
  type Link,
  linkAccept,
  linkConnect,
  LinkError,
  MAX_FRAME,
} from "../lib/transport/link.ts";

/**
 * A link pair over loopback TCP; `tap` sees every chunk the initiator's socket writes. An
 * unencrypted pair is what the handshake allows for plaintext: a per-circuit link from a relay
 * whose address the responder's policy accepts (IPsec or insecure lab mode).
 */
async function pair(encrypt: boolean, tap?: (b: Uint8Array) => Uint8Array) {
  const keys = generateRelayKeys();
  const initiator = generateRelayKeys();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = (async () => {
    const conn = await listener.accept();
    return linkAccept(conn, {
      keys: { identity: keys.identity.public, link: keys.link },
      allowRelay: () => true,
      allowPlaintext: () => true,
    });
  })();
  const raw = await Deno.connect({ hostname: "127.0.0.1", port });
  const stream: ByteStream = {
    read: (p) => raw.read(p),
    write: (p) => raw.write(tap ? tap(p) : p),
    close: () => raw.close(),
  };
  const a = await linkConnect(stream, {
    peer: { identity: keys.identity.public, linkKey: keys.link.public },
    encrypt,
    ...(encrypt ? {} : {
      self: { secret: initiator.identity.secret, public: initiator.identity.public },
      purpose: "circuit" as const,
      circuit: 0x80000001,
    }),
  });
  const b = await accepted;
  listener.close();
  return { a, b };
}

async function readAll(l: Link, n: number): Promise<{ bytes: Uint8Array; frames: number }> {
  const out = new Uint8Array(n);
  let off = 0, frames = 0;
  while (off < n) {
    const f = await l.read();
    if (!f) throw new Error(`link ended after ${off} of ${n} bytes`);
    // Large frames come out in pieces of at most 8 cells (read buckets interleave finely).
    assert(f.length <= 8 * 514, `a read returned ${f.length} bytes`);
    out.set(f, off);
    off += f.length;
    frames++;
  }
  return { bytes: out, frames };
}

for (const encrypt of [true, false]) {
  Deno.test(`Link merges writes of one turn into frames, bytes in order (encrypt ${encrypt})`, async () => {
    let socketWrites = 0;
    const { a, b } = await pair(encrypt, (p) => (socketWrites++, p));
    socketWrites = 0; // the handshake's
    try {
      // 200 small writes and some large ones (both GCM code paths), in one turn.
      const sizes = [...Array(200).fill(514), 20000, 70000, 3, 150000];
      const total = sizes.reduce((s, x) => s + x, 0);
      const want = new Uint8Array(total).map((_, i) => (i * 7 + 3) & 0xff);
      const reused = new Uint8Array(150000);
      let off = 0;
      const writes: Promise<void>[] = [];
      for (const n of sizes) {
        // The writer reuses its buffer at once: the link must have copied it.
        reused.set(want.subarray(off, off + n));
        writes.push(a.write(reused.subarray(0, n)));
        reused.fill(0);
        off += n;
      }
      const got = await readAll(b, total);
      await Promise.all(writes);
      assertEquals(got.bytes, want);
      // Merged: far fewer frames (one socket write each) than writes, none over MAX_FRAME.
      assert(socketWrites < 20, `expected merged frames, got ${socketWrites} socket writes`);
      assert(socketWrites >= Math.ceil(total / MAX_FRAME), `socket writes: ${socketWrites}`);
    } finally {
      a.close();
      b.close();
    }
  });
}

Deno.test("Link close still sends what was written just before", async () => {
  const { a, b } = await pair(true);
  try {
    const msg = new Uint8Array(40000).fill(9);
    await a.write(msg);
    a.close();
    const got = await readAll(b, msg.length);
    assertEquals(got.bytes, msg);
    assertEquals(await b.read(), null);
  } finally {
    b.close();
  }
});

for (const size of [600, 30000]) {
  Deno.test(`Link refuses a tampered ${size}-byte frame with LinkError`, async () => {
    let tamper = false;
    const { a, b } = await pair(true, (p) => {
      if (!tamper || p.length < 100) return p;
      const q = p.slice();
      q[50]! ^= 1;
      return q;
    });
    try {
      tamper = true;
      await a.write(new Uint8Array(size));
      let err: unknown;
      try {
        await b.read();
      } catch (e) {
        err = e;
      }
      assert(err instanceof LinkError, `expected LinkError, got ${err}`);
    } finally {
      a.close();
      b.close();
    }
  });
}

Deno.test({
  // Skipped (reported as ignored) where libcrypto.so.3 cannot be loaded.
  name: "OpenSSL's AES-CTR and AES-GCM (FFI) give node:crypto's bytes",
  ignore: nativeAes === undefined,
  fn() {
    const aes = nativeAes!;
    const key = new Uint8Array(16).map((_, i) => i * 9);
    const ctr = new aes.ctr(key);
    const got = new Uint8Array(3000).map((_, i) => i & 0xff);
    const want = got.slice();
    // Cell-sized calls that do not line up with AES blocks, as relay crypto makes them.
    for (let off = 0; off < got.length; off += 509) ctr.xor(got.subarray(off, off + 509));
    const ks = createCipheriv("aes-128-ctr", key, new Uint8Array(16)).update(new Uint8Array(3000));
    assertEquals(got, want.map((b, i) => b ^ ks[i]!));

    // More streams than pooled contexts, used in turns: each one that lost its context
    // re-keys at its own (unaligned) position and goes on with the same keystream.
    const keys = Array.from({ length: 70 }, (_, k) => new Uint8Array(16).fill(k));
    const streams = keys.map((k) => new aes.ctr(k));
    const outs = keys.map(() => new Uint8Array(509 * 5));
    for (let round = 0; round < 5; round++) {
      for (const [k, st] of streams.entries()) {
        if ((k + round) % 3 === 0) continue; // some skip a turn, so positions differ
        st.xor(outs[k]!.subarray(round * 509, round * 509 + 509));
      }
    }
    for (const [k, key] of keys.entries()) {
      const used = [0, 1, 2, 3, 4].filter((round) => (k + round) % 3 !== 0);
      const ref = createCipheriv("aes-128-ctr", key, new Uint8Array(16))
        .update(new Uint8Array(509 * used.length));
      used.forEach((round, i) =>
        assertEquals(
          outs[k]!.subarray(round * 509, round * 509 + 509),
          new Uint8Array(ref.subarray(i * 509, i * 509 + 509)),
          `stream ${k} round ${round}`,
        )
      );
    }

    const k32 = new Uint8Array(32).map((_, i) => 255 - i);
    const iv = new Uint8Array(12).fill(7), aad = Uint8Array.of(0, 0, 1, 44);
    const plain = new Uint8Array(300).map((_, i) => i * 3);
    const body = plain.slice(), tag = new Uint8Array(16);
    aes.gcmSeal(k32, iv, aad, body, tag);
    const c = createCipheriv("aes-256-gcm", k32, iv);
    c.setAAD(aad);
    assertEquals(body, new Uint8Array(c.update(plain)));
    c.final();
    assertEquals(tag, new Uint8Array(c.getAuthTag()));
    const out = new Uint8Array(300);
    assert(aes.gcmOpen(k32, iv, aad, body, tag, out));
    assertEquals(out, plain);
    tag[0]! ^= 1;
    assert(!aes.gcmOpen(k32, iv, aad, body, tag, out), "a bad tag verified");

    // Tor's running SHA-1: the digest so far, and a trial that does not advance it.
    const seed = new Uint8Array(20).fill(5), cell = new Uint8Array(509).fill(1);
    const sha = new aes.sha1(seed);
    const ref = createHash("sha1").update(seed);
    const d = new Uint8Array(20);
    sha.trial(cell, d);
    assertEquals(d, new Uint8Array(ref.copy().update(cell).digest()));
    sha.current(d);
    assertEquals(d, new Uint8Array(ref.copy().digest()));
    sha.update(cell), ref.update(cell);
    sha.current(d);
    assertEquals(d, new Uint8Array(ref.copy().digest()));
  },
});

Deno.test("Link.writev sends its parts in order, as write would their concatenation", async () => {
  const { a, b } = await pair(true);
  try {
    const parts = [3, 514, 70000, 1].map((n, k) => new Uint8Array(n).fill(k + 1));
    await a.writev(parts);
    const got = await readAll(b, 70518);
    let off = 0;
    for (const p of parts) {
      assertEquals(got.bytes.subarray(off, off + p.length), p);
      off += p.length;
    }
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("links without FFI (node:crypto and WebCrypto AES-GCM) carry frames of every size", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      new URL("./fixtures/link_fallback.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success && text.trim().endsWith("ok"), text);
});
