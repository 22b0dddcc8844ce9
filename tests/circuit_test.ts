// The sans-IO circuit cores, driven without sockets: a client core and three relay cores
// wired by function calls (each relay answers CREATE2 with real ntor), then hostile hops
// that break one tor-spec rule each. Every rule here closes the circuit with a reason.
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  CellCommand,
  DestroyReason,
  encodeCreate2,
  encodeCreated2,
  encodeSendme,
  type Extend2,
  HandshakeType,
  RelayCommand,
} from "../lib/cell/mod.ts";
import { ntorClient1, ntorServer } from "../lib/crypto/mod.ts";
import { generateRelayKeys, identityDigest } from "../lib/directory/keys.ts";
import {
  admitCreate2,
  answerCreate2,
  checkCreateCircId,
  ClientCircuitCore,
  type ClientCircuitOptions,
  destroyStep,
  MAX_RELAY_EARLY,
  perCircuitRefusal,
  ProtocolError,
  RelayCircuitCore,
} from "../lib/circuit/mod.ts";

interface Harness {
  client: ClientCircuitCore;
  relays: RelayCircuitCore[];
  /** What the client saw. */
  seen: { built: boolean; connected: number[]; ended: [number, number][]; data: number[] };
  /** DESTROY reasons: from the client ("client"), or a relay's destroy action ("rN"). */
  destroyed: [string, number, string][];
  /** Data delivered at the exit, per stream. */
  exitData: number[];
  /** Cells from the client towards the guard (command) after the build. */
  toGuard: number[];
  closed?: { reason: number; remote: boolean; why: string };
  /** When true, the client's streams refuse DATA and SENDMEs (window overrun/overflow). */
  streamsRefuse?: boolean;
}

function harness(hops = 3, options: ClientCircuitOptions = {}): Harness {
  const keys = Array.from({ length: hops }, () => generateRelayKeys());
  const path = keys.map((k, i) => ({
    id: identityDigest(k.identity.public),
    onionKey: k.onion.public,
    address: "127.0.0.1",
    port: 9000 + i,
  }));
  const h: Harness = {
    client: undefined as unknown as ClientCircuitCore,
    relays: [],
    seen: { built: false, connected: [], ended: [], data: [] },
    destroyed: [],
    exitData: [],
    toGuard: [],
  };
  const answer = (i: number, hdata: Uint8Array) => {
    const [material, reply] = ntorServer(
      { id: path[i]!.id, onionKey: keys[i]!.onion.public, onionSecret: keys[i]!.onion.secret },
      hdata,
    );
    const core = new RelayCircuitCore(material, {
      toClient: (p) =>
        i === 0 ? h.client.onCell(CellCommand.RELAY, p) : h.relays[i - 1]!.fromNext(3, p),
      toNext: (c, p) => h.relays[i + 1]?.fromPrev(c, p),
      deliver: (_id, data) => (h.exitData.push(data.length), true),
      streamSendme: () => true,
      streamEnd: () => {},
      begin: (id) => core.connected(id, new Uint8Array(0)),
      extend: (ext: Extend2) => {
        const reply = answer(i + 1, ext.create.hdata);
        core.created(encodeCreated2(reply));
      },
      truncateNext: () => {},
      destroy: (reason, why) => h.destroyed.push([`r${i + 1}`, reason, why]),
    });
    h.relays[i] = core;
    return reply;
  };
  h.client = new ClientCircuitCore(path, {
    send: (command, payload) => {
      if (command === CellCommand.CREATE2) {
        h.client.onCell(CellCommand.CREATED2, encodeCreated2(answer(0, payload.subarray(4))));
      } else if (command === CellCommand.DESTROY) {
        h.destroyed.push(["client", payload[0]!, ""]);
      } else {
        if (h.seen.built) h.toGuard.push(command);
        h.relays[0]!.fromPrev(command, payload);
      }
    },
    built: () => h.seen.built = true,
    connected: (id) => h.seen.connected.push(id),
    streamEnded: (id, reason) => h.seen.ended.push([id, reason]),
    deliver: (_id, data) => (h.seen.data.push(data.length), !h.streamsRefuse),
    streamSendme: () => !h.streamsRefuse,
    closed: (reason, remote, why) => h.closed = { reason, remote, why },
  }, options);
  return h;
}

function built(): Harness {
  const h = harness();
  h.client.start();
  assert(h.seen.built, "the circuit was not built");
  return h;
}

function assertClosedByClient(h: Harness, reason: number, part: string) {
  assert(h.closed, "the client did not close the circuit");
  assertEquals(h.closed.reason, reason);
  assertEquals(h.closed.remote, false);
  assert(h.closed.why.includes(part), `"${h.closed.why}" lacks "${part}"`);
  assertEquals(h.client.state, "closed");
  assert(h.destroyed.some(([who, r]) => who === "client" && r === reason), "no DESTROY sent");
}

Deno.test("ClientCircuitCore builds three hops with ntor and carries a stream both ways", () => {
  const h = built();
  assertEquals(h.client.hops, 3);
  assertEquals(h.relays.map((r) => r.state), ["extended", "extended", "open"]);
  const id = h.client.begin("example.com", 80);
  assertEquals(h.seen.connected, [id]);
  h.client.send(RelayCommand.DATA, id, new Uint8Array(100));
  assertEquals(h.exitData, [100]);
  h.relays[2]!.originate(RelayCommand.DATA, id, new Uint8Array(7));
  assertEquals(h.seen.data, [7]);
  assertEquals(h.destroyed, []);
});

Deno.test("ClientCircuitCore refuses stream cells from a hop the stream was not opened to (layer check)", () => {
  for (const command of [RelayCommand.DATA, RelayCommand.END, RelayCommand.CONNECTED]) {
    const h = built();
    const id = h.client.begin("example.com", 80);
    // The middle relay injects into the exit's stream, with its own (valid) layer.
    h.relays[1]!.originate(
      command,
      id,
      command === RelayCommand.END ? Uint8Array.of(6) : new Uint8Array(3),
    );
    assertClosedByClient(h, DestroyReason.PROTOCOL, "from hop 2");
    assertEquals(h.seen.data, []);
    assertEquals(h.seen.ended, []);
  }
});

Deno.test("ClientCircuitCore refuses EXTENDED2 from the wrong hop or when not extending", () => {
  const h = built();
  h.relays[1]!.originate(RelayCommand.EXTENDED2, 0, encodeCreated2(new Uint8Array(64)));
  assertClosedByClient(h, DestroyReason.PROTOCOL, "EXTENDED2 from hop 2");
  const g = built();
  g.relays[2]!.originate(RelayCommand.EXTENDED2, 0, encodeCreated2(new Uint8Array(64)));
  assertClosedByClient(g, DestroyReason.PROTOCOL, "EXTENDED2 from hop 3 while open");
});

Deno.test("ClientCircuitCore refuses TRUNCATED from the last hop; from an inner hop the circuit closes", () => {
  const h = built();
  h.relays[2]!.originate(RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.CONNECTFAILED));
  assertClosedByClient(h, DestroyReason.PROTOCOL, "no next hop");
  const g = built();
  g.relays[1]!.originate(RelayCommand.TRUNCATED, 0, Uint8Array.of(DestroyReason.CONNECTFAILED));
  assertClosedByClient(g, DestroyReason.FINISHED, "truncated at hop 2");
});

Deno.test("stream windows never go negative: an unexpected stream SENDME or an overrun closes the circuit", () => {
  for (
    const [command, part] of [[RelayCommand.SENDME, "unexpected SENDME"], [
      RelayCommand.DATA,
      "window overrun",
    ]] as const
  ) {
    const h = harness();
    // The role's streams say no: the window would overflow, or the deliver window is spent.
    h.client.start();
    const id = h.client.begin("example.com", 80);
    h.streamsRefuse = true;
    h.relays[2]!.originate(command, id, new Uint8Array(1));
    assertClosedByClient(h, DestroyReason.PROTOCOL, part);
  }
});

Deno.test("ClientCircuitCore refuses relay commands that only travel outbound, and inbound RELAY_EARLY", () => {
  for (const command of [RelayCommand.BEGIN, RelayCommand.EXTEND2, RelayCommand.TRUNCATE]) {
    const h = built();
    h.relays[2]!.originate(command, command === RelayCommand.BEGIN ? 5 : 0, new Uint8Array(0));
    assertClosedByClient(h, DestroyReason.PROTOCOL, "travelling inbound");
  }
  const h = built();
  h.client.onCell(CellCommand.RELAY_EARLY, new Uint8Array(509));
  assertClosedByClient(h, DestroyReason.PROTOCOL, "RELAY_EARLY");
  const g = built();
  g.client.onCell(CellCommand.CREATED2, encodeCreated2(new Uint8Array(64)));
  assertClosedByClient(g, DestroyReason.PROTOCOL, "CREATED2 while not creating");
  const c = built();
  c.relays[2]!.originate(RelayCommand.CONNECTED, 77, new Uint8Array(0));
  assertClosedByClient(c, DestroyReason.PROTOCOL, "did not ask");
});

Deno.test("circuit SENDMEs: v1 with the right digest passes; v0, empty and wrong digests close the circuit", () => {
  // Honest: 100 DATA cells from the client make the exit send an authenticated SENDME.
  const fill = (h: Harness) => {
    const id = h.client.begin("example.com", 80);
    for (let i = 0; i < 100; i++) {
      assert(h.client.packageWindow.take());
      h.client.send(RelayCommand.DATA, id, new Uint8Array(10));
    }
    return id;
  };
  const ok = built();
  fill(ok);
  assertEquals(ok.closed, undefined, JSON.stringify(ok.closed));
  assertEquals(ok.client.packageWindow.value, 1000);
  assertEquals(ok.closed, undefined);
  // Hostile exits: a SENDME with no digest (v0 / empty), or a made-up digest.
  for (
    const [body, why] of [[new Uint8Array(0), "version"], [Uint8Array.of(0, 0, 0), "version"], [
      encodeSendme(new Uint8Array(20).fill(9)),
      "digest",
    ]] as const
  ) {
    const h = built();
    const id = h.client.begin("example.com", 80);
    // The hostile exit swallows 100 DATA cells and answers with its own SENDME.
    h.relays[2]!.fromPrev = () => {};
    for (let i = 0; i < 100; i++) {
      h.client.packageWindow.take();
      h.client.send(RelayCommand.DATA, id, new Uint8Array(10));
    }

    h.relays[2]!.originate(RelayCommand.SENDME, 0, body);
    assertClosedByClient(h, DestroyReason.PROTOCOL, why);
    assert(id > 0);
  }
  // A SENDME when nothing awaits acknowledgement would push the window past 1000.
  const early = built();
  early.relays[2]!.originate(RelayCommand.SENDME, 0, encodeSendme(new Uint8Array(20)));
  assertClosedByClient(early, DestroyReason.PROTOCOL, "unexpected");
  // The relay side holds the client to the same rule.
  const r = built();
  r.client.send(RelayCommand.SENDME, 0, new Uint8Array(0));
  assertEquals(r.destroyed.map(([who, reason]) => [who, reason]), [["r3", DestroyReason.PROTOCOL]]);
  assertEquals(r.relays[2]!.state, "closed");
});

Deno.test("RelayCircuitCore allows 8 RELAY_EARLY cells per circuit and none inbound", () => {
  const g = built();
  let refused = -1;
  for (let i = 0; i < 20 && refused < 0; i++) {
    // A DROP for the guard, sent as RELAY_EARLY: recognized there and otherwise harmless.
    g.relays[0]!.fromPrev(CellCommand.RELAY_EARLY, sealedFor(g, 0));
    if (g.destroyed.length) refused = i;
  }
  // The build sent 2 RELAY_EARLY (EXTEND2 ×2) through the guard: 6 more pass, then refused.
  assertEquals(refused, MAX_RELAY_EARLY - 2);
  assertEquals(g.destroyed[0]![1], DestroyReason.PROTOCOL);
  assert(g.destroyed[0]![2].includes("RELAY_EARLY"), g.destroyed[0]![2]);
  // Inbound RELAY_EARLY at a middle hop.
  const m = built();
  m.relays[1]!.fromNext(CellCommand.RELAY_EARLY, new Uint8Array(509));
  assertEquals(m.destroyed.map(([w, r]) => [w, r]), [["r2", DestroyReason.PROTOCOL]]);
});

/** A DROP cell sealed by the client for hop `hop`, captured before it reaches the guard. */
function sealedFor(h: Harness, hop: number): Uint8Array {
  let out: Uint8Array | undefined;
  // Capture the next payload the client sends instead of delivering it.
  const guard = h.relays[0]!;
  const orig = guard.fromPrev.bind(guard);
  guard.fromPrev = (_cmd: number, p: Uint8Array) => {
    out = p;
  };
  h.client.send(RelayCommand.DROP, 0, new Uint8Array(0), hop);
  guard.fromPrev = orig;
  return out!;
}

Deno.test("RelayCircuitCore refuses unexpected cells per state", () => {
  // EXTEND2 outside RELAY_EARLY, EXTEND2 when already extended, CONNECTED travelling outbound.
  for (
    const [hop, command, early, part] of [
      [2, RelayCommand.EXTEND2, false, "outside RELAY_EARLY"],
      [0, RelayCommand.EXTEND2, true, "EXTEND2 while extended"],
      [2, RelayCommand.CONNECTED, false, "travelling outbound"],
      [1, RelayCommand.EXTENDED2, false, "travelling outbound"],
    ] as const
  ) {
    const h = built();
    const body = new Uint8Array(0);
    const guard = h.relays[0]!;
    const orig = guard.fromPrev.bind(guard);
    guard.fromPrev = (_c: number, payload: Uint8Array) =>
      orig(early ? CellCommand.RELAY_EARLY : CellCommand.RELAY, payload);
    h.client.send(command, 0, body, hop);
    guard.fromPrev = orig;
    assertEquals(h.destroyed.length, 1, part);
    assertEquals(h.destroyed[0]![0], `r${hop + 1}`);
    assert(h.destroyed[0]![2].includes(part), `${h.destroyed[0]![2]} lacks ${part}`);
  }
  // CREATED2 from the next hop while not extending.
  const h = built();
  h.relays[2]!.created(encodeCreated2(new Uint8Array(64)));
  assert(h.destroyed[0]![2].includes("CREATED2 while not extending"));
  // A malformed BEGIN is answered with END(TORPROTOCOL) on its stream; the circuit stays.
  const b = built();
  b.client.send(RelayCommand.BEGIN, 9, new TextEncoder().encode("no port\0"));
  assertEquals(b.seen.ended, []);
  assertEquals(b.destroyed, []);
});

Deno.test("checkCreateCircId enforces the initiator's high bit (tor-spec §5.1.1)", () => {
  checkCreateCircId(0x80000001, true);
  checkCreateCircId(0x00000001, false);
  assertThrows(() => checkCreateCircId(0x00000001, true), ProtocolError, "high bit clear");
  assertThrows(() => checkCreateCircId(0x80000001, false), ProtocolError, "high bit set");
  assertThrows(() => checkCreateCircId(0, true), ProtocolError, "id 0");
});

Deno.test("ClientCircuitCore.tick closes a build that outlives its timeout (injected clock)", () => {
  let now = 0;
  const h = harness(3, { now: () => now, buildTimeoutMs: 1000 });
  // Never answer: swallow the CREATE2.
  const stuck = new ClientCircuitCore(
    [{
      id: new Uint8Array(20),
      onionKey: generateRelayKeys().onion.public,
      address: "1.2.3.4",
      port: 1,
    }],
    {
      send: (c, p) => c === CellCommand.DESTROY && h.destroyed.push(["client", p[0]!, ""]),
      built: () => {},
      connected: () => {},
      streamEnded: () => {},
      deliver: () => true,
      streamSendme: () => true,
      closed: (reason, remote, why) => h.closed = { reason, remote, why },
    },
    { now: () => now, buildTimeoutMs: 1000 },
  );
  stuck.start();
  now = 999;
  stuck.tick();
  assertEquals(stuck.state, "creating");
  now = 1000;
  stuck.tick();
  assertEquals(stuck.state, "closed");
  assertEquals(h.closed?.reason, DestroyReason.TIMEOUT);
  assertEquals(h.destroyed, [["client", DestroyReason.TIMEOUT, ""]]);
});

Deno.test("admitCreate2 refuses a CircID in use, a broken binding, a wrong high bit, other handshakes", () => {
  const keys = generateRelayKeys();
  const server = {
    id: identityDigest(keys.identity.public),
    onionKey: keys.onion.public,
    onionSecret: keys.onion.secret,
  };
  const [, skin] = ntorClient1({ id: server.id, onionKey: server.onionKey });
  const ntor = encodeCreate2({ htype: HandshakeType.NTOR, hdata: skin });
  // We accepted the link: the peer opened it, so its CircIDs have the high bit set.
  const shared = { initiator: false, purpose: "shared" as const, boundCircId: 0, carried: 0 };
  const ok = admitCreate2(0x80000001, ntor, { ...shared, inUse: false });
  assert(ok.ok);
  const answer = answerCreate2(ok.create, server);
  assert(answer.ok && answer.reply.length === 64, "ntor answered");
  const refusals = [
    admitCreate2(0x80000001, ntor, { ...shared, inUse: true }),
    admitCreate2(0x00000001, ntor, { ...shared, inUse: false }),
    admitCreate2(0, ntor, { ...shared, inUse: false }),
    admitCreate2(0x80000001, encodeCreate2({ htype: HandshakeType.TAP, hdata: skin }), {
      ...shared,
      inUse: false,
    }),
    admitCreate2(0x80000001, Uint8Array.of(0, 2, 9), { ...shared, inUse: false }),
    admitCreate2(0x80000002, ntor, {
      ...shared,
      purpose: "circuit",
      boundCircId: 0x80000001,
      inUse: false,
    }),
    admitCreate2(0x80000001, ntor, {
      ...shared,
      purpose: "circuit",
      boundCircId: 0x80000001,
      carried: 1,
      inUse: false,
    }),
  ];
  for (const r of refusals) {
    assert(!r.ok, "refused");
    if (!r.ok) assertEquals(r.refuse, DestroyReason.PROTOCOL, r.why);
  }
  assertEquals(perCircuitRefusal({ purpose: "shared", boundCircId: 0 }, 5, 3), undefined);
  // A skin for another relay's key is refused by the handshake step.
  const other = generateRelayKeys();
  const [, wrong] = ntorClient1({
    id: identityDigest(other.identity.public),
    onionKey: other.onion.public,
  });
  const bad = answerCreate2({ htype: HandshakeType.NTOR, hdata: wrong }, server);
  assert(!bad.ok);
});

Deno.test("destroyStep tells every hop but the one the end came from; a received DESTROY goes on as DESTROYED", () => {
  const prev = { chan: "a", circId: 1 }, next = { chan: "b", circId: 2 };
  assertEquals(destroyStep([prev, next], { reason: DestroyReason.INTERNAL }), {
    notify: [prev, next],
    reason: DestroyReason.INTERNAL,
  });
  assertEquals(destroyStep([prev, undefined], { reason: 1 }).notify, [prev]);
  assertEquals(
    destroyStep([prev, next], { reason: DestroyReason.FINISHED, from: "a", received: true }),
    { notify: [next], reason: DestroyReason.DESTROYED },
  );
  assertEquals(
    destroyStep([prev, next], { reason: DestroyReason.CHANNEL_CLOSED, from: "b" }),
    { notify: [prev], reason: DestroyReason.CHANNEL_CLOSED },
  );
});
