// Tor's relay key set: the curve25519→ed25519 conversion against C tor's vectors and a real
// relay's descriptor, the CERTS cell sets both roles send and check, renewal with an injected
// clock, the key file, and hostile CERTS cells. Provenance: tests/fixtures/tor_certs.json.

import { Buffer } from "node:buffer";
import { ed25519Sign } from "../lib/crypto/ed25519.ts";
import { x25519Public } from "../lib/crypto/x25519.ts";
import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
  hex,
  skipUnless,
} from "./_assert.ts";
import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { ed25519Verify } from "../lib/crypto/ed25519.ts";
import {
  CERT_TYPE,
  CertError,
  type CertsEntry,
  checkTorRelayKeys,
  clampCurve25519,
  ed25519FromCurve25519Public,
  ed25519FromCurve25519Secret,
  expandEd25519Seed,
  expandedPublic,
  expandedPublic as expandedPublicOf,
  generateRsa,
  generateRsa1024,
  generateTorRelayKeys,
  initiatorCerts,
  makeEdCert,
  makeRsaEdCrossCert,
  makeTorX509,
  nextTorKeyRenewal,
  ntorCrossCert,
  parseEdCert,
  parseX509,
  readTorTaggedFile,
  renewTorRelayKeys,
  responderCerts,
  rsaFingerprintHex,
  rsaKeyFromPem,
  type RsaKeyPair,
  signExpanded,
  signWithAuthKey,
  tlsCredentials,
  torKeyFiles,
  torRelayFingerprint,
  type TorRelayKeys,
  torRelayKeysFromJson,
  torRelayKeysToJson,
  verifyEdCert,
  verifyNtorCrossCert,
  verifyPeerCerts,
} from "../lib/keys/mod.ts";

const V = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/tor_certs.json", import.meta.url)),
);

function b64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

function certError(fn: () => unknown, reason: string): CertError {
  const e = assertThrows(fn, CertError) as CertError;
  assertEquals(e.reason, reason, e.message);
  return e;
}

type EdVector = {
  seed: string;
  expandedSecret: string;
  public: string;
  curve25519Public: string;
  selfSignature: string;
};

Deno.test("ed25519FromCurve25519Public maps C tor's curve25519 vectors to their Ed25519 keys", () => {
  for (const v of V.tor_ed25519_vectors as EdVector[]) {
    const pub = hex(v.public);
    const signBit = (pub[31]! >> 7) as 0 | 1;
    assertEquals(ed25519FromCurve25519Public(hex(v.curve25519Public), signBit), pub);
    // the other sign bit is the other point
    assert(
      !ed25519FromCurve25519Public(hex(v.curve25519Public), (1 - signBit) as 0 | 1).every((b, i) =>
        b === pub[i]
      ),
    );
  }
});

Deno.test("ed25519FromCurve25519Secret derives C tor's Ed25519 key from the curve25519 scalar", () => {
  for (const v of V.tor_ed25519_vectors as EdVector[]) {
    const scalar = hex(v.expandedSecret).subarray(0, 32);
    assertEquals(clampCurve25519(scalar), scalar); // C tor's scalars are clamped
    assertEquals(x25519Public(scalar), hex(v.curve25519Public));
    const k = ed25519FromCurve25519Secret(scalar);
    assertEquals(k.public, hex(v.public));
    assertEquals(k.signBit, hex(v.public)[31]! >> 7);
    assertEquals(k.expandedSecret.subarray(0, 32), scalar);
  }
});

Deno.test("signExpanded gives C tor's self-signatures from the expanded secret keys", () => {
  for (const v of V.tor_ed25519_vectors as EdVector[]) {
    const esk = hex(v.expandedSecret);
    assertEquals(expandedPublic(esk), hex(v.public));
    assertEquals(signExpanded(esk, hex(v.public)), hex(v.selfSignature));
    // and node:crypto from the seed agrees
    assertEquals(ed25519Sign(hex(v.seed), hex(v.public)), hex(v.selfSignature));
  }
});

Deno.test("verifyNtorCrossCert accepts a real relay's ntor-onion-key-crosscert", () => {
  const A = V.akka_descriptor;
  const o = {
    ntorPublic: b64(A.ntorOnionKey),
    signBit: A.ntorOnionKeyCrosscertSignBit as 0 | 1,
    edIdentity: b64(A.masterKeyEd25519),
    now: new Date(A.published),
  };
  const c = verifyNtorCrossCert(b64(A.ntorOnionKeyCrosscert), o);
  assertEquals(c.extensions.length, 0);
  certError(
    () => verifyNtorCrossCert(b64(A.ntorOnionKeyCrosscert), { ...o, signBit: 1 }),
    "bad-signature",
  );
  certError(
    () => verifyNtorCrossCert(b64(A.ntorOnionKeyCrosscert), { ...o, now: new Date("2030-01-01") }),
    "expired",
  );
  certError(
    () =>
      verifyNtorCrossCert(b64(A.ntorOnionKeyCrosscert), { ...o, edIdentity: new Uint8Array(32) }),
    "key-mismatch",
  );
  certError(() => verifyNtorCrossCert(b64(A.identityEd25519), o), "wrong-type");
});

Deno.test("ntorCrossCert makes a certificate verifyNtorCrossCert accepts", () => {
  for (let i = 0; i < 4; i++) {
    const secret = clampCurve25519(crypto.getRandomValues(new Uint8Array(32)));
    const pub = x25519Public(secret);
    const id = crypto.getRandomValues(new Uint8Array(32));
    const expires = new Date(Date.UTC(2031, 0, 1));
    const { cert, signBit } = ntorCrossCert(secret, pub, id, expires);
    assertEquals(cert.length, 104);
    verifyNtorCrossCert(cert, {
      ntorPublic: pub,
      signBit,
      edIdentity: id,
      now: new Date(Date.UTC(2030, 0, 1)),
    });
    assertThrows(
      () => ntorCrossCert(secret, x25519Public(clampCurve25519(id)), id, expires),
      TypeError,
    );
  }
});

// ---- the relay key set ----

const T0 = new Date(Date.UTC(2026, 11, 4, 2, 0, 0));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const KEYS = generateTorRelayKeys(T0);
const OTHER = generateTorRelayKeys(T0);

function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(b).digest());
}

function later(ms: number): Date {
  return new Date(T0.getTime() + ms);
}

function asResponder(certs: CertsEntry[], now = T0, tlsCertDer = KEYS.tls.certDer) {
  return verifyPeerCerts(certs, { role: "responder", tlsCertDer, now });
}

function asInitiator(certs: CertsEntry[], now = T0) {
  return verifyPeerCerts(certs, { role: "initiator", now });
}

/** `certs` with the body of `type` replaced (or removed when `body` is undefined). */
function withCert(certs: CertsEntry[], type: number, body?: Uint8Array): CertsEntry[] {
  const out = certs.filter((c) => c.type !== type);
  if (body) out.push({ type, body });
  return out;
}

Deno.test("generateTorRelayKeys makes a set whose CERTS cells verify in both roles", () => {
  checkTorRelayKeys(KEYS);
  const r = asResponder(responderCerts(KEYS));
  assertEquals(r.rsaFingerprint, torRelayFingerprint(KEYS));
  assertEquals(r.rsaIdentityDer, KEYS.rsaIdentity.publicDer);
  assertEquals(r.ed25519Identity, KEYS.ed25519Identity.public);
  assertEquals(r.signingKey, KEYS.signing.key.public);
  assertEquals(r.authKey, undefined);
  assertEquals(responderCerts(KEYS).map((c) => c.type), [1, 2, 4, 5, 7]);
  const i = asInitiator(initiatorCerts(KEYS));
  assertEquals(initiatorCerts(KEYS).map((c) => c.type), [2, 4, 6, 7]);
  assertEquals(i.authKey, KEYS.linkAuth.key.public);
  const msg = new TextEncoder().encode("AUTH0003 body");
  assert(ed25519Verify(i.authKey!, msg, signWithAuthKey(KEYS, msg)));
  assertEquals(/^[0-9A-F]{40}$/.test(torRelayFingerprint(KEYS)), true);
  assertEquals(KEYS.rsaIdentity.publicDer.length, 140);
  assertEquals(clampCurve25519(KEYS.ntor.key.secret), KEYS.ntor.key.secret); // stored clamped, as C tor does
  const cred = tlsCredentials(KEYS);
  assertEquals(cred.certDer, KEYS.tls.certDer);
  assertEquals(parseX509(cred.certDer).subjectKeyDer, KEYS.tls.key.publicDer);
  assertEquals(cred.keyDer[0], 0x30); // PKCS#1 RSAPrivateKey SEQUENCE
  // lifetimes as the module table says
  assertEquals(KEYS.signing.expires.getTime(), T0.getTime() + 30 * DAY);
  assertEquals(KEYS.linkAuth.expires.getTime(), T0.getTime() + 2 * DAY);
  assertEquals(KEYS.tls.expires.getTime(), T0.getTime() + 2 * DAY);
  assertEquals(KEYS.ntor.expires.getTime(), T0.getTime() + 28 * DAY);
  assertEquals(KEYS.rsaEdCrossCert.expires.getTime(), T0.getTime() + 180 * DAY);
});

Deno.test("verifyPeerCerts accepts the C tor responder CERTS cell of arti's vectors", () => {
  const chan = JSON.parse(
    Deno.readTextFileSync(new URL("./fixtures/arti_chanmsg.json", import.meta.url)),
  );
  const certs = (chan.certs.entries as { type: number; body: string }[]).map((e) => ({
    type: e.type,
    body: hex(e.body),
  }));
  const tlsCertDer = certs.find((c) => c.type === 1)!.body;
  const T = V.arti_testvec_certs;
  const now = new Date(T.notionalTime * 1000);
  const id = asResponder(certs, now, tlsCertDer);
  assertEquals(id.ed25519Identity, hex(T.identityKey));
  assertEquals(id.rsaIdentityDer, hex(T.rsaIdentityDer));
  assertEquals(id.signingKey, hex(T.signingKey));
  certError(() => asResponder(certs, now, KEYS.tls.certDer), "tls-mismatch");
  // one day after type 5's expiry
  certError(
    () => asResponder(certs, new Date((T.type5ExpiresHours + 24) * HOUR), tlsCertDer),
    "expired",
  );
});

Deno.test("verifyPeerCerts refuses a wrong set of types for the role", () => {
  let e = certError(() => asInitiator(responderCerts(KEYS)), "missing");
  assertStringIncludes(e.message, "6");
  e = certError(() => asResponder(initiatorCerts(KEYS)), "missing");
  assertStringIncludes(e.message, "5");
  for (const t of [2, 4, 5, 7]) {
    certError(() => asResponder(withCert(responderCerts(KEYS), t)), "missing");
  }
  certError(() => asResponder([]), "missing");
  // type 1 is not needed with Ed25519 certificates (C tor ignores it), unknown types are ignored
  asResponder(withCert(responderCerts(KEYS), 1));
  asResponder([...responderCerts(KEYS), { type: 9, body: new Uint8Array(3) }, {
    type: 3,
    body: new Uint8Array(0),
  }]);
  // a type-6 certificate in slot 5
  certError(() => asResponder(withCert(responderCerts(KEYS), 5, KEYS.linkAuth.cert)), "wrong-type");
});

Deno.test("verifyPeerCerts refuses a duplicate type", () => {
  for (const t of [1, 2, 4, 5, 7]) {
    const certs = responderCerts(KEYS);
    certs.push({ type: t, body: certs.find((c) => c.type === t)!.body });
    certError(() => asResponder(certs), "duplicate");
  }
  const certs = initiatorCerts(KEYS);
  certs.push({ type: 6, body: OTHER.linkAuth.cert });
  certError(() => asInitiator(certs), "duplicate");
});

/** A responder CERTS set made around a given RSA identity (for key-size tests). */
function certsWithIdentity(rsa: RsaKeyPair): CertsEntry[] {
  const der = makeTorX509({
    subjectCn: "www.big.com",
    issuerCn: "www.big.com",
    subjectKeyDer: rsa.publicDer,
    signer: rsa,
    notBefore: later(-DAY),
    notAfter: later(300 * DAY),
  });
  // a 2048-bit key's 256-byte signature does not fit SIGLEN: keep the set's own type 7 then
  const cross = rsa.publicDer.length < 250
    ? makeRsaEdCrossCert(KEYS.ed25519Identity.public, later(100 * DAY), rsa)
    : KEYS.rsaEdCrossCert.cert;
  return withCert(withCert(responderCerts(KEYS), 2, der), 7, cross);
}

Deno.test("verifyPeerCerts refuses an RSA identity that is not 1024 bits with exponent 65537", () => {
  // the same construction with a 1024-bit key passes, so only the key differs
  asResponder(certsWithIdentity(generateRsa1024()));
  const e = certError(() => asResponder(certsWithIdentity(generateRsa(2048))), "key-size");
  assertStringIncludes(e.message, "2048");
  // 1536 bits: a consistent set (its own type 7), refused for the size alone
  assertStringIncludes(
    certError(() => asResponder(certsWithIdentity(generateRsa(1536))), "key-size").message,
    "1536",
  );
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 1024, publicExponent: 3 });
  const e3: RsaKeyPair = {
    privateKey,
    publicDer: new Uint8Array(createPublicKey(privateKey).export({ format: "der", type: "pkcs1" })),
  };
  assertStringIncludes(
    certError(() => asResponder(certsWithIdentity(e3)), "key-size").message,
    "exponent 3",
  );
});

Deno.test("verifyPeerCerts refuses expired and not-yet-valid certificates", () => {
  // type 5 and type 6 live 2 days; at 2 days + 1 s they have lapsed
  certError(() => asResponder(responderCerts(KEYS), later(2 * DAY + 1000)), "expired");
  certError(() => asInitiator(initiatorCerts(KEYS), later(2 * DAY + 1000)), "expired");
  asResponder(responderCerts(KEYS), later(2 * DAY)); // still valid at the expiry itself
  // an expired signing certificate (made an hour long, two hours ago)
  const oldSigning = makeEdCert({
    type: CERT_TYPE.ED_SIGNING,
    certifiedKey: KEYS.signing.key.public,
    keyType: 1,
    expires: later(-HOUR),
    signer: KEYS.ed25519Identity,
    includeSigner: true,
  });
  const e = certError(() => asResponder(withCert(responderCerts(KEYS), 4, oldSigning)), "expired");
  assertStringIncludes(e.message, "type 4");
  // an expired cross-certificate
  const oldCross = makeRsaEdCrossCert(KEYS.ed25519Identity.public, later(-HOUR), KEYS.rsaIdentity);
  certError(() => asResponder(withCert(responderCerts(KEYS), 7, oldCross)), "expired");
  // X.509 identity: C tor's slop is 2 days past notAfter and 30 days before notBefore
  const idCert = (notBefore: number, notAfter: number) =>
    makeTorX509({
      subjectCn: "www.a.com",
      issuerCn: "www.a.com",
      subjectKeyDer: KEYS.rsaIdentity.publicDer,
      signer: KEYS.rsaIdentity,
      notBefore: later(notBefore),
      notAfter: later(notAfter),
    });
  asResponder(withCert(responderCerts(KEYS), 2, idCert(-10 * DAY, -DAY)));
  certError(
    () => asResponder(withCert(responderCerts(KEYS), 2, idCert(-10 * DAY, -3 * DAY))),
    "expired",
  );
  asResponder(withCert(responderCerts(KEYS), 2, idCert(29 * DAY, 60 * DAY)));
  certError(
    () => asResponder(withCert(responderCerts(KEYS), 2, idCert(31 * DAY, 60 * DAY))),
    "not-yet-valid",
  );
});

Deno.test("verifyPeerCerts refuses a type 5 that is not the presented TLS certificate", () => {
  certError(() => asResponder(responderCerts(KEYS), T0, OTHER.tls.certDer), "tls-mismatch");
  // a type 5 for the right TLS cert, signed by another signing key
  const forged = makeEdCert({
    type: CERT_TYPE.TLS_LINK,
    certifiedKey: sha256(KEYS.tls.certDer),
    keyType: 3,
    expires: later(DAY),
    signer: OTHER.signing.key,
    includeSigner: false,
  });
  certError(() => asResponder(withCert(responderCerts(KEYS), 5, forged)), "bad-signature");
  // without the TLS certificate the check cannot be made: a caller error
  assertThrows(
    () => verifyPeerCerts(responderCerts(KEYS), { role: "responder", now: T0 }),
    TypeError,
  );
});

Deno.test("verifyPeerCerts refuses a type 7 signed by another RSA key or naming another identity", () => {
  const byOther = makeRsaEdCrossCert(KEYS.ed25519Identity.public, later(DAY), OTHER.rsaIdentity);
  certError(() => asResponder(withCert(responderCerts(KEYS), 7, byOther)), "bad-signature");
  certError(() => asInitiator(withCert(initiatorCerts(KEYS), 7, byOther)), "bad-signature");
  // signed by our RSA identity but for another Ed25519 identity
  const otherEd = makeRsaEdCrossCert(OTHER.ed25519Identity.public, later(DAY), KEYS.rsaIdentity);
  certError(() => asResponder(withCert(responderCerts(KEYS), 7, otherEd)), "key-mismatch");
  // another relay's whole Ed25519 chain with our RSA identity
  const mixed = withCert(
    withCert(responderCerts(OTHER), 2, KEYS.rsaIdentityCert.der),
    7,
    KEYS.rsaEdCrossCert.cert,
  );
  certError(() => asResponder(mixed, T0, OTHER.tls.certDer), "key-mismatch");
  // an identity X.509 that is not self-signed
  const notSelf = makeTorX509({
    subjectCn: "www.a.com",
    issuerCn: "www.a.com",
    subjectKeyDer: KEYS.rsaIdentity.publicDer,
    signer: OTHER.rsaIdentity,
    notBefore: later(-DAY),
    notAfter: later(DAY),
  });
  certError(() => asResponder(withCert(responderCerts(KEYS), 2, notSelf)), "bad-signature");
});

Deno.test("verifyPeerCerts refuses Ed25519 certificates with the wrong signer", () => {
  // type 4 without the signer-key extension
  const noExt = makeEdCert({
    type: CERT_TYPE.ED_SIGNING,
    certifiedKey: KEYS.signing.key.public,
    keyType: 1,
    expires: later(DAY),
    signer: KEYS.ed25519Identity,
    includeSigner: false,
  });
  certError(() => asResponder(withCert(responderCerts(KEYS), 4, noExt)), "missing-signer");
  // type 4 naming our identity but signed by another key
  const wrongSig = makeEdCert({
    type: CERT_TYPE.ED_SIGNING,
    certifiedKey: KEYS.signing.key.public,
    keyType: 1,
    expires: later(DAY),
    signer: { secret: OTHER.ed25519Identity.secret, public: KEYS.ed25519Identity.public },
    includeSigner: true,
  });
  certError(() => asResponder(withCert(responderCerts(KEYS), 4, wrongSig)), "bad-signature");
  // type 6 of another relay
  certError(
    () => asInitiator(withCert(initiatorCerts(KEYS), 6, OTHER.linkAuth.cert)),
    "bad-signature",
  );
  // a flipped bit in the signature of each Ed25519 certificate
  for (const t of [4, 5]) {
    const body = responderCerts(KEYS).find((c) => c.type === t)!.body.slice();
    body[body.length - 1] = body[body.length - 1]! ^ 0x40;
    certError(() => asResponder(withCert(responderCerts(KEYS), t, body)), "bad-signature");
  }
});

Deno.test("verifyPeerCerts refuses truncated certificate bytes as malformed", () => {
  for (const certs of [responderCerts(KEYS), initiatorCerts(KEYS)]) {
    for (const { type, body } of certs) {
      if (type === 1) continue; // ignored
      for (const n of [0, 1, 36, 39, 103, body.length - 1]) {
        if (n >= body.length) continue;
        const cut = withCert(certs, type, body.slice(0, n));
        certError(() => certs.length === 5 ? asResponder(cut) : asInitiator(cut), "malformed");
      }
    }
  }
  // a whole cert with a byte of garbage after it
  const long = new Uint8Array(KEYS.signing.cert.length + 1);
  long.set(KEYS.signing.cert);
  certError(() => asResponder(withCert(responderCerts(KEYS), 4, long)), "malformed");
});

// ---- renewal with an injected clock ----

Deno.test("renewTorRelayKeys renews nothing an hour after generation", () => {
  const { keys, renewed } = renewTorRelayKeys(KEYS, later(HOUR));
  assertEquals(renewed, []);
  assertEquals(keys.tls.linkCert, KEYS.tls.linkCert);
});

Deno.test("renewTorRelayKeys renews the link-auth and TLS link certificates before their 2 days lapse", () => {
  const { keys, renewed } = renewTorRelayKeys(KEYS, later(43 * HOUR));
  assertEquals(renewed, ["linkAuth", "tls"]);
  assertEquals(keys.signing.cert, KEYS.signing.cert);
  assertEquals(keys.tls.expires, later(43 * HOUR + 2 * DAY));
  assertEquals(keys.linkAuth.expires, later(43 * HOUR + 2 * DAY));
  assertEquals(keys.tls.key.publicDer, KEYS.tls.key.publicDer); // same TLS key, new X.509 and type 5
  assert(!keys.tls.certDer.every((b, i) => b === KEYS.tls.certDer[i]));
  // the new set verifies after the old link certificates lapsed
  const now = later(2 * DAY + HOUR);
  asResponder(responderCerts(keys), now, keys.tls.certDer);
  asInitiator(initiatorCerts(keys), now);
  certError(() => asResponder(responderCerts(KEYS), now), "expired");
  assertEquals(KEYS.linkAuth.cert, initiatorCerts(KEYS)[2]!.body); // the input is unchanged
});

Deno.test("renewTorRelayKeys at t+29 days has renewed the signing cert and what it signs", () => {
  const at29 = later(29 * DAY);
  const { keys, renewed } = renewTorRelayKeys(KEYS, at29);
  for (const item of ["signing", "linkAuth", "tls"] as const) assert(renewed.includes(item), item);
  assert(
    !renewed.includes("rsaEdCrossCert") && !renewed.includes("rsaIdentityCert"),
    renewed.join(),
  );
  assert(keys.signing.expires.getTime() >= at29.getTime() + 30 * DAY - HOUR);
  assert(
    !keys.signing.key.public.every((b, i) => b === KEYS.signing.key.public[i]),
    "new signing key",
  );
  assert(!keys.tls.key.publicDer.every((b, i) => b === KEYS.tls.key.publicDer[i]), "new TLS key");
  assertEquals(keys.ed25519Identity, KEYS.ed25519Identity);
  assertEquals(torRelayFingerprint(keys), torRelayFingerprint(KEYS));
  const id = asResponder(responderCerts(keys), later(31 * DAY), keys.tls.certDer);
  assertEquals(id.signingKey, keys.signing.key.public);
  checkTorRelayKeys(keys);
});

Deno.test("renewTorRelayKeys rotates the onion keys before 28 days and keeps the old ones 7 days", () => {
  const r1 = renewTorRelayKeys(KEYS, later(27 * DAY + HOUR));
  assert(r1.renewed.includes("ntor") && r1.renewed.includes("tapOnion"), r1.renewed.join());
  assertEquals(r1.keys.previousNtor?.key, KEYS.ntor.key);
  assertEquals(r1.keys.previousTapOnion?.key.publicDer, KEYS.tapOnion.key.publicDer);
  assert(!r1.keys.ntor.key.public.every((b, i) => b === KEYS.ntor.key.public[i]));
  const r2 = renewTorRelayKeys(r1.keys, later(27 * DAY + HOUR + 6 * DAY));
  assertEquals(r2.keys.previousNtor?.key, KEYS.ntor.key);
  const r3 = renewTorRelayKeys(r2.keys, later(27 * DAY + HOUR + 7 * DAY));
  assertEquals(r3.keys.previousNtor, undefined);
  assertEquals(r3.keys.previousTapOnion, undefined);
});

Deno.test("renewTorRelayKeys called every 6 hours for 400 days never lets a certificate lapse", () => {
  let keys: TorRelayKeys = KEYS;
  const counts = new Map<string, number>();
  let nextCheckOk = 0;
  for (let t = 0; t <= 400 * DAY; t += 6 * HOUR) {
    const now = later(t);
    const r = renewTorRelayKeys(keys, now);
    keys = r.keys;
    for (const x of r.renewed) counts.set(x, (counts.get(x) ?? 0) + 1);
    // valid now and still for the next 6 hours
    for (const when of [now, later(t + 6 * HOUR)]) {
      asResponder(responderCerts(keys), when, keys.tls.certDer);
      asInitiator(initiatorCerts(keys), when);
    }
    assert(nextTorKeyRenewal(keys).getTime() > now.getTime(), "next renewal is in the future");
    if (
      renewTorRelayKeys(keys, new Date(nextTorKeyRenewal(keys).getTime() - 1)).renewed.length === 0
    ) nextCheckOk++;
  }
  assertEquals(torRelayFingerprint(keys), torRelayFingerprint(KEYS));
  assertEquals(keys.ed25519Identity, KEYS.ed25519Identity);
  // 400 days: signing every 28 d (14), link/auth ~daily, onion keys every 27 d (14), identity X.509 once, cross-cert twice
  assertEquals(counts.get("signing"), 14);
  assertEquals(counts.get("ntor"), 14);
  assertEquals(counts.get("tapOnion"), 14);
  assertEquals(counts.get("rsaIdentityCert"), 1);
  assertEquals(counts.get("rsaEdCrossCert"), 2);
  assert((counts.get("linkAuth") ?? 0) > 200, `linkAuth ${counts.get("linkAuth")}`);
  assert(nextCheckOk > 1500, `nextTorKeyRenewal is a lower bound: ${nextCheckOk}`);
});

// ---- the key file ----

Deno.test("torRelayKeysToJson and torRelayKeysFromJson round-trip a renewed set", () => {
  const { keys } = renewTorRelayKeys(KEYS, later(27 * DAY + HOUR)); // with previous onion keys
  const text = torRelayKeysToJson(keys);
  const back = torRelayKeysFromJson(text);
  assertEquals(torRelayKeysToJson(back), text);
  assertEquals(JSON.parse(text).fingerprint, torRelayFingerprint(keys));
  assertEquals(back.previousNtor?.key, keys.previousNtor?.key);
  assertEquals(back.signing.expires, keys.signing.expires);
  asResponder(responderCerts(back), later(27 * DAY + 2 * HOUR), back.tls.certDer);
  assertEquals(tlsCredentials(back).keyDer, tlsCredentials(keys).keyDer);
});

Deno.test("torRelayKeysFromJson says what is wrong with a bad key file", () => {
  const good = JSON.parse(torRelayKeysToJson(KEYS));
  const bad = (edit: (o: Record<string, Record<string, unknown>>) => void) => {
    const o = structuredClone(good);
    edit(o);
    return JSON.stringify(o);
  };
  assertThrows(() => torRelayKeysFromJson("{"), SyntaxError, "not JSON");
  assertThrows(() => torRelayKeysFromJson("[]"), TypeError);
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.type = "x" as never))),
    TypeError,
    "not a pctcp-tor-relay-keys",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => delete o.signing)),
    TypeError,
    "signing must be an object",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.ntor!.public = good.signing.public))),
    TypeError,
    "ntor.public",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.signing!.secret = "AAAA"))),
    TypeError,
    "32 bytes",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.tls!.expires = "soon"))),
    SyntaxError,
    "tls.expires",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.rsaIdentity!.pem = "nope"))),
    SyntaxError,
    "rsaIdentity.pem",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.fingerprint = "00".repeat(20) as never))),
    TypeError,
    "fingerprint",
  );
  // certificates of another set
  const other = JSON.parse(torRelayKeysToJson(OTHER));
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.signing!.cert = other.signing.cert))),
    TypeError,
    "signing",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.rsaEdCrossCert = other.rsaEdCrossCert))),
    TypeError,
    "rsaEdCrossCert",
  );
  assertThrows(
    () => torRelayKeysFromJson(bad((o) => (o.tls!.certDer = other.tls.certDer))),
    TypeError,
    "tls",
  );
});

Deno.test("verifyPeerCerts throws only CertError on randomly corrupted CERTS cells", () => {
  // deterministic xorshift so a failure can be replayed
  let seed = 0x2545f491;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  let refused = 0;
  for (let i = 0; i < 1500; i++) {
    const responder = rand(2) === 0;
    const certs = (responder ? responderCerts(KEYS) : initiatorCerts(KEYS)).map((c) => ({
      ...c,
      body: c.body.slice(),
    }));
    const victim = certs[rand(certs.length)]!;
    const how = rand(4);
    if (how === 0) victim.body = victim.body.slice(0, rand(victim.body.length)); // truncate
    else if (how === 1) victim.body[rand(victim.body.length)] = rand(256); // overwrite a byte
    else if (how === 2) victim.body = victim.body.map((b) => rand(8) === 0 ? rand(256) : b); // spray
    else victim.type = rand(12); // relabel
    try {
      if (responder) asResponder(certs);
      else asInitiator(certs);
    } catch (e) {
      if (!(e instanceof CertError)) throw new Error(`case ${i} (${how}) threw ${e}`);
      refused++;
    }
  }
  assert(refused > 1000, `most corruptions are refused: ${refused}`);
});

// ---- with C tor itself (Debian's tor binary; it only reads and writes its key directory) ----

function hasTor(): boolean {
  try {
    return new Deno.Command("tor", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
const TOR = hasTor();

/** `tor --list-fingerprint` on `dir` (its keys/ loaded, or made when absent); stdout + log. */
async function torListFingerprint(dir: string): Promise<string> {
  const out = await new Deno.Command("tor", {
    args: [
      "--list-fingerprint",
      "--ignore-missing-torrc",
      "-f",
      "/dev/null",
      "--DataDirectory",
      dir,
      "--ORPort",
      "127.0.0.1:1", // server mode, so the relay keys are loaded; nothing is opened
      "--Nickname",
      "pctcpKeysTest",
      "--SocksPort",
      "0",
      "--Log",
      "notice stdout",
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text);
  return text;
}

function spaced(fp: string): string {
  return fp.match(/.{4}/g)!.join(" ");
}

Deno.test({
  name: "torKeyFiles writes a key set C tor loads: same fingerprints, our type-4 certificate kept",
  ignore: skipUnless(TOR, "no tor binary"),
  async fn() {
    const keys = generateTorRelayKeys(new Date());
    const dir = await Deno.makeTempDir({ prefix: "pctcp-keys-" });
    try {
      await Deno.mkdir(`${dir}/keys`, { mode: 0o700 });
      await Deno.chmod(dir, 0o700);
      const files = torKeyFiles(keys);
      for (const [name, bytes] of Object.entries(files)) {
        await Deno.writeFile(`${dir}/keys/${name}`, bytes, { mode: 0o600 });
      }
      const log = await torListFingerprint(dir);
      assertStringIncludes(log, `pctcpKeysTest ${spaced(torRelayFingerprint(keys))}`);
      const edFp = Buffer.from(keys.ed25519Identity.public).toString("base64").replace(/=+$/, "");
      assertStringIncludes(log, `ed25519 fingerprint is 'pctcpKeysTest ${edFp}'`);
      // C tor found our signing certificate valid: it did not make a new one
      assertEquals(
        await Deno.readFile(`${dir}/keys/ed25519_signing_cert`),
        files.ed25519_signing_cert!,
      );
      assert(!log.includes("need to generate and sign a new medium-term signing key"), log);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "keys C tor generates read and verify with lib/keys: fingerprint, type-4 cert, derived keys",
  ignore: skipUnless(TOR, "no tor binary"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pctcp-keys-" });
    try {
      await Deno.chmod(dir, 0o700);
      const log = await torListFingerprint(dir);
      const k = (name: string) => Deno.readFileSync(`${dir}/keys/${name}`);
      const rsa = rsaKeyFromPem(new TextDecoder().decode(k("secret_id_key")));
      assertStringIncludes(log, `pctcpKeysTest ${spaced(rsaFingerprintHex(rsa.publicDer))}`);
      const master = readTorTaggedFile(k("ed25519_master_id_public_key"));
      assertEquals([master.type, master.tag], ["ed25519v1-public", "type0"]);
      const masterSecret = readTorTaggedFile(k("ed25519_master_id_secret_key")).body;
      assertEquals(expandedPublicOf(masterSecret), master.body);
      const cert = readTorTaggedFile(k("ed25519_signing_cert"));
      assertEquals(cert.tag, "type4");
      const c = parseEdCert(cert.body);
      assertEquals(c.signerKey, master.body);
      verifyEdCert(c, master.body, new Date());
      const signing = readTorTaggedFile(k("ed25519_signing_secret_key")).body;
      assertEquals(expandedPublicOf(signing), c.certifiedKey);
      // C tor's signature of a message by its expanded key verifies
      const msg = new TextEncoder().encode("router-sig-ed25519 check");
      assert(ed25519Verify(c.certifiedKey, msg, signExpanded(signing, msg)));
      // the ntor key: public matches the secret, and the derived Ed25519 key is consistent
      const ntor = readTorTaggedFile(k("secret_onion_key_ntor"));
      assertEquals([ntor.type, ntor.tag], ["c25519v1", "onion"]);
      const secret = ntor.body.subarray(0, 32), pub = ntor.body.subarray(32, 64);
      assertEquals(x25519Public(secret), pub);
      assertEquals(clampCurve25519(secret), secret); // C tor stores it clamped
      const d = ed25519FromCurve25519Secret(secret);
      assertEquals(ed25519FromCurve25519Public(pub, d.signBit), d.public);
      // expandEd25519Seed is how a seed becomes such a file's contents
      const seed = new Uint8Array(32).fill(9);
      assertEquals(
        expandedPublicOf(expandEd25519Seed(seed)),
        (await import("../lib/crypto/ed25519.ts")).ed25519KeyPair(seed).public,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
