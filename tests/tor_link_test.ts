/**
 * Tor's link handshake (lib/transport/tor_link.ts): our initiator against our responder as a
 * relay and as a client, cells through the ChannelLink methods; bad peers (scripted here
 * from the same codecs) each rejected with a logged reason; and a real C tor relay (Debian's
 * tor in a private network) accepting our AUTHENTICATE and answering CREATE_FAST.
 */

import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import { CELL_LEN, CellCommand, encodeCell } from "../lib/cell/cell.ts";
import {
  decodeAuthChallenge,
  encodeAuthenticate,
  encodeCerts,
  encodeNetinfo,
  encodeVersionsCell,
} from "../lib/cell/link_cells.ts";
import { kdfTor } from "../lib/crypto/kdf.ts";
import { ClientCrypto } from "../lib/crypto/relay_crypto.ts";
import { decodeRelayCell, encodeRelayCell, RelayCommand } from "../lib/cell/relay_cell.ts";
import { encodeBegin, encodeExtend2, HandshakeType } from "../lib/cell/messages.ts";
import {
  generateTorRelayKeys,
  initiatorCerts,
  responderCerts,
  signWithAuthKey,
  tlsCredentials,
  type TorRelayKeys,
  verifyPeerCerts,
} from "../lib/keys/mod.ts";
import { haveTor, startTorTestnet } from "../lib/tor/testnet.ts";
import { tlsAccept, tlsAvailable, tlsConnect, type TlsConnection } from "../lib/transport/tls.ts";
import {
  auth0003Signed,
  type TorLink,
  torLinkAccept,
  torLinkConnect,
  TorLinkError,
  type TorLinkFailure,
} from "../lib/transport/tor_link.ts";
import type { Logger } from "../lib/util/log.ts";
import type { ChannelLink } from "../lib/channel/link.ts";
import { assert, assertEquals, assertStringIncludes, hex, skipUnless, within } from "./_assert.ts";

const ok = tlsAvailable();
const why = "libssl.so.3 through FFI is not available";

const keysA = ok ? generateTorRelayKeys() : undefined as unknown as TorRelayKeys;
const keysB = ok ? generateTorRelayKeys() : undefined as unknown as TorRelayKeys;
const idOf = (k: TorRelayKeys) =>
  verifyPeerCerts(responderCerts(k), {
    role: "responder",
    tlsCertDer: tlsCredentials(k).certDer,
    now: new Date(),
  });

/** A logger that keeps what it is told. */
function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (m: string) => void lines.push(m);
  return { lines, debug: keep, info: keep, warn: keep, error: keep };
}

/** A loopback TCP pair: [connecting side, accepted side]. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const acc = l.accept();
    const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    return [c, await acc as Deno.TcpConn];
  } finally {
    l.close();
  }
}

/** Reads every cell piece until `n` cells have come (pieces are whole cells). */
async function readCells(link: ChannelLink, n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  while (out.length < n) {
    const p = link.tryRead();
    if (p === undefined) {
      if (!(await link.fill())) throw new Error(`end of stream after ${out.length} cells`);
      continue;
    }
    if (p === null) throw new Error(`link closed after ${out.length} cells`);
    assertEquals(p.length % CELL_LEN, 0, "a piece is whole cells");
    for (let i = 0; i < p.length; i += CELL_LEN) out.push(p.slice(i, i + CELL_LEN));
  }
  return out;
}

function someCells(n: number, initiator: boolean): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const payload = new Uint8Array(randomBytes(509));
    const circId = ((initiator ? 0x80000000 : 0) | (i + 1)) >>> 0;
    return encodeCell({ circId, command: CellCommand.RELAY, payload });
  });
}

/** Sends cells in batches of 64 parts (header and payload apart, as a channel does). */
async function sendCells(link: ChannelLink, cells: Uint8Array[]): Promise<void> {
  for (let i = 0; i < cells.length; i += 32) {
    const parts = cells.slice(i, i + 32).flatMap((c) => [c.subarray(0, 5), c.subarray(5)]);
    await link.writev(parts);
  }
}

const sha = (bs: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const b of bs) h.update(b);
  return h.digest("hex");
};

/** Expects `p` to reject with a TorLinkError of `reason` whose message has `part`. */
async function rejectsWith(
  p: Promise<unknown>,
  reason: TorLinkFailure,
  part = "",
): Promise<TorLinkError> {
  try {
    await within(30_000, p, `a ${reason} failure`);
  } catch (e) {
    if (!(e instanceof TorLinkError)) throw new Error(`expected TorLinkError, got ${e}`);
    assertEquals(e.reason, reason, e.message);
    assertStringIncludes(e.message, part);
    return e;
  }
  throw new Error(`expected a ${reason} failure, got a link`);
}

Deno.test({
  name:
    "torLinkConnect and torLinkAccept open a relay link that proves both identities and carries cells both ways byte-exact",
  ignore: skipUnless(ok, why),
  async fn() {
    const [c, s] = await tcpPair();
    const [ini, res] = await within(
      30_000,
      Promise.all([
        torLinkConnect(c, { keys: keysB, expect: { rsaFingerprint: idOf(keysA).rsaFingerprint } }),
        torLinkAccept(s, { keys: keysA }),
      ]),
      "handshake",
    );
    try {
      const l1: ChannelLink = ini, l2: ChannelLink = res; // the channel's interface, exactly
      assertEquals(ini.linkVersion, 5);
      assertEquals(res.linkVersion, 5);
      assert(ini.initiator && !res.initiator);
      assertEquals(ini.peer.role, "relay");
      assertEquals(ini.peer.rsaFingerprint, idOf(keysA).rsaFingerprint);
      assertEquals(ini.peer.ed25519Identity, idOf(keysA).ed25519Identity);
      assertEquals(res.peer.role, "relay");
      assertEquals(res.peer.rsaFingerprint, idOf(keysB).rsaFingerprint);
      assertEquals(res.peer.ed25519Identity, idOf(keysB).ed25519Identity);
      assertEquals(res.peer.netinfo?.otherAddress, "127.0.0.1");
      const ctx = new Uint8Array(32);
      assertEquals(
        ini.exportKeyingMaterial("pctcp", ctx, 32),
        res.exportKeyingMaterial("pctcp", ctx, 32),
      );

      // Cells both ways, with padding and a VPADDING in between that must not come out.
      const up = someCells(1000, true), down = someCells(1000, false);
      const seen: [number, Uint8Array][] = [];
      res.onVariableCell = (cmd, payload) => seen.push([cmd, payload]);
      await ini.writev([
        encodeCell({ circId: 0, command: CellCommand.PADDING, payload: new Uint8Array(0) }),
      ]);
      await ini.sendVariableCell(CellCommand.VPADDING, new TextEncoder().encode("pctcp?"));
      await ini.sendVariableCell(200, Uint8Array.of(1, 2, 3)); // unknown variable command
      const [, , gotUp, gotDown] = await within(
        60_000,
        Promise.all([
          sendCells(l1, up),
          sendCells(l2, down),
          readCells(l2, up.length),
          readCells(l1, down.length),
        ]),
        "cells both ways",
      );
      assertEquals(sha(gotUp), sha(up));
      assertEquals(sha(gotDown), sha(down));
      assertEquals(seen.map(([c]) => c), [CellCommand.VPADDING, 200]);
      assertEquals(new TextDecoder().decode(seen[0]![1]), "pctcp?");
      // A clean close: the other side reads the end.
      l1.close();
      assert(l1.closed);
      for (;;) {
        const p = l2.tryRead();
        if (p === null) break;
        if (p === undefined) await within(10_000, l2.fill(), "end of stream");
      }
    } finally {
      ini.close();
      res.close();
    }
  },
});

Deno.test({
  name:
    "torLinkConnect without keys opens a client link: the responder sees a client, cells flow both ways",
  ignore: skipUnless(ok, why),
  async fn() {
    const [c, s] = await tcpPair();
    const [ini, res] = await within(
      30_000,
      Promise.all([torLinkConnect(c, {}), torLinkAccept(s, { keys: keysA })]),
      "handshake",
    );
    try {
      assertEquals(ini.peer.role, "relay");
      assertEquals(ini.peer.rsaFingerprint, idOf(keysA).rsaFingerprint);
      assertEquals(res.peer.role, "client");
      assertEquals(res.peer.rsaFingerprint, undefined);
      assertEquals(res.peer.netinfo?.time, 0);
      const up = someCells(50, true), down = someCells(50, false);
      const [, , a, b] = await within(
        30_000,
        Promise.all([
          sendCells(ini, up),
          sendCells(res, down),
          readCells(res, 50),
          readCells(ini, 50),
        ]),
        "cells",
      );
      assertEquals(sha(a), sha(up));
      assertEquals(sha(b), sha(down));
      // A variable cell larger than the idle read buffer, between cells: it arrives whole.
      const big = new Uint8Array(randomBytes(30_000));
      const seen: Uint8Array[] = [];
      ini.onVariableCell = (_cmd, payload) => void seen.push(payload);
      const more = someCells(3, false);
      await res.writev([more[0]!]);
      await res.sendVariableCell(CellCommand.VPADDING, big);
      await res.writev([more[1]!, more[2]!]);
      assertEquals(sha(await within(30_000, readCells(ini, 3), "cells around it")), sha(more));
      assertEquals(seen.length, 1);
      assertEquals(sha(seen), sha([big]));
    } finally {
      ini.close();
      res.close();
    }
  },
});

Deno.test({
  name: "torLinkConnect refuses a responder that is not the expected relay, and logs why",
  ignore: skipUnless(ok, why),
  async fn() {
    const [c, s] = await tcpPair();
    const log = capture();
    const acc = torLinkAccept(s, { keys: keysA });
    await rejectsWith(
      torLinkConnect(c, {
        keys: keysB,
        expect: { rsaFingerprint: idOf(keysB).rsaFingerprint },
        log,
      }),
      "identity",
      idOf(keysA).rsaFingerprint,
    );
    assertStringIncludes(log.lines.join("\n"), "failed (identity)");
    // The responder sees the connection go: a failure of its own, not a hang.
    await rejectsWith(acc, "closed");
    const [c2, s2] = await tcpPair();
    const acc2 = torLinkAccept(s2, { keys: keysA });
    await rejectsWith(
      torLinkConnect(c2, { expect: { ed25519Identity: idOf(keysB).ed25519Identity } }),
      "identity",
      "Ed25519",
    );
    await rejectsWith(acc2, "closed");
  },
});

Deno.test({
  name: "torLinkConnect refuses expired certificates and a CERTS cell with a bad signature",
  ignore: skipUnless(ok, why),
  async fn() {
    // Expired: the responder's certificates seen 40 days later (the link certs last 2 days).
    const [c, s] = await tcpPair();
    const acc = torLinkAccept(s, { keys: keysA });
    await rejectsWith(
      torLinkConnect(c, { now: new Date(Date.now() + 40 * 86_400_000) }),
      "certs",
      "expired",
    );
    await rejectsWith(acc, "closed");
    // Our own certificates lapsed: said as such, not blamed on the peer.
    const [c1, s1] = await tcpPair();
    await rejectsWith(
      torLinkAccept(s1, { keys: generateTorRelayKeys(new Date(Date.now() - 40 * 86_400_000)) }),
      "certs",
      "our own certificates",
    );
    c1.close();
    // A bad signature: the last byte of the type-4 certificate flipped by a scripted responder.
    const [c2, s2] = await tcpPair();
    const peer = scriptedResponder(s2, keysA, {
      certs: (certs) =>
        certs.map((x) => {
          if (x.type !== 4) return x;
          const body = x.body.slice();
          body[body.length - 1]! ^= 1;
          return { type: 4, body };
        }),
    });
    const e = await rejectsWith(torLinkConnect(c2, { keys: keysB }), "certs");
    assertStringIncludes(e.message, "signature");
    await peer;
  },
});

/** A responder written from the codecs, that can be told to misbehave. */
async function scriptedResponder(
  conn: Deno.Conn,
  keys: TorRelayKeys,
  bad: {
    certs?: (c: { type: number; body: Uint8Array }[]) => { type: number; body: Uint8Array }[];
    raw?: Uint8Array;
    closeAfterRaw?: boolean;
  },
): Promise<void> {
  let tls: TlsConnection | undefined;
  try {
    tls = await tlsAccept(conn, tlsCredentials(keys));
    const r = new CellReader(tls);
    await r.versions();
    tls.queue(encodeVersionsCell([4, 5]));
    if (bad.raw) {
      tls.queue(bad.raw);
      await tls.flush();
      if (bad.closeAfterRaw) return;
    } else {
      const certs = bad.certs ? bad.certs(responderCerts(keys)) : responderCerts(keys);
      tls.queue(encodeCell({ circId: 0, command: CellCommand.CERTS, payload: encodeCerts(certs) }));
      tls.queue(encodeCell({
        circId: 0,
        command: CellCommand.AUTH_CHALLENGE,
        payload: Uint8Array.of(...new Uint8Array(32), 0, 1, 0, 3),
      }));
      await tls.flush();
    }
    // Wait for the initiator to give up (it closes the connection).
    while (await tls.read(new Uint8Array(4096)) !== null) { /* drain */ }
  } catch {
    /* the initiator hung up */
  } finally {
    tls?.close();
    if (!tls) conn.close();
  }
}

/** Cells read from a TLS connection (test side). */
class CellReader {
  #tls: TlsConnection;
  #buf = new Uint8Array(0);
  constructor(tls: TlsConnection) {
    this.#tls = tls;
  }
  async #need(n: number): Promise<void> {
    while (this.#buf.length < n) {
      const b = new Uint8Array(65536);
      const got = await this.#tls.read(b);
      if (got === null) throw new Error("closed");
      const next = new Uint8Array(this.#buf.length + got);
      next.set(this.#buf), next.set(b.subarray(0, got), this.#buf.length);
      this.#buf = next;
    }
  }
  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
  async versions(): Promise<Uint8Array> {
    await this.#need(5);
    await this.#need(5 + ((this.#buf[3]! << 8) | this.#buf[4]!));
    return this.#take(5 + ((this.#buf[3]! << 8) | this.#buf[4]!));
  }
  async cell(): Promise<{ command: number; payload: Uint8Array; raw: Uint8Array }> {
    await this.#need(5);
    const command = this.#buf[4]!;
    if (command === 7 || command >= 128) {
      await this.#need(7);
      const len = (this.#buf[5]! << 8) | this.#buf[6]!;
      await this.#need(7 + len);
      const raw = this.#take(7 + len);
      return { command, payload: raw.subarray(7), raw };
    }
    await this.#need(CELL_LEN);
    const raw = this.#take(CELL_LEN);
    return { command, payload: raw.subarray(5), raw };
  }
}

/**
 * An initiator relay written from the codecs, whose AUTHENTICATE can be altered: `exporter`
 * replaces the TLS exporter (a wrong TLSSECRETS), `sign` the signature.
 */
async function scriptedInitiator(
  conn: Deno.Conn,
  keys: TorRelayKeys,
  bad: { exporter?: () => Uint8Array; signature?: (sig: Uint8Array) => Uint8Array },
): Promise<void> {
  const tls = await tlsConnect(conn);
  try {
    const r = new CellReader(tls);
    const versions = encodeVersionsCell([4, 5]);
    tls.queue(versions);
    const got: Uint8Array[] = [await r.versions()];
    let challenge = false;
    while (!challenge) {
      const c = await r.cell();
      got.push(c.raw);
      if (c.command === CellCommand.AUTH_CHALLENGE) {
        challenge = decodeAuthChallenge(c.payload).methods.includes(3);
      }
    }
    const certsCell = encodeCell({
      circId: 0,
      command: CellCommand.CERTS,
      payload: encodeCerts(initiatorCerts(keys)),
    });
    const signed = auth0003Signed({
      initiator: idOf(keys),
      responder: idOf(keysA),
      responderLog: new Uint8Array(Buffer.concat(got)),
      initiatorLog: new Uint8Array(Buffer.concat([versions, certsCell])),
      responderTlsCertDer: tls.peerCertificateDer()!,
      tls: bad.exporter ? { exportKeyingMaterial: bad.exporter } : tls,
    });
    let sig = signWithAuthKey(keys, signed);
    if (bad.signature) sig = bad.signature(sig);
    const auth = encodeCell({
      circId: 0,
      command: CellCommand.AUTHENTICATE,
      payload: encodeAuthenticate({
        authType: 3,
        authentication: new Uint8Array([...signed, ...sig]),
      }),
    });
    const netinfo = encodeCell({
      circId: 0,
      command: CellCommand.NETINFO,
      payload: encodeNetinfo({ time: 1, otherAddress: "127.0.0.1", myAddresses: [] }),
    });
    tls.queue(new Uint8Array([...certsCell, ...auth, ...netinfo]));
    await tls.flush();
    while (await tls.read(new Uint8Array(4096)) !== null) { /* until the responder hangs up */ }
  } catch {
    /* hung up */
  } finally {
    tls.close();
  }
}

Deno.test({
  name:
    "torLinkAccept refuses an AUTHENTICATE with a wrong TLSSECRETS or a bad signature, and logs why",
  ignore: skipUnless(ok, why),
  async fn() {
    // The scripted initiator is right when nothing is altered (so the failures below are its
    // alterations, not its own mistakes).
    {
      const [c, s] = await tcpPair();
      const acc = torLinkAccept(s, { keys: keysA });
      const peer = scriptedInitiator(c, keysB, {});
      const link = await within(30_000, acc, "an honest scripted initiator");
      assertEquals(link.peer.rsaFingerprint, idOf(keysB).rsaFingerprint);
      link.close();
      await peer;
    }
    for (
      const [bad, part] of [
        [{ exporter: () => new Uint8Array(randomBytes(32)) }, "TLSSECRETS"],
        [{ signature: (s: Uint8Array) => s.map((x, i) => (i === 10 ? x ^ 1 : x)) }, "signature"],
      ] as const
    ) {
      const [c, s] = await tcpPair();
      const log = capture();
      const acc = torLinkAccept(s, { keys: keysA, log });
      const peer = scriptedInitiator(c, keysB, bad);
      await rejectsWith(acc, "authenticate", part);
      assertStringIncludes(log.lines.join("\n"), `failed (authenticate): AUTHENTICATE ${part}`);
      await within(10_000, peer, "the initiator sees the close");
    }
  },
});

Deno.test({
  name: "torLinkConnect refuses a truncated and an oversized handshake cell",
  ignore: skipUnless(ok, why),
  async fn() {
    const certs = encodeCerts(responderCerts(keysA));
    // Truncated inside: a CERTS cell whose length is right but whose last certificate is cut.
    const cut = certs.subarray(0, certs.length - 10);
    const cases: [Uint8Array, boolean, TorLinkFailure, string][] = [
      [
        encodeCell({ circId: 0, command: CellCommand.CERTS, payload: cut }),
        false,
        "protocol",
        "truncated",
      ],
      // Truncated on the wire: half a CERTS cell, then the connection closes.
      [
        encodeCell({ circId: 0, command: CellCommand.CERTS, payload: certs }).subarray(0, 300),
        true,
        "closed",
        "in the middle of",
      ],
      // Oversized: a header announcing 60 000 bytes (refused before they come).
      [Uint8Array.of(0, 0, 0, 0, CellCommand.CERTS, 0xea, 0x60), false, "oversized", "too long"],
    ];
    for (const [raw, closeAfterRaw, reason, part] of cases) {
      const [c, s] = await tcpPair();
      const log = capture();
      const peer = scriptedResponder(s, keysA, { raw, closeAfterRaw });
      await rejectsWith(torLinkConnect(c, { keys: keysB, log }), reason, part);
      assertStringIncludes(log.lines.join("\n"), `failed (${reason})`);
      await within(10_000, peer, "scripted responder done");
    }
  },
});

Deno.test({
  name: "torLinkConnect and torLinkAccept time out a stalled handshake and close the connection",
  ignore: skipUnless(ok, why),
  async fn() {
    // A responder that finishes TLS and then says nothing.
    const [c, s] = await tcpPair();
    const silent = tlsAccept(s, tlsCredentials(keysA));
    const log = capture();
    await rejectsWith(torLinkConnect(c, { keys: keysB, timeoutMs: 500, log }), "timeout");
    assertStringIncludes(log.lines.join("\n"), "failed (timeout)");
    const t = await silent;
    // The initiator's VERSIONS came, then the end (close_notify and FIN).
    let total = 0;
    for (let n; (n = await within(10_000, t.read(new Uint8Array(100)), "the close")) !== null;) {
      total += n;
    }
    assertEquals(total, 9, "one VERSIONS cell (4, 5) with a 2-byte CircID");
    t.close();
    // An initiator that connects and sends nothing.
    const [c2, s2] = await tcpPair();
    await rejectsWith(torLinkAccept(s2, { keys: keysA, timeoutMs: 500 }), "timeout");
    assertEquals(await within(10_000, c2.read(new Uint8Array(100)), "the close"), null);
    c2.close();
  },
});

const torOk = ok && await haveTor();

Deno.test({
  name:
    "torLinkConnect as a relay is accepted by a C tor relay (CREATE_FAST answered), and torLinkAccept accepts that relay's own link to us (EXTEND2)",
  ignore: skipUnless(torOk, "Debian's tor or libssl through FFI is not available"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pctcp-torlink-" });
    const net = await startTorTestnet({ dir: `${dir}/net`, relays: 4 });
    let link: TorLink | undefined, back: TorLink | undefined;
    try {
      const relay = net.relays[0]!;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.orPort });
      const log = capture();
      link = await torLinkConnect(conn, {
        keys: keysB,
        expect: { rsaFingerprint: relay.fingerprint },
        log,
      });
      assertEquals(link.peer.rsaFingerprint, relay.fingerprint);
      assert(link.linkVersion === 5 || link.linkVersion === 4, `link ${link.linkVersion}`);
      // C tor read our CERTS, AUTHENTICATE and NETINFO: it answers a CREATE_FAST on the link
      // (tor-spec §5.1.1: KH = KDF-TOR(X | Y)[0..20) proves it computed the keys with our X).
      const x = new Uint8Array(randomBytes(20));
      const circId = 0x80000001;
      await link.writev([encodeCell({ circId, command: CellCommand.CREATE_FAST, payload: x })]);
      const [reply] = await within(30_000, readCells(link, 1), "CREATED_FAST");
      const dv = new DataView(reply!.buffer, reply!.byteOffset);
      assertEquals(dv.getUint32(0), circId);
      assertEquals(reply![4], CellCommand.CREATED_FAST, `command ${reply![4]}`);
      const y = reply!.subarray(5, 25), kh = reply!.subarray(25, 45);
      assertEquals(kh, kdfTor(new Uint8Array([...x, ...y]), 20));

      // C tor as initiator relay towards our responder: an EXTEND2 on that circuit to our
      // listener makes the C relay open an authenticated link to us (its CERTS 2 4 6 7 and
      // AUTHENTICATE checked by torLinkAccept), checking our CERTS against the RSA and
      // Ed25519 ids we name, and then send the CREATE2 it was given.
      const crypt = new ClientCrypto();
      crypt.addHop(kdfTor(new Uint8Array([...x, ...y]), 92).subarray(20, 92));
      const ours = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const accepted = ours.accept().then((c) => torLinkAccept(c, { keys: keysA, log }));
        const hdata = new Uint8Array(randomBytes(84));
        const payload = encodeRelayCell({
          command: RelayCommand.EXTEND2,
          streamId: 0,
          data: encodeExtend2({
            address: "127.0.0.1",
            port: (ours.addr as Deno.NetAddr).port,
            id: hex(idOf(keysA).rsaFingerprint),
            ed25519: idOf(keysA).ed25519Identity,
            create: { htype: HandshakeType.NTOR, hdata },
          }),
        });
        crypt.encrypt(payload, 0);
        await link.writev([encodeCell({ circId, command: CellCommand.RELAY_EARLY, payload })]);
        back = await within(60_000, accepted, "C tor's link to our responder");
        assertEquals(back.peer.role, "relay");
        assertEquals(back.peer.rsaFingerprint, relay.fingerprint);
        const [create] = await within(30_000, readCells(back, 1), "the forwarded CREATE2");
        assertEquals(create![4], CellCommand.CREATE2, `command ${create![4]}`);
        assert((create![0]! & 0x80) !== 0, "the C relay, as initiator, sets the CircID's high bit");
        assertEquals(create!.subarray(5, 9), Uint8Array.of(0, 2, 0, 84));
        assertEquals(create!.subarray(9, 93), hdata);
      } finally {
        ours.close();
      }
      assertEquals(log.lines, [], "no handshake failure logged");
      // The relay's log has no complaint about our handshake.
      const notice = await Deno.readTextFile(`${dir}/net/${relay.nickname}/notice.log`).catch(() =>
        ""
      );
      assert(!/AUTHENTICATE|CERTS cell|Bad authenticate/i.test(notice), notice.slice(-2000));
    } finally {
      link?.close();
      back?.close();
      await net.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * One stream through a one-hop circuit on a C tor exit: CREATE_FAST, BEGIN, and the first
 * relay cell back (decrypted), as [relay command, END reason or 0].
 */
async function oneHopBegin(
  orPort: number,
  fingerprint: string,
  keys: TorRelayKeys | undefined,
  target: string,
): Promise<[number, number]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: orPort });
  const link = await torLinkConnect(conn, {
    ...(keys ? { keys } : {}),
    expect: { rsaFingerprint: fingerprint },
  });
  try {
    const x = new Uint8Array(randomBytes(20));
    const circId = 0x80000001;
    await link.writev([encodeCell({ circId, command: CellCommand.CREATE_FAST, payload: x })]);
    const [reply] = await within(30_000, readCells(link, 1), "CREATED_FAST");
    assertEquals(reply![4], CellCommand.CREATED_FAST, `command ${reply![4]}`);
    const y = reply!.subarray(5, 25);
    const crypt = new ClientCrypto();
    crypt.addHop(kdfTor(new Uint8Array([...x, ...y]), 92).subarray(20, 92));
    const payload = encodeRelayCell({
      command: RelayCommand.BEGIN,
      streamId: 1,
      data: encodeBegin({ host: "127.0.0.1", port: Number(target) }),
    });
    crypt.encrypt(payload, 0);
    await link.writev([encodeCell({ circId, command: CellCommand.RELAY, payload })]);
    for (;;) {
      const [cell] = await within(30_000, readCells(link, 1), "the exit's answer to BEGIN");
      if (cell![4] !== CellCommand.RELAY) continue; // padding and the like
      const body = cell!.slice(5);
      assertEquals(crypt.decrypt(body), 0, "the exit's answer is recognized");
      const r = decodeRelayCell(body);
      return [r.command, r.command === RelayCommand.END ? r.data[0] ?? 0 : 0];
    }
  } finally {
    link.close();
  }
}

Deno.test({
  name:
    "a C tor exit refuses streams from a client link (END TORPROTOCOL) and from an unlisted relay (END MISC): our link is a client's or a relay's as we say",
  ignore: skipUnless(torOk, "Debian's tor or libssl through FFI is not available"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pctcp-oracle-" });
    const net = await startTorTestnet({ dir: `${dir}/net`, relays: 4 });
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = String((server.addr as Deno.NetAddr).port);
    const serving = (async () => {
      for await (const c of server) c.close();
    })();
    try {
      const exit = net.relays[1]!;
      // connection_edge.c: "Attempt by %s to open a stream on first hop of circuit" → 13.
      assertEquals(
        await oneHopBegin(exit.orPort, exit.fingerprint, undefined, port),
        [RelayCommand.END, 13],
      );
      // connection_edge.c: an authenticated relay the consensus does not list ("open a stream
      // from unknown relay", refuseunknownexits) → END MISC (1).
      assertEquals(
        await oneHopBegin(exit.orPort, exit.fingerprint, keysB, port),
        [RelayCommand.END, 1],
      );
      // The third step of the oracle (a listed relay gets CONNECTED) is tests/ctor_network_test.ts:
      // C guard → ours → C exit carries 1 MiB.
    } finally {
      server.close();
      await serving.catch(() => {});
      await net.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
