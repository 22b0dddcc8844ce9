// Tor's certificates checked against C tor's own bytes: arti's tor-cert vectors (types 4, 5,
// 7), a C tor CERTS cell (X.509 types 1 and 2), a real relay's descriptor (fingerprint, RSA
// signatures), and hostile inputs. Provenance: tests/fixtures/tor_certs.json and arti_chanmsg.json.

import { createHash, createPublicKey } from "node:crypto";
import { Buffer } from "node:buffer";
import { assert, assertEquals, assertThrows, hex, skipUnless } from "./_assert.ts";
import {
  CERT_TYPE,
  CertError,
  generateRsa,
  generateRsa1024,
  makeEdCert,
  makeRsaEdCrossCert,
  makeTorX509,
  parseEdCert,
  parseRsaEdCrossCert,
  parseX509,
  rsaFingerprint,
  rsaFingerprintHex,
  rsaKeyFromPem,
  rsaKeyToPem,
  torRsaSign,
  torRsaVerify,
  torX509Tbs,
  verifyEdCert,
  verifyRsaEdCrossCert,
} from "../lib/keys/mod.ts";
import { ed25519KeyPair } from "../lib/crypto/ed25519.ts";

const V = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/tor_certs.json", import.meta.url)),
);
const CHAN = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/arti_chanmsg.json", import.meta.url)),
);
const T = V.arti_testvec_certs;
const NOTIONAL = new Date(T.notionalTime * 1000);
const chutneyCerts = new Map<number, Uint8Array>(
  (CHAN.certs.entries as { type: number; body: string }[]).map((e) => [e.type, hex(e.body)]),
);

function pemToDer(pem: string): Uint8Array {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
}

function b64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(b).digest());
}

function certError(fn: () => unknown, reason: string): CertError {
  const e = assertThrows(fn, CertError);
  assertEquals((e as CertError).reason, reason, e.message);
  return e as CertError;
}

Deno.test("parseEdCert reads arti's type-4 vector and verifyEdCert accepts it", () => {
  const c = parseEdCert(hex(T.type4));
  assertEquals(c.type, CERT_TYPE.ED_SIGNING);
  assertEquals(c.expiresHours, T.type4ExpiresHours);
  assertEquals(c.keyType, 1);
  assertEquals(c.certifiedKey, hex(T.signingKey));
  assertEquals(c.signerKey, hex(T.identityKey));
  verifyEdCert(c, undefined, NOTIONAL);
  verifyEdCert(c, hex(T.identityKey), NOTIONAL);
});

Deno.test("parseEdCert reads arti's type-5 vector and verifyEdCert needs the signing key for it", () => {
  const c = parseEdCert(hex(T.type5));
  assertEquals(c.type, CERT_TYPE.TLS_LINK);
  assertEquals(c.keyType, 3);
  assertEquals(c.expiresHours, T.type5ExpiresHours);
  assertEquals(c.certifiedKey, hex(T.tlsCertDigest));
  assertEquals(c.signerKey, undefined);
  certError(() => verifyEdCert(c, undefined, NOTIONAL), "missing-signer");
  verifyEdCert(c, hex(T.signingKey), NOTIONAL);
  // signed by the signing key, so the identity key does not verify it
  certError(() => verifyEdCert(c, hex(T.identityKey), NOTIONAL), "bad-signature");
});

Deno.test("parseEdCert refuses arti's malformed vectors with SyntaxError", () => {
  const I = V.arti_invalid_certs;
  assertThrows(() => parseEdCert(hex(I.badVersion)), SyntaxError, "version");
  // a 33-byte signer-key extension: arti "wrong length on Ed25519 key"
  assertThrows(() => parseEdCert(hex(I.extKeyLength33)), SyntaxError);
  assertThrows(() => parseEdCert(hex(I.unknownCriticalExt)), SyntaxError, "affects validation");
  // truncated at every length
  const full = hex(T.type4);
  for (let n = 0; n < full.length; n++) {
    assertThrows(() => parseEdCert(full.subarray(0, n)), SyntaxError);
  }
  const longer = new Uint8Array(full.length + 1);
  longer.set(full);
  assertThrows(() => parseEdCert(longer), SyntaxError, "trailing");
});

Deno.test("verifyEdCert refuses arti's vectors with the wrong key, expired, or altered", () => {
  const I = V.arti_invalid_certs;
  const c = parseEdCert(hex(T.type4));
  certError(() => verifyEdCert(c, hex(I.notThatKey), NOTIONAL), "key-mismatch");
  certError(() => verifyEdCert(c, undefined, new Date(I.expiredTime)), "expired");
  // exactly at expiry it is still valid (C tor: expired when now > valid_until)
  verifyEdCert(c, undefined, new Date(T.type4ExpiresHours * 3_600_000));
  const bad = hex(T.type4);
  bad[10] = bad[10]! ^ 1;
  certError(() => verifyEdCert(parseEdCert(bad), undefined, NOTIONAL), "bad-signature");
});

Deno.test("makeEdCert re-encodes arti's vectors' fields to the same signed bytes", () => {
  // Ed25519 signatures are deterministic, but we lack the secret keys: compare the signed part.
  const me = ed25519KeyPair(new Uint8Array(32).fill(7));
  for (const [vec, include] of [[T.type4, true], [T.type5, false]] as const) {
    const c = parseEdCert(hex(vec));
    const mine = parseEdCert(
      makeEdCert({
        type: c.type,
        certifiedKey: c.certifiedKey,
        keyType: c.keyType as 1 | 3,
        expires: new Date(c.expiresHours * 3_600_000),
        signer: include ? { secret: me.secret, public: c.signerKey! } : me,
        includeSigner: include,
      }),
    );
    assertEquals(mine.signed, c.signed);
  }
});

Deno.test("makeEdCert round-trips and rounds the expiry up to whole hours", () => {
  const id = ed25519KeyPair();
  const signing = ed25519KeyPair();
  const expires = new Date(Date.UTC(2026, 0, 1, 10, 0, 1));
  const bytes = makeEdCert({
    type: CERT_TYPE.ED_SIGNING,
    certifiedKey: signing.public,
    keyType: 1,
    expires,
    signer: id,
    includeSigner: true,
  });
  assertEquals(bytes.length, 104 + 36);
  const c = parseEdCert(bytes);
  assertEquals(c.signerKey, id.public);
  assertEquals(c.expiresHours * 3_600_000, Date.UTC(2026, 0, 1, 11));
  verifyEdCert(c, id.public, new Date(Date.UTC(2026, 0, 1, 10, 59)));
  certError(() => verifyEdCert(c, id.public, new Date(Date.UTC(2026, 0, 1, 11, 0, 1))), "expired");
});

Deno.test("verifyRsaEdCrossCert accepts arti's type-7 vector and returns the Ed25519 identity", () => {
  const got = verifyRsaEdCrossCert(hex(T.type7), hex(T.rsaIdentityDer), NOTIONAL);
  assertEquals(got, hex(T.identityKey));
  assertEquals(parseRsaEdCrossCert(hex(T.type7)).expiresHours, T.type7ExpiresHours);
  certError(
    () => verifyRsaEdCrossCert(hex(T.type7), generateRsa1024().publicDer, NOTIONAL),
    "bad-signature",
  );
  certError(
    () =>
      verifyRsaEdCrossCert(
        hex(T.type7),
        hex(T.rsaIdentityDer),
        new Date((T.type7ExpiresHours + 1) * 3_600_000),
      ),
    "expired",
  );
  certError(
    () => verifyRsaEdCrossCert(hex(T.type7).subarray(0, 100), hex(T.rsaIdentityDer), NOTIONAL),
    "malformed",
  );
});

Deno.test("makeRsaEdCrossCert round-trips with a key of ours", () => {
  const rsa = generateRsa1024();
  const ed = ed25519KeyPair().public;
  const bytes = makeRsaEdCrossCert(ed, new Date(Date.UTC(2030, 5, 1)), rsa);
  assertEquals(bytes.length, 32 + 4 + 1 + 128);
  assertEquals(verifyRsaEdCrossCert(bytes, rsa.publicDer, new Date(Date.UTC(2030, 0, 1))), ed);
  // the same digest rule as C tor: SHA-256(prefix | first 36 bytes), Tor's raw RSA signature
  const digest = sha256(
    new Uint8Array([
      ...new TextEncoder().encode("Tor TLS RSA/Ed25519 cross-certificate"),
      ...bytes.subarray(0, 36),
    ]),
  );
  assert(torRsaVerify(rsa.publicDer, digest, bytes.subarray(37)));
});

Deno.test("rsaFingerprintHex of a real relay's signing-key is its descriptor fingerprint", () => {
  const A = V.akka_descriptor;
  const der = pemToDer(A.signingKeyPem);
  assertEquals(der.length, 140);
  assertEquals(rsaFingerprintHex(der), A.fingerprint);
  assertEquals(rsaFingerprint(der).length, 20);
  // and of the chutney relay's type-2 X.509 subject key: same DER arti gives for the cross-cert
  assertEquals(parseX509(chutneyCerts.get(2)!).subjectKeyDer, hex(T.rsaIdentityDer));
});

Deno.test("torRsaVerify checks a real relay's onion-key-crosscert (TAP key over SHA-1(identity) | Ed25519 id)", () => {
  const A = V.akka_descriptor;
  const identity = pemToDer(A.signingKeyPem);
  const data = new Uint8Array([...rsaFingerprint(identity), ...b64(A.masterKeyEd25519)]);
  const sig = pemToDer(
    `-----BEGIN CROSSCERT-----\n${A.onionKeyCrosscert}\n-----END CROSSCERT-----`,
  );
  assert(torRsaVerify(pemToDer(A.onionKeyPem), data, sig), "onion-key-crosscert verifies");
  assert(!torRsaVerify(identity, data, sig), "not by the identity key");
  data[0] = data[0]! ^ 1;
  assert(!torRsaVerify(pemToDer(A.onionKeyPem), data, sig), "altered data does not verify");
});

Deno.test("torRsaSign is PKCS#1 type-1 padding over the raw digest and round-trips", () => {
  const k = generateRsa1024();
  const digest = createHash("sha1").update("x").digest();
  const sig = torRsaSign(k, digest);
  assertEquals(sig.length, 128);
  assert(torRsaVerify(k.publicDer, digest, sig));
  assert(!torRsaVerify(k.publicDer, digest.subarray(1), sig));
  // raw RSA of the signature shows 00 01 FF… 00 digest, with no DigestInfo
  const pub = createPublicKey({ key: Buffer.from(k.publicDer), format: "der", type: "pkcs1" });
  const jwk = pub.export({ format: "jwk" }) as { n: string; e: string };
  const n = BigInt("0x" + Buffer.from(jwk.n, "base64url").toString("hex"));
  const s = BigInt("0x" + Buffer.from(sig).toString("hex"));
  let m = 1n, b = s, e = 65537n;
  while (e > 0n) {
    if (e & 1n) m = (m * b) % n;
    b = (b * b) % n;
    e >>= 1n;
  }
  const em = m.toString(16).padStart(256, "0");
  assertEquals(em.slice(0, 4), "0001");
  assertEquals(em.slice(-42), "00" + Buffer.from(digest).toString("hex"));
  assertEquals(/^0001f+00$/.test(em.slice(0, -40)), true);
  // PEM round trip
  const back = rsaKeyFromPem(rsaKeyToPem(k));
  assertEquals(back.publicDer, k.publicDer);
});

Deno.test("parseX509 reads C tor's type-2 identity cert: self-signed, RSA-1024", () => {
  const c = parseX509(chutneyCerts.get(2)!);
  assertEquals(c.issuerCn, "www.tcjv5kvjddr2.com");
  assertEquals(c.subjectCn, "www.tcjv5kvjddr2.com");
  assertEquals(c.notBefore.toISOString(), "2020-08-10T00:00:00.000Z");
  assertEquals(c.notAfter.toISOString(), "2021-08-10T00:00:00.000Z");
  assertEquals(c.serial.length, 8);
  assert(c.verify(c.subjectKeyDer), "self-signed");
  assert(!c.verify(generateRsa1024().publicDer), "not by another key");
});

Deno.test("parseX509 reads C tor's type-1 link cert, signed by the identity, and type 5 is its SHA-256", () => {
  const id = parseX509(chutneyCerts.get(2)!);
  const link = parseX509(chutneyCerts.get(1)!);
  assertEquals(link.issuerCn, id.subjectCn);
  assert(link.verify(id.subjectKeyDer), "signed by the identity");
  assertEquals(sha256(chutneyCerts.get(1)!), hex(T.tlsCertDigest));
});

Deno.test("torX509Tbs re-encodes C tor's type-1 and type-2 certs byte for byte", () => {
  for (const type of [1, 2]) {
    const c = parseX509(chutneyCerts.get(type)!);
    const tbs = torX509Tbs({
      subjectCn: c.subjectCn!,
      issuerCn: c.issuerCn!,
      subjectKeyDer: c.subjectKeyDer,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      serial: c.serial,
    });
    assertEquals(tbs, c.tbs, `type ${type}`);
  }
});

Deno.test("makeTorX509 round-trips through parseX509", () => {
  const id = generateRsa1024();
  const tlsKey = generateRsa(2048);
  const notBefore = new Date(Date.UTC(2026, 11, 1));
  const notAfter = new Date(Date.UTC(2027, 11, 1));
  const der = makeTorX509({
    subjectCn: "www.example.net",
    issuerCn: "www.id.com",
    subjectKeyDer: tlsKey.publicDer,
    signer: id,
    notBefore,
    notAfter,
  });
  const c = parseX509(der);
  assertEquals(c.subjectKeyDer, tlsKey.publicDer);
  assertEquals([c.subjectCn, c.issuerCn], ["www.example.net", "www.id.com"]);
  assertEquals([c.notBefore, c.notAfter], [notBefore, notAfter]);
  assertEquals(c.serial.length, 8);
  assert(c.verify(id.publicDer));
  assert(!c.verify(tlsKey.publicDer));
  // a year past 2049 takes GeneralizedTime
  const far = parseX509(
    makeTorX509({
      subjectCn: "a",
      issuerCn: "a",
      subjectKeyDer: id.publicDer,
      signer: id,
      notBefore,
      notAfter: new Date(Date.UTC(2051, 0, 1)),
    }),
  );
  assertEquals(far.notAfter.getUTCFullYear(), 2051);
});

Deno.test("parseX509 refuses truncated and altered DER with SyntaxError", () => {
  const der = chutneyCerts.get(2)!;
  for (let n = 0; n < der.length; n += 7) {
    assertThrows(() => parseX509(der.subarray(0, n)), SyntaxError);
  }
  const longer = new Uint8Array(der.length + 1);
  longer.set(der);
  assertThrows(() => parseX509(longer), SyntaxError, "trailing");
  const indefinite = der.slice();
  indefinite[1] = 0x80;
  assertThrows(() => parseX509(indefinite), SyntaxError);
});

function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "makeTorX509 output is read by openssl x509",
  ignore: skipUnless(hasOpenssl(), "no openssl binary to parse our X.509"),
  async fn() {
    const id = generateRsa1024();
    const der = makeTorX509({
      subjectCn: "www.subject.net",
      issuerCn: "www.issuer.com",
      subjectKeyDer: id.publicDer,
      signer: id,
      notBefore: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
      notAfter: new Date(Date.UTC(2027, 0, 2, 3, 4, 5)),
    });
    const child = new Deno.Command("openssl", {
      args: ["x509", "-inform", "DER", "-noout", "-text"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(der);
    await w.close();
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    for (
      const part of [
        "Version: 3 (0x2)",
        "Signature Algorithm: sha256WithRSAEncryption",
        "Issuer: CN = www.issuer.com",
        "Subject: CN = www.subject.net",
        "Not Before: Jan  2 03:04:05 2026 GMT",
        "Not After : Jan  2 03:04:05 2027 GMT",
        "Public-Key: (1024 bit)",
        "Exponent: 65537",
      ]
    ) assert(text.includes(part), `openssl output lacks ${part}:\n${text}`);
    assert(!text.includes("X509v3 extensions"), "no extensions");
  },
});

Deno.test("parseX509, parseEdCert and parseRsaEdCrossCert throw only SyntaxError on corrupted bytes", () => {
  let seed = 0x1234567;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const samples: [(b: Uint8Array) => unknown, Uint8Array][] = [
    [parseX509, chutneyCerts.get(1)!],
    [parseX509, chutneyCerts.get(2)!],
    [parseEdCert, hex(T.type4)],
    [parseEdCert, hex(T.type5)],
    [parseRsaEdCrossCert, hex(T.type7)],
  ];
  for (let i = 0; i < 3000; i++) {
    const [parse, good] = samples[rand(samples.length)]!;
    const b = good.slice(0, rand(3) === 0 ? rand(good.length) : good.length);
    for (let k = 1 + rand(4); k > 0 && b.length > 0; k--) b[rand(b.length)] = rand(256);
    try {
      parse(b);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw new Error(`case ${i} threw ${e}`);
    }
  }
});
