// A C tor network on emulated hosts with two of ours (issue 22 item 6, issue 23 item 1): every
// C tor relay, ours1, ours2, the server and the C tor client in a namespace of its own over the
// user-space emulator (10 ms one-way), IPsec between the hosts of ours only. A C tor client's
// circuit C guard → ours1 → ours2 → C exit carries 256 KiB byte-exact on a per-circuit
// connection between ours1 and ours2 (inside IPsec: nft saw only IKE/ESP between them), and
// `network down` leaves no namespace and no process. Needs root, tor, strongSwan, nftables.
import { assert, assertEquals, skipUnless } from "./_assert.ts";
import { haveTor } from "../lib/tor/testnet.ts";
import { probeNetns } from "../lib/network/netns.ts";
import { haveIpsecTools, nftCounters } from "../lib/network/ipsec_hosts.ts";
import { isAlive } from "../lib/network/launcher.ts";
import { type CtorNetworkState, pinnedFetch } from "../lib/tor/mixed_network.ts";
import { pctcp } from "./_cli.ts";
import { PinnedCircuits } from "../lib/tor/pinned.ts";
import { timedFetch } from "../lib/measure/fetch.ts";

const ready = Deno.uid() === 0 && await haveTor() && (await probeNetns()).netns &&
  await haveIpsecTools();

interface PeerStat {
  fingerprint?: string;
  circuitConnections: number;
  circuitLinksOpened?: number;
}

async function namespacesOf(tag: string): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(`${tag}-`));
}

/** `pctcp ARGS`, killed after `ms` (what it started is in state.json for `down`). */
async function pctcpWithin(ms: number, ...args: string[]) {
  const main = new URL("../cli/main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name:
    "network up --ctor --netns --ipsec carries a C tor client's circuit over PCTCP between two of ours on emulated hosts, and down removes everything",
  ignore: skipUnless(
    ready,
    "needs root, network namespaces, Debian's tor, strongSwan and nftables",
  ),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t0 = Date.now();
    const dir = await Deno.makeTempDir({ prefix: "pctcp-ctornetns-" });
    let tag = "";
    let pids: { name: string; pid: number }[] = [];
    try {
      const up = await pctcpWithin(
        200_000,
        "network",
        "up",
        "--ctor",
        "--ours",
        "2",
        "--transport",
        "pctcp",
        "--netns",
        "--latency",
        "10ms",
        "--ipsec",
        "--dir",
        dir,
        "--json",
      );
      const partial = JSON.parse(await Deno.readTextFile(`${dir}/state.json`).catch(() => "{}"));
      tag = partial.netns?.tag ?? "";
      pids = partial.processes ?? [];
      assertEquals(up.code, 0, up.stderr.split("\n").slice(-15).join("\n"));
      const s = JSON.parse(up.stdout.trim().split("\n").at(-1)!) as CtorNetworkState;
      tag = s.netns!.tag;
      pids = s.processes;
      const ctor = s.relays.filter((r) => r.impl === "ctor");
      const [ours1, ours2] = s.relays.filter((r) => r.impl === "pctcp");
      assert(ours1 && ours2 && ctor.length === 4, JSON.stringify(s.relays));
      // Every node on a host of its own: distinct 10.77.x addresses, ours on theirs.
      const hostOf = (n: string) => s.netns!.hosts.find((h) => h.name === n)!;
      assertEquals(ours1.address, hostOf("ours1").address);
      assertEquals(ours2.address, hostOf("ours2").address);
      assertEquals(new Set(s.relays.map((r) => r.address)).size, 6);
      assert(s.socks.startsWith(hostOf("client").address), s.socks);
      assertEquals(s.emulation?.engine, "userspace");
      assert(s.processes.some((p) => p.name === "charon-ours1"), "a charon on ours1's host");
      assert(!s.processes.some((p) => p.name.startsWith("charon-relay")), "no IPsec for C tor");
      // Our relays publish their host's address: the C client's consensus lists it.
      const st = await pctcp("network", "status", "--dir", dir, "--json");
      assertEquals(st.code, 0, st.stderr);
      assertEquals(JSON.parse(st.stdout).broken, []);

      // C guard → ours1 → ours2 → C exit, 256 KiB byte-exact (pinnedFetch checks the digest).
      const path = [
        ctor[0]!.fingerprint,
        ours1.fingerprint,
        ours2.fingerprint,
        ctor[1]!.fingerprint,
      ];
      const peers = async () => {
        await new Promise((res) => setTimeout(res, 1500)); // stats.json is rewritten every second
        return JSON.parse(await Deno.readTextFile(`${dir}/ours1/stats.json`)).peers as PeerStat[];
      };
      const opened = (ps: PeerStat[]) =>
        ps.find((p) => p.fingerprint === ours2.fingerprint)?.circuitLinksOpened ?? 0;
      const before = opened(await peers());
      const r = await pinnedFetch(s, path, "256KiB");
      assertEquals(r.bytes, 256 << 10);
      const after = await peers();
      const toOurs2 = after.find((p) => p.fingerprint === ours2.fingerprint);
      assert(toOurs2, `ours1 has no peer entry for ours2: ${JSON.stringify(after)}`);
      assert(
        opened(after) - before >= 1,
        `no per-circuit connection ours1 → ours2 for the circuit: ${JSON.stringify(toOurs2)}`,
      );
      const stats = { peers: after };
      // C tor hops never get per-circuit connections.
      for (const p of (stats.peers as PeerStat[]).filter((p) => p !== toOurs2)) {
        assertEquals(p.circuitLinksOpened ?? 0, 0, JSON.stringify(p));
      }
      // Between ours1 and ours2 the wire carried IKE/ESP only (plain packets would be dropped).
      const c = await nftCounters(hostOf("ours1"));
      assertEquals(c.dropped, 0, "ours1 tried to send plain packets to ours2's host");
      assert(c.ikeEsp > 50, `ours1 → ours2 went as IKE/ESP (${c.ikeEsp} packets)`);
      // Our relays run PCTCP's IPsec security: with ours1's charon gone (no SA covers ours2) a
      // new circuit through ours1 → ours2 is refused, not carried in the clear.
      Deno.kill(s.processes.find((p) => p.name === "charon-ours1")!.pid, "SIGKILL");
      await new Promise((res) => setTimeout(res, 1500));
      const pinned = await PinnedCircuits.open(s.control, path, { cookieFile: s.cookieFile });
      try {
        const [host, port] = [s.socks.split(":")[0]!, Number(s.socks.split(":")[1])];
        const refused = await timedFetch(`${s.server}/bytes/10KiB`, {
          socksHost: host,
          socksPort: port,
          timeoutMs: 20_000,
          socksUser: `after-kill-${Date.now()}`,
        });
        assert(refused.outcome !== "ok", "a circuit ours1 → ours2 was carried without IPsec");
      } finally {
        await pinned.close();
      }
      const log1 = await Deno.readTextFile(`${dir}/ours1/relay.log`);
      assert(log1.includes("no IPsec SA covers"), "ours1 says why it refused");
      console.log(
        `up + fetch in ${
          ((Date.now() - t0) / 1000).toFixed(0)
        } s; ${r.bytes} B in ${r.ms} ms; per-circuit links ours1 → ours2: ${toOurs2.circuitLinksOpened}; ESP/IKE packets from ours1: ${c.ikeEsp}`,
      );
    } finally {
      const down = await pctcp("network", "down", "--dir", dir);
      if (tag) {
        // Whatever happened above, nothing of this run is left.
        assertEquals(await namespacesOf(tag), [], "namespaces left after down");
        await new Promise((res) => setTimeout(res, 1000));
        const alive = pids.filter((p) => isAlive(p.pid)).map((p) => `${p.name} ${p.pid}`);
        assertEquals(alive, [], "processes left after down");
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      assertEquals(down.code, 0, down.stderr);
      console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  },
});

Deno.test("network up --ctor refuses --ipsec and emulation flags without --netns", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pctcp-ctornetns-usage-" });
  try {
    const ipsec = await pctcp("network", "up", "--ctor", "--ipsec", "--dir", dir);
    assertEquals(ipsec.code, 2, ipsec.stderr);
    assert(ipsec.stderr.includes("--ipsec needs --netns"), ipsec.stderr);
    const lat = await pctcp("network", "up", "--ctor", "--latency", "10ms", "--dir", dir);
    assertEquals(lat.code, 2, lat.stderr);
    assert(lat.stderr.includes("--latency needs --netns"), lat.stderr);
    // Nothing was started.
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
