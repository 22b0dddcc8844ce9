import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  CELL_LEN,
  CellCommand,
  CellProtocolError,
  CellReader,
  decodeBegin,
  decodeCreate2,
  decodeCreated2,
  decodeEnd,
  decodeExtend2,
  decodeRelayCell,
  decodeSendme,
  decodeVersions,
  encodeBegin,
  encodeCell,
  encodeCreate2,
  encodeCreated2,
  encodeExtend2,
  encodeRelayCell,
  encodeSendme,
  encodeVersions,
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

/** Deterministic PRNG (xorshift32) so a failing input can be reproduced from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

Deno.test("every cell decoder survives 5000 random and mutated inputs with typed errors only", () => {
  const typed = [CellProtocolError, RelayProtocolError, MessageError];
  const decoders: ((b: Uint8Array) => unknown)[] = [
    (b) => {
      const r = new CellReader();
      r.push(b);
      while (r.next());
    },
    (b) => decodeRelayCell(b.length === 509 ? b : new Uint8Array(509).fill(b[0] ?? 0)),
    decodeCreate2,
    decodeCreated2,
    decodeExtend2,
    decodeBegin,
    decodeSendme,
    decodeVersions,
  ];
  const seeds = [
    encodeExtend2({
      address: "10.0.0.1",
      port: 1,
      id: new Uint8Array(20),
      create: { htype: 2, hdata: new Uint8Array(84) },
    }),
    encodeBegin({ host: "a.b", port: 80 }),
    encodeCell({ circId: 1, command: 3, payload: new Uint8Array(509) }),
  ];
  const rand = rng(0xc0ffee);
  for (let i = 0; i < 5000; i++) {
    let input: Uint8Array;
    if (i % 2 === 0) {
      input = new Uint8Array(Math.floor(rand() * 600)).map(() => Math.floor(rand() * 256));
    } else {
      input = seeds[i % seeds.length]!.slice(0, Math.floor(rand() * 600));
      for (let k = 0; k < 3 && input.length; k++) {
        input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256);
      }
    }
    for (const d of decoders) {
      try {
        d(input);
      } catch (e) {
        if (!typed.some((t) => e instanceof t)) {
          throw new Error(`untyped error on input ${i}: ${e}`);
        }
      }
    }
  }
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
