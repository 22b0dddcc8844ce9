// The exit and EXTEND2 against hostile clients (issue 24 items 3, 6, 8, 10 and RESOLVE of
// 12): resolve, check, then connect; no one-hop exits, no re-entry, no loops; the Ed25519
// identity checked; BEGIN/END/BEGIN races leave no socket behind.
import { assert, assertEquals } from "./_assert.ts";
import { startNet } from "./_net.ts";
import { RawLink } from "./_hostile.ts";
import { socksConnect } from "./_socks.ts";
import {
  decodeExtend2,
  decodeResolved,
  encodeBegin,
  encodeEnd,
  EndReason,
  LinkSpecType,
  RelayCommand,
} from "../lib/cell/mod.ts";
import { ExitPolicy } from "../lib/relay/exit_policy.ts";
import { exitDecision } from "../lib/relay/exit_connect.ts";

/** A listener that counts connections and whether each was closed by the exit. */
function countingServer(hostname = "127.0.0.1") {
  const l = Deno.listen({ hostname, port: 0 });
  const conns: { conn: Deno.Conn; eof: boolean }[] = [];
  const loop = (async () => {
    for await (const conn of l) {
      const e = { conn, eof: false };
      conns.push(e);
      (async () => {
        const b = new Uint8Array(4096);
        while ((await conn.read(b).catch(() => null)) !== null) { /* drain */ }
        e.eof = true;
      })();
    }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    conns,
    async stop() {
      l.close();
      await loop.catch(() => {});
      for (const c of conns) {
        try {
          c.conn.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("Relay closes the first socket of a BEGIN, END, BEGIN on one stream id while it connects (item 3)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const server = countingServer();
  let raw: RawLink | undefined;
  try {
    const [e1, e2, e3] = net.directory.relays;
    raw = await RawLink.open(e1!);
    const begin = encodeBegin({ host: "127.0.0.1", port: server.port });
    for (let k = 0; k < 10; k++) {
      const circ = await raw.create(e1!);
      await circ.extend(e2!);
      await circ.extend(e3!);
      await raw.sendMany([
        circ.cell(RelayCommand.BEGIN, 1, begin),
        circ.cell(RelayCommand.END, 1, encodeEnd(EndReason.DONE)),
        circ.cell(RelayCommand.BEGIN, 1, begin),
      ]);
      await circ.until(() => circ.got(RelayCommand.CONNECTED, 1).length > 0, "CONNECTED");
      await circ.destroy();
    }
    // Every connection the exit made is closed once its circuit is gone (15 s: a busy box).
    const end = performance.now() + 15_000;
    while (server.conns.some((c) => !c.eof) && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const open = server.conns.filter((c) => !c.eof).length;
    console.log(`item 3: ${server.conns.length} exit connections made, ${open} still open`);
    assertEquals(open, 0, "exit connections orphaned by BEGIN/END/BEGIN");
  } finally {
    raw?.close();
    await server.stop();
    await net.stop();
  }
});

Deno.test("Relay resolves, checks, then connects: other spellings of a forbidden address are never touched (item 6)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  // 127.0.0.2 is outside the exit's allow list (127.0.0.1:*) and private: forbidden.
  const open = countingServer("127.0.0.2");
  const closedPort = (() => {
    const l = Deno.listen({ hostname: "127.0.0.2", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  try {
    const replies: string[] = [];
    for (const host of ["127.2", "0x7f000002", "2130706434", "0177.0.0.2", "127.0.0.2"]) {
      for (const port of [open.port, closedPort]) {
        const r = await socksConnect(net.client.socksPort, host, port).then(
          (c) => (c.close(), "connected"),
          (e) => (e as Error).message,
        );
        replies.push(r);
      }
    }
    console.log(`item 6: SOCKS replies ${JSON.stringify([...new Set(replies)])}`);
    assertEquals(open.conns.length, 0, "the exit connected to a forbidden address");
    // Open and closed forbidden ports answer alike: END EXITPOLICY → SOCKS 2 (not allowed).
    assert(replies.every((r) => r === "socks reply 2"), JSON.stringify(replies));
  } finally {
    await open.stop();
    await net.stop();
  }
});

Deno.test("exitDecision refuses without connecting: one-hop, names of forbidden addresses, re-entry, unresolvable, its own address", async () => {
  const policy = new ExitPolicy(["127.0.0.1:*"]);
  const base = { policy, isRelayPort: (a: string, p: number) => a === "127.0.0.1" && p === 9001 };
  const d = (host: string, port: number, fromRelay = true) =>
    exitDecision(host, port, { ...base, fromRelay });
  assertEquals(await d("127.0.0.1", 80, false), { reason: EndReason.TORPROTOCOL });
  assertEquals(await d("127.2", 80), { reason: EndReason.EXITPOLICY });
  assertEquals(await d("localhost", 80), { reason: EndReason.EXITPOLICY });
  assertEquals(await d("127.0.0.1", 9001), { reason: EndReason.CONNECTREFUSED });
  assertEquals(await d("name.invalid", 80), { reason: EndReason.RESOLVEFAILED });
  assertEquals(await d("127.0.0.1", 80), { address: "127.0.0.1" });
  // Its own (public) address: refused unless allowed by name (item 12).
  const self = (allow: string[], host: string) =>
    exitDecision(host, 80, {
      ...base,
      policy: new ExitPolicy(allow),
      fromRelay: true,
      self: ["198.51.100.7"],
    });
  assertEquals(await self([], "198.51.100.7"), { reason: EndReason.EXITPOLICY });
  assertEquals(await self([], "198.51.100.8"), { address: "198.51.100.8" });
  assertEquals(await self(["198.51.100.7:80"], "198.51.100.7"), { address: "198.51.100.7" });
});

Deno.test("Relay refuses one-hop exits, re-entry into the network and extending to itself or back (item 8)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  const server = countingServer();
  let raw: RawLink | undefined;
  try {
    const [e1, e2, e3] = net.directory.relays;
    raw = await RawLink.open(e3!);
    // One hop: a BEGIN straight to the exit from a client link.
    const one = await raw.create(e3!);
    await one.relay(RelayCommand.BEGIN, 1, encodeBegin({ host: "127.0.0.1", port: server.port }));
    await one.until(() => one.got(RelayCommand.END, 1).length > 0, "END");
    assertEquals(one.got(RelayCommand.END, 1)[0]!.data[0], EndReason.TORPROTOCOL);
    assertEquals(server.conns.length, 0, "a one-hop circuit's BEGIN was served");
    // Re-entry: the exit refuses a relay's OR port (END CONNECTREFUSED → SOCKS 5).
    const reentry = await socksConnect(net.client.socksPort, "127.0.0.1", e1!.orPort).then(
      (c) => (c.close(), "connected"),
      (e) => (e as Error).message,
    );
    assertEquals(reentry, "socks reply 5", "the exit connected back into the network");
    // Loops: r3 asked to extend to itself; r2 (reached from r1) asked to extend back to r1.
    const self = await raw.create(e3!);
    await raw.send(self.extendCell(e3!));
    await self.until(() => self.destroyed !== undefined || self.crypto.hops > 1, "an answer");
    assertEquals(self.crypto.hops, 1, "r3 extended to itself");
    raw.close();
    raw = await RawLink.open(e1!);
    const back = await raw.create(e1!);
    await back.extend(e2!);
    await raw.send(back.extendCell(e1!));
    await back.until(() => back.destroyed !== undefined || back.crypto.hops > 2, "an answer");
    assertEquals(back.crypto.hops, 2, "r2 extended back to r1");
  } finally {
    raw?.close();
    await server.stop();
    await net.stop();
  }
});

Deno.test("decodeExtend2 refuses repeated identity specifiers and Relay refuses a wrong Ed25519 identity (item 10)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  let raw: RawLink | undefined;
  try {
    const [e1, e2] = net.directory.relays;
    raw = await RawLink.open(e1!);
    // Specifier list: IPv4, legacy id, [extra]; rebuilt with an added specifier.
    const withSpec = (body: Uint8Array, type: number, value: Uint8Array) => {
      const out = new Uint8Array(body.length + 2 + value.length);
      out[0] = body[0]! + 1;
      out.set([type, value.length], 1);
      out.set(value, 3);
      out.set(body.subarray(1), 3 + value.length);
      return out;
    };
    const circ = await raw.create(e1!);
    const cell = circ.extendCell(e2!, (b) => {
      const dup = withSpec(b, LinkSpecType.LEGACY_ID, new Uint8Array(20).fill(7));
      let threw = false;
      try {
        decodeExtend2(dup);
      } catch {
        threw = true;
      }
      assert(threw, "a repeated legacy identity was accepted");
      return dup;
    });
    await raw.send(cell);
    await circ.until(() => circ.destroyed !== undefined || circ.crypto.hops > 1, "an answer");
    assertEquals(circ.crypto.hops, 1, "extended with two legacy identities");
    // A wrong Ed25519 identity (another relay's) next to the right legacy id.
    const c2 = await raw.create(e1!);
    const wrongEd = Uint8Array.from(atob(e1!.identity), (ch) => ch.charCodeAt(0));
    await raw.send(c2.extendCell(e2!, (b) => withSpec(b, LinkSpecType.ED25519_ID, wrongEd)));
    await c2.until(
      () => c2.destroyed !== undefined || c2.crypto.hops > 1 || c2.truncated(),
      "an answer",
    );
    assertEquals(c2.crypto.hops, 1, "extended although the Ed25519 identity was not the target's");
  } finally {
    raw?.close();
    await net.stop();
  }
});

Deno.test("Relay answers RESOLVE with RESOLVED (item 12, tor-spec §6.4)", async () => {
  const net = await startNet(3, ["tor", "tor", "tor"], "tor", ["r1", "r2", "r3"]);
  let raw: RawLink | undefined;
  try {
    const [e1, e2, e3] = net.directory.relays;
    raw = await RawLink.open(e1!);
    const circ = await raw.create(e1!);
    await circ.extend(e2!);
    await circ.extend(e3!);
    await circ.relay(RelayCommand.RESOLVE, 7, new TextEncoder().encode("localhost\0"));
    await circ.relay(RelayCommand.RESOLVE, 8, new TextEncoder().encode("name.invalid\0"));
    await circ.until(() => circ.got(RelayCommand.RESOLVED).length === 2, "two RESOLVED");
    const a = decodeResolved(circ.got(RelayCommand.RESOLVED, 7)[0]!.data);
    assertEquals([a[0]!.type, [...a[0]!.value]], [4, [127, 0, 0, 1]]);
    assertEquals(decodeResolved(circ.got(RelayCommand.RESOLVED, 8)[0]!.data)[0]!.type, 0xf1);
  } finally {
    raw?.close();
    await net.stop();
  }
});
