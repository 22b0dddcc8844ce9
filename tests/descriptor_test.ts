// lib/dirauth: the server descriptor (dir-spec §2.1.1; order and signatures as tor 0.4.9's
// routerparse.c checks them), torrc DirAuthority lines, and publishing to the authorities —
// against fake DirPorts, a fake clock, and Debian's tor authorities (the oracle).
import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
  hex,
  skipUnless,
  within,
} from "./_assert.ts";
import {
  authoritiesFromTorrc,
  DEFAULT_PROTO,
  descriptorContentKey,
  descriptorDigestHex,
  DescriptorError,
  type DescriptorKeys,
  DescriptorPublisher,
  type DirAuthority,
  makeServerDescriptor,
  parseDirAuthorityLine,
  publishDescriptor,
  type PublishResult,
  signServerDescriptor,
  verifyServerDescriptor,
} from "../lib/dirauth/mod.ts";
import {
  descriptorKeys,
  ed25519FromCurve25519Public,
  generateTorRelayKeys,
  ntorCrossCert,
  rsaFingerprintHex,
} from "../lib/keys/mod.ts";
import { VERSION } from "../lib/version.ts";
import { freePort, haveTor, startTorTestnet } from "../lib/tor/testnet.ts";
import { ed25519 } from "@noble/curves/ed25519.js";
import { Buffer } from "node:buffer";
import {
  constants,
  createHash,
  createPublicKey,
  publicDecrypt,
  verify as cryptoVerify,
} from "node:crypto";
import type { Logger } from "../lib/util/log.ts";
import { ed25519KeyPair } from "../lib/crypto/ed25519.ts";

const FP = "0123456789ABCDEF0123456789ABCDEF01234567";
const V3 = "ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD";

// ---------------------------------------------------------------------------------------------
// DirAuthority lines

Deno.test("parseDirAuthorityLine reads testnet.ts's line with a spaced fingerprint", () => {
  const a = parseDirAuthorityLine(
    `DirAuthority tor1 orport=5001 no-v2 v3ident=${V3.toLowerCase()} 127.0.0.1:7001 ` +
      "0123 4567 89AB CDEF 0123 4567 89ab cdef 0123 4567",
  );
  assertEquals(a.nickname, "tor1");
  assertEquals(a.orPort, 5001);
  assertEquals(a.v3ident, V3);
  assertEquals(a.address, "127.0.0.1");
  assertEquals(a.dirPort, 7001);
  assertEquals(a.fingerprint, FP);
  assertEquals(a.bridge, false);
});

Deno.test("parseDirAuthorityLine reads a line without nickname or keyword, and tor's flags", () => {
  const a = parseDirAuthorityLine(
    `orport=9001 bridge weight=2 ipv6=[::1]:9001 upload=http://x 10.1.2.3:80 ${FP}`,
  );
  assertEquals(a.nickname, undefined);
  // As in tor, a first word that is a legal nickname is the nickname, even "bridge".
  assertEquals(parseDirAuthorityLine(`bridge 10.1.2.3:80 ${FP}`).nickname, "bridge");
  assertEquals(a.bridge, true);
  assertEquals(a.weight, 2);
  assertEquals(a.ipv6, "[::1]:9001");
  assertEquals(a.dirPort, 80);
  assertEquals(a.orPort, 9001);
});

Deno.test("parseDirAuthorityLine refuses bad lines with SyntaxError naming the line", () => {
  const bad = [
    "DirAuthority",
    `DirAuthority tor1 127.0.0.1 ${FP}`, // no DirPort
    `DirAuthority tor1 127.0.0.1:0 ${FP}`,
    `DirAuthority tor1 127.0.0.1:70000 ${FP}`,
    `DirAuthority tor1 localhost:7000 ${FP}`,
    `DirAuthority tor1 300.0.0.1:7000 ${FP}`,
    "DirAuthority tor1 127.0.0.1:7000 0123", // short fingerprint
    `DirAuthority tor1 127.0.0.1:7000 ${FP}0`,
    `DirAuthority tor1 127.0.0.1:7000 ${FP.slice(0, 39)}G`,
    `DirAuthority tor1 orport=x 127.0.0.1:7000 ${FP}`,
    `DirAuthority tor1 v3ident=ABC 127.0.0.1:7000 ${FP}`,
    `DirAuthority tor1 frobnicate=1 127.0.0.1:7000 ${FP}`,
    "DirAuthority tor1 127.0.0.1:7000",
  ];
  for (const line of bad) {
    const e = assertThrows(() => parseDirAuthorityLine(line), SyntaxError);
    assertStringIncludes(e.message, line);
  }
});

Deno.test("authoritiesFromTorrc takes only DirAuthority lines, with comments and continuations", () => {
  const torrc = [
    "# a private network",
    "TestingTorNetwork 1",
    `DirAuthority a orport=1 v3ident=${V3} 127.0.0.1:7001 ${FP} # first`,
    `dirauthority b 127.0.0.2:7002 \\`,
    `  ${FP.slice(0, 20)} ${FP.slice(20)}`,
    "DirAuthorityFallbackRate 1",
    "",
  ].join("\n");
  const as = authoritiesFromTorrc(torrc);
  assertEquals(as.map((a) => [a.nickname, a.address, a.dirPort, a.fingerprint]), [
    ["a", "127.0.0.1", 7001, FP],
    ["b", "127.0.0.2", 7002, FP],
  ]);
  const e = assertThrows(
    () => authoritiesFromTorrc(`Nickname x\n\nDirAuthority c 127.0.0.1:7 abc\n`),
    SyntaxError,
    "torrc line 3",
  );
  assertStringIncludes(e.message, "abc");
});

// ---------------------------------------------------------------------------------------------
// publishDescriptor against fake DirPorts on 127.0.0.1

type Answer = string | "close" | "stall";

/** A fake DirPort: reads each request, answers with `answer(request)` (or closes / stalls). */
function fakeDirPort(answer: Answer | ((request: string) => Answer)): {
  authority: DirAuthority;
  requests: Promise<string[]>;
  close(): void;
} {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const got: string[] = [];
  const conns: Deno.Conn[] = [];
  const requests = (async () => {
    for await (const c of l) {
      conns.push(c);
      let text = "";
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
        const head = text.indexOf("\r\n\r\n");
        const len = Number(/Content-Length: (\d+)/i.exec(text)?.[1] ?? 0);
        if (head >= 0 && text.length - head - 4 >= len) break;
      }
      got.push(text);
      const a = typeof answer === "function" ? answer(text) : answer;
      if (a === "stall") continue;
      if (a !== "close") await c.write(new TextEncoder().encode(a)).catch(() => {});
      c.close();
      conns.splice(conns.indexOf(c), 1);
    }
    return got;
  })();
  return {
    authority: parseDirAuthorityLine(`DirAuthority f${port} 127.0.0.1:${port} ${FP}`),
    requests,
    close() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

const DESC = "router x 127.0.0.1 1 0 0\nreject *:*\nrouter-signature\n";

/** Like C tor: POST → `200 [None]`; GET /tor/server/d/D → the descriptor if `holds` it. */
function torLike(holds: boolean, notNew = false) {
  return (req: string) => {
    if (req.startsWith("POST /tor/ ")) {
      return notNew
        ? "HTTP/1.0 200 OK\r\nX-Descriptor-Not-New: Yes\r\n\r\n"
        : "HTTP/1.0 200 [None]\r\nDate: x\r\n\r\n";
    }
    if (holds && req.startsWith(`GET /tor/server/d/${descriptorDigestHex(DESC)} `)) {
      return `HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n${DESC}`;
    }
    return "HTTP/1.0 404 Not found\r\n\r\n";
  };
}

Deno.test("publishDescriptor POSTs to every DirPort and reports each answer without throwing", async () => {
  const ok = fakeDirPort(torLike(true));
  const unparsed = fakeDirPort(torLike(false));
  const notNew = fakeDirPort(torLike(true, true));
  // Serves some other descriptor under that digest: not ours, so not confirmed.
  const other = fakeDirPort((req) =>
    req.startsWith("POST")
      ? "HTTP/1.0 200 [None]\r\n\r\n"
      : `HTTP/1.0 200 OK\r\n\r\n${DESC.replace("x", "y")}`
  );
  const no = fakeDirPort("HTTP/1.0 400 Missing TAP key in descriptor.\r\n\r\n");
  const closes = fakeDirPort("close");
  const stalls = fakeDirPort("stall");
  // A port with nothing listening: bound, then released.
  const gone = fakeDirPort("close");
  gone.close();
  await gone.requests;
  const all = [ok, unparsed, notNew, other, no, closes, stalls, gone];
  try {
    const at = new Date("2026-12-04T01:00:00Z");
    const results = await within(
      30_000,
      publishDescriptor(DESC, all.map((x) => x.authority), { timeoutMs: 1500, now: () => at }),
      "publishDescriptor did not finish",
    );
    const row = (r: PublishResult) => [r.status, r.accepted];
    assertEquals(results.map(row), [
      [200, true],
      [200, false],
      [200, true],
      [200, false],
      [400, false],
      [0, false],
      [0, false],
      [0, false],
    ]);
    assertStringIncludes(results[0]!.reason, "[None] (confirmed: the authority serves it)");
    assertStringIncludes(results[1]!.reason, "the authority does not serve it (GET answered 404");
    assertStringIncludes(results[2]!.reason, "X-Descriptor-Not-New, confirmed");
    assertStringIncludes(results[3]!.reason, "(GET answered 200 OK)");
    assertEquals(results[4]!.reason, "Missing TAP key in descriptor.");
    assertStringIncludes(results[5]!.reason, "closed without an answer");
    assertStringIncludes(results[6]!.reason, "no answer within 1500 ms");
    assertEquals(results[7]!.reason.length > 0, true);
    assertEquals(results[0]!.authority, ok.authority.nickname);
    assertEquals(results[0]!.at, at.toISOString());
    // Without confirmation a 200 counts, a Not-New does not.
    const quick = await publishDescriptor(DESC, [unparsed.authority, notNew.authority], {
      confirm: false,
    });
    assertEquals(quick.map(row), [[200, true], [200, false]]);
  } finally {
    for (const f of all.slice(0, -1)) f.close();
  }
  const [post, get] = await ok.requests;
  assert(post!.startsWith("POST /tor/ HTTP/1.0\r\n"), post);
  assertStringIncludes(post!, `Content-Length: ${DESC.length}\r\n`);
  assert(post!.endsWith(`\r\n\r\n${DESC}`), post);
  assert(get!.startsWith(`GET /tor/server/d/${descriptorDigestHex(DESC)} HTTP/1.0\r\n`), get);
  await Promise.all(all.slice(1, -1).map((x) => x.requests));
});

// ---------------------------------------------------------------------------------------------
// DescriptorPublisher with a fake clock and fake timers

class FakeClock {
  t = Date.parse("2026-12-04T00:00:00Z");
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => new Date(this.t);
  timers = {
    setTimeout: (fn: () => void, ms: number) => {
      const id = this.#next++;
      this.#timers.set(id, { at: this.t + ms, fn });
      return id;
    },
    clearTimeout: (id: number) => void this.#timers.delete(id),
  };
  get pending(): number {
    return this.#timers.size;
  }
  /** Moves the clock on by `ms`, firing due timers in order; `settle` after each. */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, x]) => x.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
      await settle();
    }
    this.t = end;
  }
}

function fakeDescriptor(now: Date, bandwidth: number): string {
  return `router x 127.0.0.1 9001 0 0\npublished ${now.toISOString()}\nuptime ${now.getTime()}\n` +
    `bandwidth ${bandwidth} ${bandwidth} 0\nreject *:*\n`;
}

Deno.test("DescriptorPublisher publishes at once, on change, before 18 h, and retries failures", async () => {
  const clock = new FakeClock();
  const auths = ["a", "b", "c"].map((n, i) =>
    parseDirAuthorityLine(`DirAuthority ${n} 127.0.0.${i + 1}:7000 ${FP}`)
  );
  let bandwidth = 1000;
  let failB = true;
  const calls: { at: number; to: string[]; text: string }[] = [];
  const logged: string[] = [];
  const log: Logger = {
    debug() {},
    info: (m) => logged.push(`info ${m}`),
    warn: (m) => logged.push(`warn ${m}`),
    error: (m) => logged.push(`error ${m}`),
  };
  const publisher = new DescriptorPublisher({
    authorities: auths,
    build: (now) => fakeDescriptor(now, bandwidth),
    now: clock.now,
    timers: clock.timers,
    log,
    publish: (text, to) => {
      calls.push({ at: clock.t, to: to.map((a) => a.nickname!), text });
      return Promise.resolve(to.map((a) => {
        const fail = a.nickname === "b" && failB;
        return {
          authority: a.nickname!,
          address: `${a.address}:${a.dirPort}`,
          status: fail ? 0 : 200,
          reason: fail ? "Connection refused" : "Descriptor accepted",
          accepted: !fail,
          at: clock.now().toISOString(),
        };
      }));
    },
  });
  const settle = () => publisher.settled();
  const t0 = clock.t;
  await publisher.start();
  assertEquals(calls.map((c) => c.to), [["a", "b", "c"]]);
  assertEquals(publisher.published.map((r) => [r.authority, r.status]), [
    ["a", 200],
    ["b", 0],
    ["c", 200],
  ]);
  assertEquals(publisher.allAccepted, false);
  assert(logged.some((l) => l === "warn descriptor to b: 0 Connection refused"), logged.join("\n"));
  assert(logged.some((l) => l === "info descriptor to a: 200 Descriptor accepted"));

  // Unchanged (only published/uptime differ): nothing for 4 minutes, then b is retried alone.
  await clock.advance(4 * 60_000, settle);
  assertEquals(calls.length, 1);
  failB = false;
  await clock.advance(60_000, settle);
  assertEquals(calls.map((c) => c.to), [["a", "b", "c"], ["b"]]);
  assertEquals(publisher.allAccepted, true);
  assertEquals(publisher.published.map((r) => r.status), [200, 200, 200]);

  // A change goes out to everyone at the next check (≤ 60 s).
  await clock.advance(10 * 60_000, settle);
  assertEquals(calls.length, 2);
  bandwidth = 2000;
  await clock.advance(60_000, settle);
  assertEquals(calls.length, 3);
  assertEquals(calls[2]!.to, ["a", "b", "c"]);
  assertStringIncludes(calls[2]!.text, "bandwidth 2000 2000 0");
  const changedAt = calls[2]!.at;

  // check() publishes a change at once, without waiting for the timer.
  bandwidth = 3000;
  await publisher.check();
  assertEquals(calls.length, 4);
  const lastFull = calls[3]!.at;
  assert(lastFull >= changedAt);

  // Unchanged: republished to all once 17 h have passed since the last full round (< 18 h).
  await clock.advance(17 * 3600_000 - 120_000, settle);
  assertEquals(calls.length, 4);
  await clock.advance(180_000, settle);
  assertEquals(calls.length, 5);
  assertEquals(calls[4]!.to, ["a", "b", "c"]);
  const age = calls[4]!.at - lastFull;
  assert(age >= 17 * 3600_000 && age < 18 * 3600_000, `republished after ${age} ms`);
  assert(calls[4]!.at > t0);

  await publisher.stop();
  assertEquals(clock.pending, 0);
  assertThrows(
    () => new DescriptorPublisher({ authorities: [], build: () => "" }),
    RangeError,
    "No directory authorities",
  );
  await clock.advance(48 * 3600_000, settle);
  assertEquals(calls.length, 5);
});

Deno.test("descriptorContentKey ignores published, uptime and signatures but not content", () => {
  const t1 = new Date("2026-12-04T00:00:00Z"), t2 = new Date("2026-12-05T00:00:00Z");
  assertEquals(
    descriptorContentKey(fakeDescriptor(t1, 5)),
    descriptorContentKey(fakeDescriptor(t2, 5)),
  );
  assert(
    descriptorContentKey(fakeDescriptor(t1, 5)) !== descriptorContentKey(fakeDescriptor(t1, 6)),
  );
});

Deno.test("publishDescriptor resolves no results for no authorities", async () => {
  assertEquals(await publishDescriptor("x", []), []);
});

Deno.test("ed25519FromCurve25519Public maps libsodium's ed25519_convert vector back to its Ed25519 key", () => {
  // libsodium test/default/ed25519_convert.c: this seed's Ed25519 key converts to this
  // curve25519 key (ed25519_convert.exp); dir-spec appendix C maps it back, with the sign bit.
  const seed = hex("421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee");
  const curve = hex("f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50");
  const ed = ed25519KeyPair(seed).public;
  const signBit = (ed[31]! >> 7) as 0 | 1;
  assertEquals(ed25519FromCurve25519Public(curve, signBit), ed);
  assert(!equal(ed25519FromCurve25519Public(curve, (1 - signBit) as 0 | 1), ed));
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---------------------------------------------------------------------------------------------
// The checker against a descriptor C tor wrote (Debian's tor 0.4.9.11, an authority of a
// private network from lib/tor/testnet.ts, fetched from its DirPort at /tor/server/authority).

const CTOR_DESCRIPTOR = Deno.readTextFileSync(
  new URL("./fixtures/ctor_server_descriptor_0.4.9.11.txt", import.meta.url),
);

Deno.test("verifyServerDescriptor accepts a descriptor written by C tor 0.4.9.11", () => {
  const p = verifyServerDescriptor(CTOR_DESCRIPTOR);
  assertEquals(p.nickname, "tor1");
  assertEquals(p.fingerprint, "1178063AD5C977179108079B7BE9DA39D8C70E88");
  assertEquals(p.platform, "Tor 0.4.9.11 on Linux");
  assertEquals(p.keywords[1], "identity-ed25519");
  assertEquals(p.keywords.slice(-2), ["router-sig-ed25519", "router-signature"]);
  assertEquals(p.exitPolicy.at(-1), "reject *:*");
});

Deno.test("verifyServerDescriptor refuses C tor's descriptor once tampered with", () => {
  const cases: [string, string][] = [
    // One more second of uptime: covered by both signatures, Ed25519 checked first.
    [CTOR_DESCRIPTOR.replace("\nuptime 0\n", "\nuptime 1\n"), "router-sig-ed25519 does not verify"],
    // A different RSA signature (its first base64 character changed).
    [
      CTOR_DESCRIPTOR.replace(
        /(-----BEGIN SIGNATURE-----\n)(.)/,
        (_, a, c) => a + (c === "A" ? "B" : "A"),
      ),
      "router-signature does not verify",
    ],
    // identity-ed25519 moved after master-key-ed25519.
    [
      CTOR_DESCRIPTOR.replace(
        /(identity-ed25519\n-----BEGIN ED25519 CERT-----\n[^]*?-----END ED25519 CERT-----\n)(master-key-ed25519 \S+\n)/,
        "$2$1",
      ),
      "Ed25519 certificate in wrong position",
    ],
    // The ntor sign bit flipped: the derived key is the other one.
    [
      CTOR_DESCRIPTOR.replace(
        /ntor-onion-key-crosscert (\d)/,
        (_, b) => `ntor-onion-key-crosscert ${b === "1" ? "0" : "1"}`,
      ),
      "ntor-onion-key-crosscert is not signed by the ntor onion key",
    ],
    // No onion-key at all.
    [
      CTOR_DESCRIPTOR.replace(
        /onion-key\n-----BEGIN RSA PUBLIC KEY-----\n[^]*?-----END RSA PUBLIC KEY-----\n/,
        "",
      ),
      "onion-key appears 0 times",
    ],
  ];
  for (const [text, why] of cases) {
    assert(text !== CTOR_DESCRIPTOR, `the tampering for "${why}" changed nothing`);
    assertThrows(() => verifyServerDescriptor(text), DescriptorError, why);
  }
});

// ---------------------------------------------------------------------------------------------
// Our descriptor

/** A fresh relay key set (lib/keys) as the descriptor takes it, with the signing key pair. */
function testKeys(now = new Date()): DescriptorKeys & { signing: { public: Uint8Array } } {
  const keys = generateTorRelayKeys(now);
  return { ...descriptorKeys(keys), signing: keys.signing.key };
}

/**
 * The ntor cross-certificate derived here independently of lib/keys (dir-spec appendix C:
 * scalar = clamped curve25519 secret, nonce prefix = SHA-512(secret | "Derive high part of
 * ed25519 key from curve25519 key\0")[0..32]; tor's crypto_ed25519.c and routerkeys.c
 * `make_ntor_onion_key_crosscert`: type 0x0A, no extensions).
 */
function ntorCrossCertInterim(
  secret: Uint8Array,
  edIdentity: Uint8Array,
  expires: Date,
): { cert: Uint8Array; signBit: 0 | 1 } {
  const L = ed25519.Point.Fn.ORDER;
  const le = (b: Uint8Array) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
  const le32 = (n: bigint) =>
    Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  const sha512 = (...p: Uint8Array[]) => {
    const h = createHash("sha512");
    for (const x of p) h.update(x);
    return new Uint8Array(h.digest());
  };
  const c = secret.slice();
  c[0]! &= 248;
  c[31]! &= 127;
  c[31]! |= 64;
  const a = le(c);
  const A = ed25519.Point.BASE.multiply(a % L).toBytes();
  const prefix = sha512(
    c,
    new TextEncoder().encode("Derive high part of ed25519 key from curve25519 key\0"),
  )
    .slice(0, 32);
  const body = new Uint8Array(40);
  body[0] = 1;
  body[1] = 0x0a;
  new DataView(body.buffer).setUint32(2, Math.ceil(expires.getTime() / 3600_000));
  body[6] = 1;
  body.set(edIdentity, 7);
  const r = le(sha512(prefix, body)) % L;
  const R = ed25519.Point.BASE.multiply(r).toBytes();
  const k = le(sha512(R, A, body)) % L;
  const S = (r + k * a) % L;
  const cert = new Uint8Array(104);
  cert.set(body);
  cert.set(R, 40);
  cert.set(le32(S), 72);
  return { cert, signBit: (A[31]! >> 7) as 0 | 1 };
}

const OPTS = {
  nickname: "pctcpTest1",
  address: "127.0.0.1",
  orPort: 9001,
  bandwidth: { rate: 1 << 20, burst: 2 << 20, observed: 12345 },
  published: new Date("2026-12-04T01:02:03.456Z"),
  uptime: 77,
  contact: "pctcp test",
};

Deno.test("makeServerDescriptor writes tor 0.4.9's order and both signatures verify", () => {
  const keys = testKeys(OPTS.published);
  const text = makeServerDescriptor(keys, OPTS);
  const p = verifyServerDescriptor(text, { now: OPTS.published });
  assertEquals(p.keywords, [
    "router",
    "identity-ed25519",
    "master-key-ed25519",
    "platform",
    "proto",
    "published",
    "fingerprint",
    "uptime",
    "bandwidth",
    "onion-key",
    "signing-key",
    "onion-key-crosscert",
    "ntor-onion-key-crosscert",
    "contact",
    "ntor-onion-key",
    "reject",
    "router-sig-ed25519",
    "router-signature",
  ]);
  const line = (k: string) => p.items.find((x) => x.keyword === k)!.line;
  assertEquals(line("router"), "router pctcpTest1 127.0.0.1 9001 0 0");
  assertEquals(line("published"), "published 2026-12-04 01:02:03");
  assertEquals(line("bandwidth"), "bandwidth 1048576 2097152 12345");
  assertEquals(line("uptime"), "uptime 77");
  assertEquals(p.proto, DEFAULT_PROTO);
  assertEquals(p.proto, "Cons=1-2 Desc=1-2 FlowCtrl=1 Link=4-5 LinkAuth=3 Microdesc=1-2 Relay=2");
  assertEquals(p.platform, `pctcp ${VERSION} on Deno ${Deno.version.deno}`);
  assertEquals(p.exitPolicy, ["reject *:*"]);
  assertEquals(p.fingerprint, rsaFingerprintHex(keys.identity.publicDer));
  assertEquals(p.edIdentity, keys.edIdentity);
  assertEquals(p.ntorOnionKey, keys.ntorPublic);
  const ntorLine = line("ntor-onion-key");
  assert(/^ntor-onion-key [A-Za-z0-9+/]{43}$/.test(ntorLine), ntorLine);
  assert(/^master-key-ed25519 [A-Za-z0-9+/]{43}$/.test(line("master-key-ed25519")));
  assert(/^router-sig-ed25519 [A-Za-z0-9+/]{86}$/.test(line("router-sig-ed25519")));
  assert(text.endsWith("-----END SIGNATURE-----\n"));
  assert(text.split("\n").every((l) => l.length <= 110), "no overlong line");
});

Deno.test("makeServerDescriptor's signatures verify with node:crypto directly", () => {
  const keys = testKeys(OPTS.published);
  const text = makeServerDescriptor(keys, {
    ...OPTS,
    exitPolicy: ["accept 127.0.0.1:80", "reject *:*"],
  });
  // Ed25519: SHA-256(prefix | text through "router-sig-ed25519 "), by the signing key.
  const edEnd = text.indexOf("\nrouter-sig-ed25519 ") + "\nrouter-sig-ed25519 ".length;
  const digest = createHash("sha256").update("Tor router descriptor signature v1")
    .update(text.slice(0, edEnd)).digest();
  const sigB64 = text.slice(edEnd, text.indexOf("\n", edEnd));
  const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), keys.signing.public]);
  assert(
    cryptoVerify(
      null,
      digest,
      createPublicKey({ key: spki, format: "der", type: "spki" }),
      Buffer.from(sigB64, "base64"),
    ),
    "router-sig-ed25519 verifies",
  );
  // RSA: PKCS#1 v1.5 type 1 over the raw SHA-1 of text through "router-signature\n".
  const rsaEnd = text.indexOf("\nrouter-signature\n") + "\nrouter-signature\n".length;
  const sig = Buffer.from(
    text.slice(rsaEnd).replace(/-----[A-Z ]+-----/g, "").replace(/\s/g, ""),
    "base64",
  );
  const recovered = publicDecrypt(
    {
      key: createPublicKey({
        key: Buffer.from(keys.identity.publicDer),
        format: "der",
        type: "pkcs1",
      }),
      padding: constants.RSA_PKCS1_PADDING,
    },
    sig,
  );
  assertEquals(
    new Uint8Array(recovered),
    new Uint8Array(createHash("sha1").update(text.slice(0, rsaEnd)).digest()),
  );
  assertEquals(verifyServerDescriptor(text).exitPolicy, ["accept 127.0.0.1:80", "reject *:*"]);
});

Deno.test("verifyServerDescriptor refuses our descriptor once tampered with", () => {
  const keys = testKeys(OPTS.published);
  const text = makeServerDescriptor(keys, OPTS);
  const other = testKeys(OPTS.published);
  const cases: [string, string][] = [
    [
      text.replace("bandwidth 1048576 ", "bandwidth 1048577 "),
      "router-sig-ed25519 does not verify",
    ],
    [text.replace("reject *:*", "accept *:*"), "router-sig-ed25519 does not verify"],
    // Re-signed with the Ed25519 key but a different RSA identity than signing-key names.
    [
      signServerDescriptor(text.slice(0, text.indexOf("router-sig-ed25519 ")), {
        identity: other.identity,
        signWithSigningKey: keys.signWithSigningKey,
      }),
      "router-signature does not verify",
    ],
    // Re-signed by another Ed25519 signing key than the certificate names.
    [
      signServerDescriptor(text.slice(0, text.indexOf("router-sig-ed25519 ")), {
        identity: keys.identity,
        signWithSigningKey: other.signWithSigningKey,
      }),
      "router-sig-ed25519 does not verify",
    ],
  ];
  for (const [t, why] of cases) {
    assert(t !== text);
    assertThrows(() => verifyServerDescriptor(t), DescriptorError, why);
  }
  assertThrows(
    () => verifyServerDescriptor(text.replace("-----END SIGNATURE-----", "")),
    SyntaxError,
  );
  // The certificates expire: 30 days for the signing key cert here.
  assertThrows(
    () =>
      verifyServerDescriptor(text, { now: new Date(OPTS.published.getTime() + 31 * 86400_000) }),
    DescriptorError,
    "identity-ed25519 has expired",
  );
});

Deno.test("makeServerDescriptor refuses what tor would refuse", () => {
  const keys = testKeys(OPTS.published);
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, nickname: "bad-name" }), TypeError);
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, nickname: "a".repeat(20) }), TypeError);
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, address: "::1" }), TypeError);
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, orPort: 0 }), RangeError);
  assertThrows(
    () => makeServerDescriptor(keys, { ...OPTS, platform: "Tor 0.4.9.11 on Linux" }),
    RangeError,
    "must not claim to be Tor",
  );
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, contact: "a\nreject *:*" }), TypeError);
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, exitPolicy: [] }), RangeError);
  assertThrows(
    () => makeServerDescriptor(keys, { ...OPTS, exitPolicy: ["accept everything"] }),
    SyntaxError,
  );
  assertThrows(() => makeServerDescriptor(keys, { ...OPTS, proto: "Link=x" }), SyntaxError);
  assertThrows(
    () => makeServerDescriptor(keys, { ...OPTS, bandwidth: { rate: 0, burst: 0, observed: 0 } }),
    RangeError,
  );
});

Deno.test("descriptorContentKey of our descriptor changes with content, not with time", () => {
  const keys = testKeys(OPTS.published);
  const a = makeServerDescriptor(keys, OPTS);
  const later = makeServerDescriptor(keys, {
    ...OPTS,
    published: new Date(OPTS.published.getTime() + 3600_000),
    uptime: 3677,
  });
  assert(a !== later);
  assertEquals(descriptorContentKey(a), descriptorContentKey(later));
  const moved = makeServerDescriptor(keys, { ...OPTS, orPort: 9002 });
  assert(descriptorContentKey(a) !== descriptorContentKey(moved));
});

// ---------------------------------------------------------------------------------------------
// The oracle: Debian's tor 0.4.9 authorities (a private network from lib/tor/testnet.ts).

const TOR_OK = await haveTor();

Deno.test({
  name:
    "publishDescriptor gets 200 from every tor authority, and tor's refusals for bad descriptors",
  ignore: skipUnless(TOR_OK, "Debian's tor is not installed"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pctcp-desc-" });
    const net = await startTorTestnet({ dir, attempts: 2 });
    try {
      const authorities = authoritiesFromTorrc(
        await Deno.readTextFile(`${net.dir}/${net.relays[0]!.nickname}/torrc`),
      );
      assertEquals(authorities.map((a) => a.dirPort), net.relays.map((r) => r.dirPort));

      // Our checker agrees with C tor on C tor's own descriptor.
      const own = await fetch(`http://127.0.0.1:${net.relays[0]!.dirPort}/tor/server/authority`);
      assertEquals(verifyServerDescriptor(await own.text(), { now: new Date() }).nickname, "tor1");

      const now = new Date();
      const keys = testKeys(now);
      const opts = {
        nickname: "pctcpOracle",
        address: "127.0.0.1",
        orPort: freePort(), // nothing listens: accepted, never listed
        bandwidth: { rate: 1 << 20, burst: 1 << 20, observed: 0 },
        published: now,
        contact: "pctcp descriptor test",
      };
      const text = makeServerDescriptor(keys, opts);
      const results = await publishDescriptor(text, authorities, { timeoutMs: 30_000 });
      // tor answers "200 [None]" (dircache.c: the message stays unset on success), and each
      // answer was confirmed by fetching the descriptor back by digest.
      assertEquals(
        results.map((r) => [r.authority, r.status, r.accepted]),
        authorities.map((a) => [a.nickname, 200, true]),
      );
      // Each authority now serves it, byte for byte.
      const fp = rsaFingerprintHex(keys.identity.publicDer);
      for (const a of authorities) {
        const served = await fetch(`http://${a.address}:${a.dirPort}/tor/server/fp/${fp}`);
        assertEquals(served.status, 200);
        assertEquals((await served.text()).trimEnd(), text.trimEnd());
      }

      assert(results.every((r) => r.reason === "[None] (confirmed: the authority serves it)"));

      // The same descriptor again: 200 with X-Descriptor-Not-New; the authority still holds it.
      const again = await publishDescriptor(text, authorities.slice(0, 1));
      assertEquals(again.map((r) => [r.status, r.accepted]), [[200, true]]);
      assertStringIncludes(again[0]!.reason, "X-Descriptor-Not-New, confirmed");

      // Without the TAP key (and its cross-certificate), properly re-signed: tor's 400.
      const body = text.slice(0, text.indexOf("router-sig-ed25519 "))
        .replace(
          /onion-key\n-----BEGIN RSA PUBLIC KEY-----\n[^]*?-----END RSA PUBLIC KEY-----\n/,
          "",
        )
        .replace(
          /onion-key-crosscert\n-----BEGIN CROSSCERT-----\n[^]*?-----END CROSSCERT-----\n/,
          "",
        );
      const noTap = signServerDescriptor(body, keys);
      const refused = await publishDescriptor(noTap, authorities, { timeoutMs: 30_000 });
      assertEquals(
        refused.map((r) => [r.status, r.reason, r.accepted]),
        authorities.map(() => [400, "Missing TAP key in descriptor.", false]),
      );

      // A broken router-signature: tor parses nothing and still answers "200 [None]"
      // (process_descs.c keeps the caller's message); only the fetch-back shows it was not taken.
      const fresh = makeServerDescriptor(testKeys(now), { ...opts, nickname: "pctcpBroken" });
      const broken = fresh.replace(
        /(-----BEGIN SIGNATURE-----\n)(.)/,
        (_, a, c) => a + (c === "A" ? "B" : "A"),
      );
      assertThrows(() => verifyServerDescriptor(broken), DescriptorError, "router-signature");
      const bad = await publishDescriptor(broken, authorities.slice(0, 1), { timeoutMs: 30_000 });
      assertEquals(bad.map((r) => [r.status, r.accepted]), [[200, false]]);
      assertStringIncludes(bad[0]!.reason, "[None] (not taken: the authority does not serve it");
      const unconfirmed = await publishDescriptor(broken, authorities.slice(0, 1), {
        confirm: false,
      });
      assertEquals(unconfirmed.map((r) => [r.status, r.reason]), [[200, "[None]"]]);

      // The publisher, wired as a relay wires it, with the real clock and timers.
      const relayKeys = generateTorRelayKeys(now);
      const publisher = new DescriptorPublisher({
        authorities,
        build: (t) =>
          makeServerDescriptor(relayKeys, { ...opts, nickname: "pctcpPublisher", published: t }),
        checkMs: 3600_000,
      });
      try {
        await publisher.start();
        assertEquals(publisher.rounds, 1);
        assert(publisher.allAccepted, JSON.stringify(publisher.published));
        assertEquals(
          publisher.published.map((r) => r.authority),
          authorities.map((a) => a.nickname),
        );
      } finally {
        await publisher.stop();
      }
    } finally {
      await net.stop();
      for (const d of [dir, `${dir}-retry2`]) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  },
});

Deno.test("makeServerDescriptor takes TorRelayKeys, and lib/keys's ntor cross-cert matches ours", () => {
  const keys = generateTorRelayKeys(OPTS.published);
  const text = makeServerDescriptor(keys, OPTS);
  assertEquals(
    verifyServerDescriptor(text, { now: OPTS.published }).edIdentity,
    keys.ed25519Identity.public,
  );
  // Ed25519 is deterministic: two derivations of the same key sign the same bytes.
  const expires = new Date(OPTS.published.getTime() + 28 * 86400_000);
  const theirs = ntorCrossCert(
    keys.ntor.key.secret,
    keys.ntor.key.public,
    keys.ed25519Identity.public,
    expires,
  );
  const ours = ntorCrossCertInterim(keys.ntor.key.secret, keys.ed25519Identity.public, expires);
  assertEquals(theirs.signBit, ours.signBit);
  assertEquals(theirs.cert, ours.cert);
});
