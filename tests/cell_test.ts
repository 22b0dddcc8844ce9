import { assert, assertEquals, assertThrows, hex } from "./_assert.ts";
import { concat, Fuzz, fuzzDecoder, type FuzzTally } from "./_fuzz.ts";
import {
  CELL_LEN,
  CellCommand,
  CellProtocolError,
  CellReader,
  decodeBegin,
  decodeConnected,
  decodeCreate2,
  decodeCreated2,
  decodeEnd,
  decodeExtend2,
  decodeRelayCell,
  decodeSendme,
  decodeVersions,
  encodeBegin,
  encodeCell,
  encodeConnected,
  encodeCreate2,
  encodeCreated2,
  encodeEnd,
  encodeExtend2,
  encodeRelayCell,
  encodeSendme,
  encodeVersions,
  isVariableCommand,
  MessageError,
  RelayCommand,
  RelayProtocolError,
} from "../lib/cell/mod.ts";

Deno.test("encodeCell lays out a fixed cell as CircID(4) Command(1) Payload(509)", () => {
  const b = encodeCell({
    circId: 0x80000001,
    command: CellCommand.DESTROY,
    payload: Uint8Array.of(3),
  });
  assertEquals(b.length, CELL_LEN);
  assertEquals(b.subarray(0, 6), Uint8Array.of(0x80, 0, 0, 1, 4, 3));
  assert(b.subarray(6).every((x) => x === 0));
});

Deno.test("encodeCell lays out a VERSIONS cell as a variable cell", () => {
  const b = encodeCell({
    circId: 0,
    command: CellCommand.VERSIONS,
    payload: encodeVersions([4, 5]),
  });
  assertEquals(b, Uint8Array.of(0, 0, 0, 0, 7, 0, 4, 0, 4, 0, 5));
  assertEquals(decodeVersions(b.subarray(7)), [4, 5]);
});

Deno.test("CellReader returns need-more on truncated frames and whole cells byte by byte", () => {
  const cells = [
    encodeCell({ circId: 5, command: CellCommand.RELAY, payload: new Uint8Array(509).fill(9) }),
    encodeCell({ circId: 0, command: CellCommand.VPADDING, payload: new Uint8Array(10).fill(1) }),
    encodeCell({ circId: 7, command: CellCommand.CREATE2, payload: new Uint8Array(88).fill(2) }),
  ];
  const all = new Uint8Array(cells.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of cells) all.set(c, off), off += c.length;
  const r = new CellReader();
  const got = [];
  for (const byte of all) {
    r.push(Uint8Array.of(byte));
    for (let c = r.next(); c; c = r.next()) got.push(c);
  }
  assertEquals(got.map((c) => [c.circId, c.command, c.payload.length]), [
    [5, 3, 509],
    [0, 128, 10],
    [7, 10, 509],
  ]);
  assertEquals(r.buffered, 0);
});

Deno.test("CellReader throws on an oversized variable cell", () => {
  const r = new CellReader({ maxVarPayload: 100 });
  r.push(Uint8Array.of(0, 0, 0, 0, 129, 0xff, 0xff));
  assertThrows(() => r.next(), CellProtocolError, "too long");
});

Deno.test("encodeRelayCell and decodeRelayCell round-trip and pad with 4 zeros first", () => {
  const data = new TextEncoder().encode("hello");
  const p = encodeRelayCell(
    { command: RelayCommand.DATA, streamId: 0x1234, data },
    (b) => b.fill(0xee),
  );
  assertEquals(p.subarray(0, 11), Uint8Array.of(2, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 5));
  assertEquals(p.subarray(16, 20), new Uint8Array(4));
  assertEquals(p[20], 0xee);
  assertEquals(decodeRelayCell(p), { command: 2, streamId: 0x1234, data });
  p[9] = 2; // length 512+5 > 498
  assertThrows(() => decodeRelayCell(p), RelayProtocolError, "length");
});

Deno.test("encodeExtend2 and decodeExtend2 round-trip", () => {
  const m = {
    address: "127.0.0.1",
    port: 9001,
    id: new Uint8Array(20).fill(7),
    create: { htype: 2, hdata: new Uint8Array(84).fill(3) },
  };
  assertEquals(decodeExtend2(encodeExtend2(m)), m);
  assertEquals(decodeCreate2(encodeCreate2(m.create)), m.create);
  assertEquals(decodeCreated2(encodeCreated2(Uint8Array.of(1, 2, 3))), Uint8Array.of(1, 2, 3));
});

Deno.test("decodeBegin parses host:port, IPv6 in brackets, and refuses junk", () => {
  assertEquals(decodeBegin(encodeBegin({ host: "example.com", port: 80 })), {
    host: "example.com",
    port: 80,
  });
  assertEquals(decodeBegin(encodeBegin({ host: "::1", port: 443 })), { host: "::1", port: 443 });
  for (const bad of ["nocolon\0", "h:0\0", "h:70000\0", "h:80"]) {
    assertThrows(() => decodeBegin(new TextEncoder().encode(bad)), MessageError);
  }
});

Deno.test("SENDME v1 bodies carry the 20-byte digest", () => {
  const d = new Uint8Array(20).fill(0xab);
  assertEquals(decodeSendme(encodeSendme(d)), d);
  assertEquals(decodeSendme(new Uint8Array(0)), undefined);
  assertEquals(decodeEnd(new Uint8Array(0)), 1);
});

// Decoder fuzz (tests/_fuzz.ts): per decoder, 3000 seeded inputs — a third random bytes of
// random length, the rest bit flips, truncations and extensions of valid encodings made with
// random fields. Each input either decodes to a value that re-encodes consistently with the
// bytes it came from, or throws the decoder's own error class (MessageError,
// RelayProtocolError, CellProtocolError); a TypeError/RangeError from deep inside, an
// inconsistent value or a reader loop that stops consuming fails with the input's bytes.
const N_FUZZ = 3000;

function fuzzInputs(
  f: Fuzz,
  valid: () => Uint8Array,
  randomLength: () => number = () => f.int(0, 600),
): Uint8Array[] {
  return Array.from(
    { length: N_FUZZ },
    (_, i) => i % 3 === 0 ? f.bytes(randomLength()) : f.mutate(valid()),
  );
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  assertEquals(a, b, what);
}

function expectBoth(name: string, t: FuzzTally): void {
  assert(t.accepted > 0, `${name}: no input was accepted (the oracle never ran)`);
  assert(t.rejected > 0, `${name}: no input was rejected`);
}

Deno.test("fuzz: decodeRelayCell on random, bit-flipped and resized payloads", () => {
  const f = new Fuzz(0x5eed01);
  const valid = () =>
    encodeRelayCell(
      { command: f.int(0, 255), streamId: f.int(0, 0xffff), data: f.bytes(f.int(0, 498)) },
      (b) => b.set(f.bytes(b.length)),
    );
  const t = fuzzDecoder(
    "decodeRelayCell",
    fuzzInputs(f, valid, () => f.random() < 0.7 ? 509 : f.int(0, 600)),
    decodeRelayCell,
    (c, input) => {
      assertEquals(input.length, 509, "accepted a payload that is not 509 bytes");
      assert(c.data.length <= 498, "data longer than 498");
      const re = encodeRelayCell(c, (b) => b.fill(0));
      for (const i of [0, 3, 4, 9, 10]) assertEquals(re[i], input[i], `header byte ${i}`);
      same(re.subarray(11, 11 + c.data.length), input.subarray(11, 11 + c.data.length), "data");
      assertEquals(decodeRelayCell(re), c, "re-decoded");
    },
    [RelayProtocolError],
  );
  expectBoth("decodeRelayCell", t);
});

Deno.test("fuzz: decodeCreate2 and decodeCreated2 re-encode to the bytes they read", () => {
  const f = new Fuzz(0x5eed02);
  const t1 = fuzzDecoder(
    "decodeCreate2",
    fuzzInputs(f, () => encodeCreate2({ htype: f.int(0, 0xffff), hdata: f.bytes(f.int(0, 505)) })),
    decodeCreate2,
    (m, input) => same(encodeCreate2(m), input.subarray(0, 4 + m.hdata.length), "CREATE2"),
    [MessageError],
  );
  expectBoth("decodeCreate2", t1);
  const t2 = fuzzDecoder(
    "decodeCreated2",
    fuzzInputs(f, () => encodeCreated2(f.bytes(f.int(0, 507)))),
    decodeCreated2,
    (h, input) => same(encodeCreated2(h), input.subarray(0, 2 + h.length), "CREATED2"),
    [MessageError],
  );
  expectBoth("decodeCreated2", t2);
});

Deno.test("fuzz: decodeExtend2 values survive encode and decode again", () => {
  const f = new Fuzz(0x5eed03);
  const valid = () =>
    encodeExtend2({
      address: Array.from({ length: 4 }, () => f.int(0, 255)).join("."),
      port: f.int(0, 0xffff),
      id: f.bytes(20),
      ...(f.random() < 0.5 ? { ed25519: f.bytes(32) } : {}),
      create: { htype: f.int(0, 3), hdata: f.bytes(f.int(0, 200)) },
    });
  const t = fuzzDecoder(
    "decodeExtend2",
    fuzzInputs(f, valid),
    decodeExtend2,
    (m) => {
      assertEquals(m.id.length, 20, "legacy id length");
      if (m.ed25519) assertEquals(m.ed25519.length, 32, "ed25519 length");
      assert(m.port >= 0 && m.port <= 0xffff, "port");
      assertEquals(decodeExtend2(encodeExtend2(m)), m, "re-decoded");
    },
    [MessageError],
  );
  expectBoth("decodeExtend2", t);
});

Deno.test("fuzz: decodeBegin values survive encode and decode again", () => {
  const f = new Fuzz(0x5eed04);
  const hostChars = "abcdefghijklmnopqrstuvwxyz0123456789.-";
  const valid = () => {
    const host = f.random() < 0.7
      ? Array.from({ length: f.int(1, 60) }, () => f.pick([...hostChars])).join("")
      : Array.from({ length: 8 }, () => f.int(0, 0xffff).toString(16)).join(":");
    const flags = f.random() < 0.5 ? f.int(1, 0xffffffff) : 0;
    return encodeBegin({ host, port: f.int(1, 0xffff), flags });
  };
  const t = fuzzDecoder(
    "decodeBegin",
    fuzzInputs(f, valid),
    decodeBegin,
    (m) => {
      assert(Number.isInteger(m.port) && m.port >= 1 && m.port <= 0xffff, "port");
      assert([...m.host].every((c) => c >= " " && c <= "~"), "host not ASCII");
      assertEquals(decodeBegin(encodeBegin(m)), m, "re-decoded");
    },
    [MessageError],
  );
  expectBoth("decodeBegin", t);
});

Deno.test("fuzz: decodeConnected, decodeSendme, decodeEnd and decodeVersions agree with their encoders", () => {
  const f = new Fuzz(0x5eed05);
  const ipv6Connected = () => {
    const b = new Uint8Array(25);
    b[4] = 6;
    b.set(f.bytes(20), 5);
    return b;
  };
  const t1 = fuzzDecoder(
    "decodeConnected",
    fuzzInputs(f, () =>
      f.random() < 0.5
        ? encodeConnected(
          [f.int(1, 255), f.int(0, 255), f.int(0, 255), f.int(0, 255)].join("."),
          f.int(0, 0x7fffffff),
        )
        : ipv6Connected()),
    decodeConnected,
    (c, input) => {
      if (c.address === undefined) return assertEquals(input.length, 0, "empty CONNECTED");
      const ttl = new DataView(input.buffer, input.byteOffset, input.length);
      if (!c.address.includes(":")) {
        return same(encodeConnected(c.address, c.ttl), input.subarray(0, 8), "IPv4 CONNECTED");
      }
      const groups = c.address.split(":").map((g) => parseInt(g, 16));
      assertEquals(groups.length, 8, "IPv6 groups");
      groups.forEach((g, i) => assertEquals(g, ttl.getUint16(5 + 2 * i), `IPv6 group ${i}`));
      assertEquals(c.ttl, ttl.getUint32(21), "IPv6 TTL");
      same(input.subarray(0, 5), Uint8Array.of(0, 0, 0, 0, 6), "IPv6 marker");
    },
    [MessageError],
  );
  expectBoth("decodeConnected", t1);
  const t2 = fuzzDecoder(
    "decodeSendme",
    fuzzInputs(
      f,
      () => f.random() < 0.2 ? encodeSendme() : encodeSendme(f.bytes(20)),
      () => f.int(0, 40),
    ),
    decodeSendme,
    (d, input) => {
      if (d === undefined) return assert(input.length === 0 || input[0] === 0, "v0 SENDME");
      same(encodeSendme(d), input.subarray(0, 23), "SENDME v1");
    },
    [MessageError],
  );
  expectBoth("decodeSendme", t2);
  const t3 = fuzzDecoder(
    "decodeEnd",
    fuzzInputs(f, () => encodeEnd(f.int(0, 255)), () => f.int(0, 3)),
    decodeEnd,
    (r, input) => assertEquals(r, input.length ? input[0] : 1, "END reason"),
    [],
  );
  assertEquals(t3.rejected, 0);
  const t4 = fuzzDecoder(
    "decodeVersions",
    fuzzInputs(
      f,
      () => encodeVersions(Array.from({ length: f.int(0, 10) }, () => f.int(0, 0xffff))),
    ),
    decodeVersions,
    (v, input) => same(encodeVersions(v), input, "VERSIONS"),
    [MessageError],
  );
  expectBoth("decodeVersions", t4);
});

Deno.test("fuzz: CellReader on random streams in random chunks: cells re-encode to the stream, or CellProtocolError", () => {
  const f = new Fuzz(0x5eed06);
  const valid = () => {
    const cells = Array.from({ length: f.int(1, 4) }, () => {
      const command = f.pick([3, 4, 7, 9, 10, 128, 129, 132]);
      const payload = f.bytes(isVariableCommand(command) ? f.int(0, 300) : 509);
      return encodeCell({ circId: f.int(0, 0xffffffff), command, payload });
    });
    return cells.reduce((a, b) => concat(a, b), new Uint8Array(0));
  };
  const t = fuzzDecoder(
    "CellReader",
    fuzzInputs(f, valid, () => f.int(0, 2000)),
    (input) => {
      const r = new CellReader({ maxVarPayload: 1024 });
      let off = 0;
      const cells = [];
      while (off < input.length) {
        const n = f.int(1, 700);
        r.push(input.slice(off, off + n));
        off += n;
        // Each cell consumes at least 5 bytes: more turns means the reader stopped consuming.
        for (let c = r.next(); c; c = r.next()) {
          cells.push({ ...c, payload: c.payload.slice() });
          if (cells.length > input.length / 5) throw new Error("CellReader loops");
        }
      }
      return { cells, buffered: r.buffered };
    },
    ({ cells, buffered }, input) => {
      const re = cells.map((c) => encodeCell(c)).reduce((a, b) => concat(a, b), new Uint8Array(0));
      same(re, input.subarray(0, re.length), "cells re-encoded");
      assertEquals(buffered, input.length - re.length, "bytes left buffered");
    },
    [CellProtocolError],
  );
  expectBoth("CellReader", t);
});

// Byte vectors from arti's tor-cell tests (torproject/arti, mirror dgoulet-tor/arti 781dc4b):
// crates/tor-cell/tests/test_chancell.rs, testvec_chanmsg.rs, test_relaycell.rs and
// testvec_relaymsg.rs. Most were dumped from C tor 0.4.5 in a chutney network; the ones arti
// marks "hand-generated" are said so below. Each is checked both ways where we have an encoder.
const h = (s: string) => hex(s.replace(/\s+/g, ""));

Deno.test("encodeCell and CellReader match arti's channel-cell vectors (test_chancell.rs)", () => {
  // RELAY on circuit 0x20201122, payload zero-padded to 509 bytes.
  const relay = new Uint8Array(CELL_LEN);
  relay.set(h("20201122 03 666f72206120636f64652063616c6c656420706561636574696d65"));
  const payload = new Uint8Array(509);
  payload.set(new TextEncoder().encode("for a code called peacetime"));
  assertEquals(encodeCell({ circId: 0x20201122, command: CellCommand.RELAY, payload }), relay);
  // An unrecognized variable cell (command 255) followed by 10 bytes of the next thing.
  const vbytes = h("12345678 ff 0019 7765206c697374656e20726f756e642074686520636c6f636b");
  const r = new CellReader();
  r.push(relay);
  r.push(vbytes);
  r.push(new TextEncoder().encode("next thing"));
  assertEquals(r.next(), { circId: 0x20201122, command: 3, payload });
  const v = r.next()!;
  assertEquals([v.circId, v.command], [0x12345678, 255]);
  assertEquals(new TextDecoder().decode(v.payload), "we listen round the clock");
  assertEquals(encodeCell(v), vbytes);
  assertEquals(r.next(), undefined);
  assertEquals(r.buffered, 10);
  // test_truncated_cells: every short prefix is "need more bytes", never an error.
  for (
    const s of [
      "00000001 03 1234",
      "00000001 03 12",
      "00000001 03",
      "00000001",
      "000000",
      "",
      "00000000 81 0003 1234",
      "00000000 81 0003 12",
      "00000000 81 0003",
      "00000000 81 00",
      "00000000 81",
    ]
  ) {
    const t = new CellReader();
    t.push(h(s));
    assertEquals(t.next(), undefined, s);
  }
});

Deno.test("CREATE2, CREATED2, DESTROY and VERSIONS bodies match arti's testvec_chanmsg.rs", () => {
  const skin = h(
    "09164430E84D3BC56EC7E1D22734742345E2DECE0DE535B66B8E8A0EBBDAE3263C53E02EC2215685CD3A977DC7946FF47F84CD7025F75D252D1B35DEA28F32FA912513889A207E5049992DBC9BC541194C13624A",
  );
  const create2 = new Uint8Array([...h("0002 0054"), ...skin]);
  assertEquals(encodeCreate2({ htype: 2, hdata: skin }), create2);
  assertEquals(decodeCreate2(create2), { htype: 2, hdata: skin });
  const reply = h(
    "0108907A701030ADB6CA9C6AF097DC4855614655659B6A7BF21C1097DCE7C66EE0E4EF287DE7CED40BEECA8B90140C05DB6138AEB551CE0C037068C315E307A0",
  );
  const created2 = new Uint8Array([0, 0x40, ...reply]);
  assertEquals(encodeCreated2(reply), created2);
  assertEquals(decodeCreated2(created2), reply);
  // DESTROY "04": the reason is the first payload byte (tor-spec §5.4).
  assertEquals(encodeCell({ circId: 1, command: CellCommand.DESTROY, payload: h("04") })[5], 4);
  assertEquals(encodeVersions([3, 4, 5]), h("000300040005"));
  assertEquals(decodeVersions(h("000300040005")), [3, 4, 5]);
});

Deno.test("relay cell bodies match arti's test_relaycell.rs (padding after 4 zero bytes)", () => {
  // DATA on stream 0x9999 with "need-to-know"; arti's BadRng pads with 0xf0. The digest
  // field (12345678 in the vector) is set by the crypto layer, so the encoder leaves it 0.
  const vector = new Uint8Array(509).fill(0xf0);
  vector.set(h("02 0000 9999 12345678 000c 6e6565642d746f2d6b6e6f77 00000000"));
  const c = decodeRelayCell(vector);
  assertEquals(c, { command: 2, streamId: 0x9999, data: new TextEncoder().encode("need-to-know") });
  const enc = encodeRelayCell(c, (b) => b.fill(0xf0));
  vector.set([0, 0, 0, 0], 5);
  assertEquals(enc, vector);
  // Length 0x1f2 (498) is the most a cell holds; 0x1f3 is refused.
  vector.set([0x01, 0xf2], 9);
  assertEquals(decodeRelayCell(vector).data.length, 498);
  vector.set([0x01, 0xf3], 9);
  assertThrows(() => decodeRelayCell(vector), RelayProtocolError);
});

Deno.test("relay message bodies match arti's testvec_relaymsg.rs both ways", () => {
  // BEGIN, dumped from C tor: no FLAGS field when the flags are 0.
  assertEquals(encodeBegin({ host: "127.0.0.1", port: 7003 }), h("3132372E302E302E313A3730303300"));
  assertEquals(decodeBegin(h("3132372E302E302E313A3730303300")), { host: "127.0.0.1", port: 7003 });
  // Hand-generated in arti: flags 3; IPv6 in brackets.
  const withFlags = h("7777772e786b63642e636f6d3a34343300 00000003");
  assertEquals(decodeBegin(withFlags), { host: "www.xkcd.com", port: 443, flags: 3 });
  assertEquals(encodeBegin({ host: "www.xkcd.com", port: 443, flags: 3 }), withFlags);
  const v6 = h("5b323030313a6462383a3a315d3a323200");
  assertEquals(decodeBegin(v6), { host: "2001:db8::1", port: 22 });
  assertEquals(encodeBegin({ host: "2001:db8::1", port: 22 }), v6);
  // Hand-generated failures: no port after the IPv6 address; not ASCII.
  assertThrows(() => decodeBegin(h("5b3a3a5d2100")), MessageError);
  assertThrows(
    () => decodeBegin(h("746f7270726f6a656374e284a22e6f72673a34343300")),
    MessageError,
  );
  // CONNECTED: empty, or IPv4 + TTL.
  assertEquals(encodeConnected(), new Uint8Array(0));
  assertEquals(encodeConnected("127.0.0.1", 0xe10), h("7F000001 00000E10"));
  assertEquals(decodeConnected(h("7F000001 00000E10")), { address: "127.0.0.1", ttl: 0xe10 });
  assertEquals(decodeConnected(new Uint8Array(0)), {});
  // END: reason byte; empty means MISC; EXITPOLICY carries an address and TTL we skip.
  assertEquals(encodeEnd(1), h("01"));
  assertEquals(encodeEnd(6), h("06"));
  assertEquals(decodeEnd(h("06")), 6);
  assertEquals(decodeEnd(new Uint8Array(0)), 1);
  assertEquals(decodeEnd(h("04 7f000007 00000100")), 4);
  // EXTEND2 with an IPv4 and a legacy-id link specifier and an ntor handshake.
  const skin = h(
    "03479E93EBF3FF2C58C1C9DBF2DE9DE9C2801B3E36A3E0BDB1F1A10579820243DD2E228B902940EB49EF842646E3926768C28410074BEE50A535116D657C6BFB7E5114119DC69F05DF907EF62002EA782B0A357F",
  );
  const extend2 = h(`02 00 06 7F0000011388 02 14 03479E93EBF3FF2C58C1C9DBF2DE9DE9C2801B3E
    0002 0054`);
  const ext = new Uint8Array([...extend2, ...skin]);
  const id = h("03479E93EBF3FF2C58C1C9DBF2DE9DE9C2801B3E");
  const m = { address: "127.0.0.1", port: 5000, id, create: { htype: 2, hdata: skin } };
  assertEquals(encodeExtend2(m), ext);
  assertEquals(decodeExtend2(ext), m);
  // EXTENDED2 carries a CREATED2 body.
  const hs = h(
    "0026619058EB2661834D54C2624828728F28915587CDAD1AD3373B85F33A480EEA9D3B2CEF8D39C1DBD2FA519E75296B96960690C79A28D6A0D9454F8E9634BD",
  );
  assertEquals(decodeCreated2(new Uint8Array([0, 0x40, ...hs])), hs);
  // SENDME: hand-generated in arti, empty (v0) and v1 with a 20-byte tag.
  const tag = h("F01234989823478bcdefabcdef01234567890123");
  assertEquals(encodeSendme(tag), h("01 0014 F01234989823478bcdefabcdef01234567890123"));
  assertEquals(decodeSendme(h("01 0014 F01234989823478bcdefabcdef01234567890123")), tag);
});

Deno.test("CellReader gives payloads as views into the pushed chunk, copies only split cells", () => {
  const a = encodeCell({ circId: 1, command: CellCommand.RELAY, payload: new Uint8Array(509) });
  const b = encodeCell({ circId: 2, command: CellCommand.RELAY, payload: new Uint8Array(509) });
  const chunk = new Uint8Array(514 + 300);
  chunk.set(a), chunk.set(b.subarray(0, 300), 514);
  const r = new CellReader();
  r.push(chunk);
  const c1 = r.next()!;
  assertEquals(r.next(), undefined);
  c1.payload[0] = 0xaa; // in place, as relay crypto does
  assertEquals(chunk[5], 0xaa);
  const rest = b.slice(300);
  r.push(rest);
  const c2 = r.next()!;
  assertEquals([c2.circId, c2.payload.length, r.buffered], [2, 509, 0]);
  c2.payload[0] = 0xbb; // assembled into its own buffer: neither chunk changes
  assertEquals([chunk[514 + 5], rest[0]], [0, b[300]]);
});
