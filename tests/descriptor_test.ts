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
  descriptorContentKey,
  DescriptorError,
  DescriptorPublisher,
  type DirAuthority,
  ed25519FromCurve25519,
  parseDirAuthorityLine,
  publishDescriptor,
  type PublishResult,
  verifyServerDescriptor,
} from "../lib/dirauth/mod.ts";
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

/** A one-shot fake DirPort: reads the request, answers with `answer` (or closes / stalls). */
function fakeDirPort(answer: string | "close" | "stall"): {
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
        const len = Number(/Content-Length: (\d+)/i.exec(text)?.[1] ?? -1);
        if (head >= 0 && text.length - head - 4 >= len) break;
      }
      got.push(text);
      if (answer === "stall") continue;
      if (answer !== "close") await c.write(new TextEncoder().encode(answer)).catch(() => {});
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

Deno.test("publishDescriptor POSTs to every DirPort and reports each answer without throwing", async () => {
  const ok = fakeDirPort("HTTP/1.0 200 Descriptor accepted\r\nDate: x\r\n\r\n");
  const no = fakeDirPort("HTTP/1.0 400 Missing TAP key in descriptor.\r\n\r\n");
  const notNew = fakeDirPort("HTTP/1.0 200 OK\r\nX-Descriptor-Not-New: Yes\r\n\r\n");
  const closes = fakeDirPort("close");
  const stalls = fakeDirPort("stall");
  // A port with nothing listening: bound, then released.
  const gone = fakeDirPort("close");
  gone.close();
  await gone.requests;
  try {
    const at = new Date("2026-12-04T01:00:00Z");
    const results = await within(
      30_000,
      publishDescriptor(
        "router x\n",
        [ok, no, notNew, closes, stalls, gone].map((x) => x.authority),
        { timeoutMs: 1500, now: () => at },
      ),
      "publishDescriptor did not finish",
    );
    const row = (r: PublishResult) => [r.status, r.accepted];
    assertEquals(results.map(row), [
      [200, true],
      [400, false],
      [200, false],
      [0, false],
      [0, false],
      [0, false],
    ]);
    assertEquals(results[0]!.reason, "Descriptor accepted");
    assertEquals(results[1]!.reason, "Missing TAP key in descriptor.");
    assertStringIncludes(results[2]!.reason, "X-Descriptor-Not-New");
    assertStringIncludes(results[3]!.reason, "closed without an answer");
    assertStringIncludes(results[4]!.reason, "no answer within 1500 ms");
    assertEquals(results[5]!.reason.length > 0, true);
    assertEquals(results[0]!.authority, ok.authority.nickname);
    assertEquals(results[0]!.at, at.toISOString());
  } finally {
    for (const f of [ok, no, notNew, closes, stalls]) f.close();
  }
  const [req] = await ok.requests;
  assert(req!.startsWith("POST /tor/ HTTP/1.0\r\n"), req);
  assertStringIncludes(req!, "Content-Length: 9\r\n");
  assert(req!.endsWith("\r\n\r\nrouter x\n"), req);
  await Promise.all([no, notNew, closes, stalls].map((x) => x.requests));
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

Deno.test("ed25519FromCurve25519 maps libsodium's ed25519_convert vector back to its Ed25519 key", () => {
  // libsodium test/default/ed25519_convert.c: this seed's Ed25519 key converts to this
  // curve25519 key (ed25519_convert.exp); dir-spec appendix C maps it back, with the sign bit.
  const seed = hex("421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee");
  const curve = hex("f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50");
  const ed = ed25519KeyPair(seed).public;
  const signBit = (ed[31]! >> 7) as 0 | 1;
  assertEquals(ed25519FromCurve25519(curve, signBit), ed);
  assert(!equal(ed25519FromCurve25519(curve, (1 - signBit) as 0 | 1), ed));
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
