import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  advertisedTransports,
  ChannelPool,
  createTransport,
  launchArgs,
  NoSuchTransportError,
  PctcpPolicy,
  PctcpTransport,
  SharedTransport,
  TRANSPORT_NAMES,
  transportFlags,
  transportOptionsFromFlags,
} from "../lib/transport/mod.ts";
import { ImuxTransport } from "../lib/transport/imux.ts";

function pool(): ChannelPool {
  return new ChannelPool({ channel: { onCell() {} } });
}

Deno.test("TRANSPORT_NAMES lists the registry's transports, baseline first", () => {
  assertEquals(TRANSPORT_NAMES, ["tor", "pctcp", "imux"]);
  assertEquals(advertisedTransports("tor"), ["tor"]);
  assertEquals(advertisedTransports("pctcp"), ["tor", "pctcp"]);
});

Deno.test("createTransport makes each transport by name and throws NoSuchTransportError for others", async () => {
  const p = pool();
  assert(createTransport("tor", p) instanceof SharedTransport);
  const t = createTransport("pctcp", p, { pctcp: { preopen: false }, role: "client" });
  assert(t instanceof PctcpTransport);
  assert(createTransport("imux", p) instanceof ImuxTransport);
  const e = assertThrows(() => createTransport("torchestra", p), NoSuchTransportError);
  assertEquals((e as NoSuchTransportError).transport, "torchestra");
  assert(e.message.includes("known: tor, pctcp, imux"), e.message);
  // Names from the prototype are no transports either.
  assertThrows(() => createTransport("toString", p), NoSuchTransportError);
  await p.closeAll();
});

Deno.test("transportFlags gives each role the flags it takes", () => {
  const relay = transportFlags("relay").map((f) => f.flags.split(" ")[0]);
  const client = transportFlags("client").map((f) => f.flags.split(" ")[0]);
  assertEquals(relay, [
    "--pctcp-security",
    "--insecure-lab",
    "--swanctl-uri",
    "--pctcp-max-per-peer",
    "--pctcp-max-total",
    "--imux-max-per-peer",
    "--imux-max-total",
  ]);
  assertEquals(client, [
    "--pctcp-max-per-peer",
    "--pctcp-max-total",
    "--imux-max-per-peer",
    "--imux-max-total",
  ]);
});

Deno.test("transportOptionsFromFlags nests a transport's flags under its name", () => {
  assertEquals(transportOptionsFromFlags("tor", { pctcpMaxTotal: 9 }, "relay"), {
    transport: "tor",
  });
  assertEquals(
    transportOptionsFromFlags("pctcp", { pctcpMaxPerPeer: 3, pctcpMaxTotal: 9 }, "client"),
    { transport: "pctcp", pctcp: { caps: { perPeer: 3, total: 9 } } },
  );
  const o = transportOptionsFromFlags("pctcp", {
    pctcpSecurity: "ipsec",
    swanctlUri: "unix:///nonexistent.vici",
  }, "relay");
  assertEquals(o.pctcp?.security, "ipsec");
  assertEquals(typeof o.pctcp?.ipsecCheck, "function");
  assertThrows(
    () => transportOptionsFromFlags("pctcp", { pctcpSecurity: "none" }, "relay"),
    TypeError,
    "--insecure-lab",
  );
  assertEquals(
    transportOptionsFromFlags("pctcp", { pctcpSecurity: "none", insecureLab: true }, "relay")
      .pctcp?.security,
    "none",
  );
});

Deno.test("launchArgs gives a relay or client its transport and flags", () => {
  const caps = { perPeer: 4, total: 8 };
  assertEquals(launchArgs("tor", { role: "relay", caps, insecureLab: true }), [
    "--transport",
    "tor",
  ]);
  assertEquals(launchArgs("pctcp", { role: "client", caps, ipsecVici: "/v" }), [
    "--transport",
    "pctcp",
    "--pctcp-max-per-peer",
    "4",
    "--pctcp-max-total",
    "8",
  ]);
  assertEquals(launchArgs("pctcp", { role: "relay", ipsecVici: "/run/v", insecureLab: true }), [
    "--transport",
    "pctcp",
    "--pctcp-security",
    "ipsec",
    "--swanctl-uri",
    "unix:///run/v",
  ]);
  assertEquals(launchArgs("pctcp", { role: "relay", insecureLab: true }).slice(2), [
    "--pctcp-security",
    "none",
    "--insecure-lab",
  ]);
  assertThrows(() => launchArgs("torchestra", { role: "relay" }), NoSuchTransportError);
});

Deno.test("PctcpPolicy allows plaintext only under IPsec that covers the peer now, or lab mode", async () => {
  let up = false;
  const ipsec = new PctcpPolicy({ security: "ipsec", ipsecCheck: (a) => up && a === "10.0.0.2" });
  assertEquals([await ipsec.covers("10.0.0.2"), await ipsec.allowPlaintext("10.0.0.2")], [
    false,
    false,
  ]);
  up = true;
  assertEquals([await ipsec.covers("10.0.0.2"), await ipsec.allowPlaintext("10.0.0.2")], [
    true,
    true,
  ]);
  assertEquals(await ipsec.allowPlaintext("10.0.0.3"), false);
  assert(!ipsec.encrypt);
  const tls = new PctcpPolicy();
  assertEquals([tls.encrypt, await tls.covers("x"), await tls.allowPlaintext("x")], [
    true,
    true,
    false,
  ]);
  assertEquals(await new PctcpPolicy({ security: "none" }).allowPlaintext("x"), true);
  // A check that throws is no SA (IPsec fails open, so the policy fails closed).
  const broken = new PctcpPolicy({
    security: "ipsec",
    ipsecCheck: () => Promise.reject(new Error("vici gone")),
  });
  assertEquals(await broken.covers("10.0.0.2"), false);
  // No check at all under "ipsec": nothing is covered.
  assertEquals(await new PctcpPolicy({ security: "ipsec" }).covers("10.0.0.2"), false);
});
