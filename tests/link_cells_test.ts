/**
 * Link-handshake cell codecs (lib/cell/link_cells.ts) against arti's channel-message vectors,
 * both ways: decode gives the message, encode gives the bytes. The vectors are in
 * tests/fixtures/arti_chanmsg.json (provenance in its `_provenance`: arti
 * crates/tor-cell/tests/testvec_chanmsg.rs, cells dumped from C tor 0.4.5 in chutney).
 */

import {
  AUTH0003_LEN,
  chooseLinkVersion,
  decodeAuth0003,
  decodeAuthChallenge,
  decodeAuthenticate,
  decodeCerts,
  decodeNetinfo,
  encodeAuth0003Signed,
  encodeAuthChallenge,
  encodeAuthenticate,
  encodeCerts,
  encodeNetinfo,
  encodePaddingCell,
  encodeVersionsCell,
  encodeVpadding,
} from "../lib/cell/link_cells.ts";
import { CELL_LEN, PAYLOAD_LEN } from "../lib/cell/cell.ts";
import { decodeVersions, encodeVersions, MessageError } from "../lib/cell/messages.ts";
import { assert, assertEquals, assertThrows, hex } from "./_assert.ts";

const V = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/arti_chanmsg.json", import.meta.url)),
);

/** A fixed cell's payload as arti compares it: padded with zeros to 509 bytes. */
function padded(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(PAYLOAD_LEN);
  out.set(b);
  return out;
}

Deno.test("decodeVersions and encodeVersions match arti's VERSIONS vector", () => {
  const body = hex(V.versions.body);
  assertEquals(decodeVersions(body), V.versions.versions);
  assertEquals(encodeVersions(V.versions.versions), body);
  // The first VERSIONS cell whole: 2-byte CircID, as a C tor client sent it (TOR-INTEROP.md).
  assertEquals(encodeVersionsCell([3, 4, 5]), hex("0000 07 0006 0003 0004 0005"));
  assertThrows(() => decodeVersions(hex("000300")), MessageError, "odd length");
  assertEquals(chooseLinkVersion([4, 5], [3, 4, 5]), 5);
  assertEquals(chooseLinkVersion([4, 5], [3, 4]), 4);
  assertEquals(chooseLinkVersion([4, 5], [1, 2, 3]), undefined);
});

Deno.test("decodeCerts and encodeCerts match arti's CERTS vector (types 1 2 4 5 7)", () => {
  const body = hex(V.certs.body);
  const want = V.certs.entries.map((e: { type: number; body: string }) => ({
    type: e.type,
    body: hex(e.body),
  }));
  assertEquals(decodeCerts(body), want);
  assertEquals(encodeCerts(want), body);
  // Ed25519 certificates inside start with version 1 and their type (cert-spec §2.1).
  assertEquals([...want[2].body.subarray(0, 2)], [1, 4]);
  assertEquals([...want[3].body.subarray(0, 2)], [1, 5]);
  assertThrows(() => decodeCerts(body.subarray(0, body.length - 1)), SyntaxError, "truncated");
  assertThrows(() => decodeCerts(new Uint8Array([...body, 0])), SyntaxError, "after its");
  assertThrows(() => decodeCerts(new Uint8Array(0)), SyntaxError, "empty");
});

Deno.test("decodeAuthChallenge and encodeAuthChallenge match arti's AUTH_CHALLENGE vector", () => {
  const body = hex(V.auth_challenge.body);
  const m = { challenge: hex(V.auth_challenge.challenge), methods: V.auth_challenge.methods };
  assertEquals(decodeAuthChallenge(body), m);
  assertEquals(encodeAuthChallenge(m), body);
  assertThrows(() => decodeAuthChallenge(body.subarray(0, 35)), SyntaxError, "truncated");
  assertThrows(() => decodeAuthChallenge(body.subarray(0, 20)), SyntaxError, "too short");
});

Deno.test("decodeAuthenticate and encodeAuthenticate match arti's AUTHENTICATE vector", () => {
  const body = hex(V.authenticate.body);
  const m = { authType: 3, authentication: hex(V.authenticate.authentication) };
  assertEquals(decodeAuthenticate(body), m);
  assertEquals(encodeAuthenticate(m), body);
  // C tor's method-3 body: AUTH0003, 8 fields of 32 bytes, RAND 24, signature 64.
  assertEquals(m.authentication.length, AUTH0003_LEN);
  const f = decodeAuth0003(m.authentication);
  assertEquals(encodeAuth0003Signed(f), m.authentication.subarray(0, 288));
  assertEquals(f.signature, m.authentication.subarray(288));
  assertThrows(() => decodeAuthenticate(body.subarray(0, 100)), SyntaxError, "truncated");
  assertThrows(() => decodeAuth0003(m.authentication.subarray(1)), SyntaxError, "352");
  const other = m.authentication.slice();
  other[7] = 0x31; // "AUTH0001"
  assertThrows(() => decodeAuth0003(other), SyntaxError, "another type");
});

Deno.test("decodeNetinfo and encodeNetinfo match arti's NETINFO vectors", () => {
  for (const v of V.netinfo) {
    const body = hex(v.body);
    const want = { time: v.time, otherAddress: v.otherAddress, myAddresses: v.myAddresses };
    assertEquals(decodeNetinfo(padded(body)), want, v.body);
    if (!v.decodeOnly) assertEquals(padded(encodeNetinfo(want)), padded(body), v.body);
  }
  assertThrows(() => decodeNetinfo(hex("00000000 04 04 7F00")), SyntaxError, "truncated");
  assertEquals(
    decodeNetinfo(encodeNetinfo({ time: 1, otherAddress: "2001:db8::1:0:0:1", myAddresses: [] }))
      .otherAddress,
    "2001:db8::1:0:0:1",
  );
});

Deno.test("encodeVpadding and encodePaddingCell match arti's padding vectors", () => {
  for (const v of V.vpadding) assertEquals(encodeVpadding(v.length), hex(v.body));
  const p = encodePaddingCell();
  assertEquals(p.length, CELL_LEN);
  assert(p.every((x) => x === 0));
  assertEquals(p.subarray(5), padded(hex(V.padding.body)));
});
