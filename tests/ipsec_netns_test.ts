// PCTCP over IPsec between relay hosts in network namespaces (root, strongSwan, nftables;
// shown as ignored elsewhere). The wire carries only IKE/ESP between relay hosts (nft
// counters), 5 MiB arrive byte-exact, and a relay whose charon is killed stops carrying
// circuits to its peers instead of sending them in the clear.
import { assert, assertEquals, skipUnless } from "./_assert.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { probeNetns } from "../lib/network/netns.ts";
import { haveIpsecTools, nftCounters } from "../lib/network/ipsec_hosts.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { pctcp, spawnPctcp } from "./_cli.ts";

const ready = Deno.uid() === 0 && (await probeNetns()).netns && await haveIpsecTools();

Deno.test({
  name:
    "pctcp over IPsec in namespaces: only IKE/ESP on the wire, bytes exact, a dead charon stops circuits",
  ignore: skipUnless(ready, "needs root, network namespaces, strongSwan and nftables"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const net = await networkUp({ dir, relays: 3, transport: "pctcp", netns: true, ipsec: true });
      const [socksHost, socksPort] = [net.socks.split(":")[0]!, Number(net.socks.split(":")[1])];
      const relayHosts = net.netns!.hosts.filter((h) => h.name.startsWith("relay"));
      const r = await timedFetch(`${net.server}/bytes/5MiB`, {
        socksHost,
        socksPort,
        timeoutMs: 60_000,
      });
      assertEquals(r.outcome, "ok", r.error ?? "");
      assertEquals(r.sha256Ok, true);
      let esp = 0;
      for (const h of relayHosts) {
        const c = await nftCounters(h);
        assertEquals(c.dropped, 0, `${h.name} tried to send plain packets to a relay host`);
        esp += c.ikeEsp;
      }
      assert(esp > 1000, `relay-to-relay traffic went as IKE/ESP (${esp} packets)`);
      // Kill relay2's charon: its SAs are gone, so it must refuse per-circuit connections.
      const charon = net.processes.find((p) => p.name === "charon-relay2")!;
      Deno.kill(charon.pid, "SIGKILL");
      await new Promise((res) => setTimeout(res, 1500));
      const refused = await timedFetch(`${net.server}/bytes/10KiB`, {
        socksHost,
        socksPort,
        socksUser: "pctcp-path=relay2,relay1,relay3;after-kill",
        timeoutMs: 20_000,
      });
      assert(refused.outcome !== "ok", "a circuit was carried without IPsec");
      const log = await Deno.readTextFile(`${dir}/relay2/relay.log`);
      assert(log.includes("no IPsec SA covers"), "relay2 says why it refused");
      // Packets of relay2's old connections that would now leave in the clear (its TUN device
      // died with charon) are what the nft rule drops: counted, not sent.
      const relay2 = relayHosts.find((h) => h.name === "relay2")!;
      const after = await nftCounters(relay2);
      console.log(
        `relay2 after its charon died: ${after.dropped} plain packets dropped by nft, none sent`,
      );
    } finally {
      await networkDown(dir).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "experiment interference --netns runs both arms on emulated links, pctcp under IPsec, and cleans up",
  ignore: skipUnless(ready, "needs root, network namespaces, strongSwan and nftables"),
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const scenario = new URL("./fixtures/tiny.json", import.meta.url).pathname;
      const r = await pctcp(
        "experiment",
        "interference",
        "--scenario",
        scenario,
        "--out",
        out,
        "--netns",
      );
      assertEquals(r.code, 0, r.stderr);
      const q = JSON.parse(await Deno.readTextFile(`${out}/queues.json`));
      assert(q.tor.emulation.some((e: string) => e.startsWith("userspace emulator")));
      assert(q.pctcp.emulation.some((e: string) => e.startsWith("IPsec")));
      assert(!q.tor.emulation.some((e: string) => e.startsWith("IPsec")));
      const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
      assert(Number.isFinite(s.web_response.p50.change_pct));
      const left = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output())
          .stdout,
      );
      for (const arm of ["tor", "pctcp"]) {
        assert(
          !(await Deno.stat(`${out}/net-${arm}/state.json`).then(() => true, () => false)),
          `${arm} state left`,
        );
        const tag = /network namespaces (\S+)-\*/.exec(q[arm].emulation[0])![1]!;
        assert(!left.includes(`${tag}-`), `${arm} namespaces left: ${left}`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "experiment interference --netns killed with SIGKILL leaves no namespace, device, emulator, charon or process",
  ignore: skipUnless(ready, "needs root, network namespaces, strongSwan and nftables"),
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const scenario = `${out}/long.json`;
      await Deno.writeTextFile(
        scenario,
        JSON.stringify({
          ...JSON.parse(await Deno.readTextFile(new URL("./fixtures/tiny.json", import.meta.url))),
          durationS: 8,
        }),
      );
      const child = spawnPctcp([
        "experiment",
        "interference",
        "--scenario",
        scenario,
        "--out",
        out,
        "--netns",
      ], { stdout: "piped" });
      const errText = new Response(child.stdout).text();
      // Wait until the pctcp arm (with charons) is up, then kill the experiment outright.
      let state: { processes: { pid: number; name: string }[]; netns: { tag: string } } | undefined;
      for (let i = 0; i < 600 && !state?.processes.some((p) => p.name === "watchdog"); i++) {
        await new Promise((r) => setTimeout(r, 100));
        state = await Deno.readTextFile(`${out}/net-pctcp/state.json`).then(
          JSON.parse,
          () => undefined,
        );
      }
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      assert(state, `the pctcp arm came up: ${(await errText).slice(-400)}`);
      const pids = state.processes.map((p) => p.pid);
      const alive = (pid: number) => Deno.stat(`/proc/${pid}`).then(() => true, () => false);
      let left: number[] = pids;
      // Each process notices its owner is gone on its own poll (relays and the server every
      // second, the watchdog every second, then charons and the emulator get SIGTERM): 30 s
      // bounds that on a busy machine (10 s was too short beside one busy loop).
      for (let i = 0; i < 300 && left.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = (await Promise.all(pids.map(async (p) => (await alive(p)) ? p : 0))).filter(Boolean);
      }
      const names = left.map((p) => state!.processes.find((x) => x.pid === p)?.name ?? p);
      assertEquals(left, [], `processes left: ${names.join(", ")}`);
      const ns = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output())
          .stdout,
      );
      assert(!ns.includes(`${state.netns.tag}-`), `namespaces left: ${ns}`);
      assert(state.processes.some((p) => p.name === "emulator"), "the emulator was one of them");
      const links = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["-o", "link", "show"], stdout: "piped" }).output())
          .stdout,
      );
      assert(!links.includes(state.netns.tag), `devices left: ${links}`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
