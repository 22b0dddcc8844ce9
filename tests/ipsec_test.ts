import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { childSaCovers } from "../lib/transport/ipsec.ts";
import { connectionsTo, startNet } from "./_net.ts";

// The shape of `swanctl --list-sas` (strongSwan 5.9): an IKE_SA, then its CHILD_SAs.
const LIST_SAS = `pctcp-relay2: #1, ESTABLISHED, IKEv2, 1c4b7ab0c0e1f2a3_i* 9d8e7f6a5b4c3d2e_r
  local  'relay1' @ 10.77.0.1[4500]
  remote 'relay2' @ 10.77.0.2[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519
  established 12s ago, rekeying in 13972s
  pctcp: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 12s ago, rekeying in 3342s, expires in 3948s
    in  c2a3b4d5,  10240 bytes,    40 packets,     1s ago
    out c9f8e7d6,  20480 bytes,    41 packets,     1s ago
    local  10.77.0.1/32
    remote 10.77.0.2/32
pctcp-relay3: #2, CONNECTING, IKEv2, 2c4b7ab0c0e1f2a3_i* 0000000000000000_r
  local  'relay1' @ 10.77.0.1[500]
  remote 'relay3' @ 10.77.0.3[500]
`;

Deno.test("childSaCovers needs an INSTALLED CHILD_SA whose remote selector covers the peer", () => {
  assert(childSaCovers(LIST_SAS, "10.77.0.2"));
  assert(!childSaCovers(LIST_SAS, "10.77.0.3"), "an IKE_SA being set up covers nothing");
  assert(!childSaCovers(LIST_SAS.replace("INSTALLED", "REKEYED"), "10.77.0.2"));
  // A selector covering the address under an SA with another peer is not that peer's SA.
  const wide = LIST_SAS.replace("remote 10.77.0.2/32", "remote 10.77.0.0/24");
  assert(childSaCovers(wide, "10.77.0.2"));
  assert(!childSaCovers(wide, "10.77.0.9"), "an SA with 10.77.0.2 vouched for 10.77.0.9");
  assert(!childSaCovers(LIST_SAS, "10.77.0.2", "relay9"), "another identity");
  assert(!childSaCovers("", "10.77.0.2"));
});

Deno.test("an IPsec-required relay refuses circuits to a peer no SA covers, and never opens a clear connection", async () => {
  let saUp = false;
  // No spare links opened ahead, so the connections counted are exactly the circuits'.
  const net = await startNet(3, ["pctcp", "pctcp", "pctcp"], "tor", ["r1", "r2", "r3"], {
    pctcp: { security: "ipsec", ipsecCheck: () => saUp, preopen: false },
  });
  const client = net.client;
  try {
    await assertRejects(() => client.buildCircuit("x"), Error, "truncated");
    assertEquals(
      await connectionsTo(net.relays[1]!.port),
      0,
      "nothing may reach the peer without IPsec",
    );
    saUp = true;
    const c = await client.buildCircuit("y");
    assert(!c.closed);
    assertEquals(await connectionsTo(net.relays[1]!.port), 1);
  } finally {
    await net.stop();
  }
});

Deno.test("under IPsec no spare per-circuit link is opened once the SA covering the peer is gone", async () => {
  // The SA is up for the circuit's own link to r2 — r1 checks before opening it, r2 before
  // accepting it unencrypted — and gone right after: the spare r1 opens ahead of the next
  // circuit must not reach r2 in the clear.
  let checks = 0;
  // Every relay's warnings: a link a relay refused (e.g. plaintext with no SA) is one.
  const warnings: string[] = [];
  const note = (m: string) => warnings.push(m);
  const net = await startNet(2, ["pctcp", "pctcp"], "tor", ["r1", "r2"], {
    pctcp: { security: "ipsec", ipsecCheck: () => ++checks <= 2 },
    log: { debug() {}, info() {}, warn: note, error: note },
  });
  try {
    const c = await net.client.buildCircuit("y");
    assert(!c.closed);
    // Past the moment a spare is opened (on CREATED2, or 200 ms after at the latest).
    await new Promise((r) => setTimeout(r, 400));
    assertEquals(await connectionsTo(net.relays[1]!.port), 1, "the circuit's own link only");
    assertEquals(warnings, [], "no link reached r2 to be refused there");
    assert(checks > 2, `the spare was not checked against IPsec (${checks} checks)`);
  } finally {
    await net.stop();
  }
});
