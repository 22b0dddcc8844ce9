// Measurement through real Tor: a private network of Debian's tor on 127.0.0.1, started once
// for this file and always stopped. Ignored (and shown as ignored) where tor is not installed;
// .ci/run installs it.
import { assert, assertEquals, assertRejects, skipUnless } from "./_assert.ts";
import { haveTor, startTorTestnet, type TorTestnet } from "../lib/tor/testnet.ts";
import { ControlError, TorControl } from "../lib/tor/control.ts";
import { serve } from "../lib/serve/server.ts";
import { pctcp } from "./_cli.ts";
import { probeNetns } from "../lib/network/netns.ts";

const tor = await haveTor();

Deno.test({
  name:
    "measure through a private network of real Tor, unpinned and pinned through the control port",
  ignore: skipUnless(tor, "needs Debian's tor (apt-get install tor)"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir();
    let net: TorTestnet | undefined;
    const s = await serve();
    try {
      net = await startTorTestnet({ dir: `${dir}/tor`, readyUrl: `${s.url}/bytes/1KiB` });
      const n = net;
      await t.step("unpinned fetches are ok records", async () => {
        const out = `${dir}/plain.jsonl`;
        const r = await pctcp(
          "measure",
          "--socks",
          n.socks,
          "--url",
          `${s.url}/bytes/100KiB`,
          "--count",
          "3",
          "--out",
          out,
          "--timeout",
          "30000",
        );
        assertEquals(r.code, 0, r.stderr);
        const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
        assertEquals(recs.map((x) => x.outcome), ["ok", "ok", "ok"]);
        assert(recs.every((x) => x.sha256_ok === true));
      });
      await t.step(
        "a pinned path is used, recorded, and the control settings are restored",
        async () => {
          const path = [n.relays[2]!, n.relays[0]!, n.relays[1]!].map((x) => x.fingerprint);
          const out = `${dir}/pinned.jsonl`;
          const r = await pctcp(
            "measure",
            "--socks",
            n.socks,
            "--url",
            `${s.url}/bytes/50KiB`,
            "--count",
            "3",
            "--out",
            out,
            "--control",
            n.control,
            "--path",
            path.join(","),
            "--timeout",
            "30000",
          );
          assertEquals(r.code, 0, r.stderr);
          const recs = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
          assertEquals(recs.map((x) => x.outcome), ["ok", "ok", "ok"]);
          for (const x of recs) {
            assertEquals(x.circuit.path, path);
            assert(
              typeof x.circuit.build_ms === "number" && x.circuit.build_ms > 0,
              JSON.stringify(x.circuit),
            );
          }
          const [host, port] = n.control.split(":");
          const ctl = await TorControl.connect(host!, Number(port));
          assertEquals(await ctl.authenticate({ cookieFile: n.cookieFile }), "safecookie");
          const v = (await ctl.command("GETCONF __LeaveStreamsUnattached")).lines[0];
          assertEquals(v, "__LeaveStreamsUnattached=0");
          await ctl.close();
        },
      );
      await t.step("a wrong control password is refused with a clear error", async () => {
        const [host, port] = n.control.split(":");
        const ctl = await TorControl.connect(host!, Number(port));
        await assertRejects(
          () => ctl.authenticate({ password: "wrong" }),
          ControlError,
          "AUTHENTICATE",
        );
        await ctl.close();
        const r = await pctcp(
          "measure",
          "--socks",
          n.socks,
          "--url",
          `${s.url}/bytes/1KiB`,
          "--out",
          `${dir}/x.jsonl`,
          "--control",
          n.control,
          "--path",
          "tor1,tor2,tor3",
          "--control-password",
          "wrong",
        );
        assertEquals(r.code, 1);
        assert(r.stderr.includes("pctcp: AUTHENTICATE"), r.stderr);
      });
    } finally {
      await net?.stop();
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "experiment interference --with-real-tor adds Debian's tor beside our two transports",
  ignore: skipUnless(tor, "needs Debian's tor (apt-get install tor)"),
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
        "--with-real-tor",
      );
      assertEquals(r.code, 0, r.stderr);
      const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
      assert(Number.isFinite(s.web_response.p50.real_tor), JSON.stringify(s.web_response));
      assert(s.errors.real_tor.total > 0);
      const recs = (await Deno.readTextFile(`${out}/records-ctor.jsonl`)).trim().split("\n").map(
        (l) => JSON.parse(l),
      );
      assert(
        recs.some((x) => x.outcome === "ok" && x.circuit?.path?.length === 3),
        "pinned circuits recorded",
      );
      assert(r.stdout.includes("| ctor | web_response |"), r.stdout);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

const root = Deno.uid() === 0 && (await probeNetns()).netns;

Deno.test({
  name:
    "experiment interference --netns runs C tor's nodes in namespaces over the emulator, calibrated on the same network",
  ignore: skipUnless(
    tor && root,
    tor
      ? "needs root and network namespaces (ip netns)"
      : "needs Debian's tor (apt-get install tor)",
  ),
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const scenario = new URL("./fixtures/tiny-netns.json", import.meta.url).pathname;
      const exp = pctcp(
        "experiment",
        "interference",
        "--scenario",
        scenario,
        "--netns",
        "--arms",
        "tor,ctor",
        "--out",
        out,
      );
      // While it runs: the network namespace of every C tor process (from the arm's state.json).
      const rootNs = await Deno.readLink("/proc/self/ns/net");
      const seen = new Map<string, string>();
      let done = false;
      const watcher = (async () => {
        while (!done) {
          try {
            const st = JSON.parse(await Deno.readTextFile(`${out}/net-ctor/state.json`));
            for (const p of st.processes as { name: string; pid: number }[]) {
              if (!/^(tor\d+|client)$/.test(p.name) || seen.has(p.name)) continue;
              const ns = await Deno.readLink(`/proc/${p.pid}/ns/net`).catch(() => "");
              const exe = await Deno.readLink(`/proc/${p.pid}/exe`).catch(() => "");
              if (ns && exe.endsWith("/tor")) seen.set(p.name, ns);
            }
          } catch { /* not yet */ }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      const r = await exp;
      done = true;
      await watcher;
      assertEquals(r.code, 0, r.stderr);
      // Four relays (each also an authority) and the client, each in a namespace of its own.
      assertEquals([...seen.keys()].sort(), ["client", "tor1", "tor2", "tor3", "tor4"]);
      const spaces = new Set(seen.values());
      assert(!spaces.has(rootNs), `a C tor process ran in the root namespace: ${[...spaces]}`);
      assertEquals(spaces.size, 5, "one namespace per node");
      const em = JSON.parse(await Deno.readTextFile(`${out}/net-ctor/emulation.json`));
      assertEquals(em.engine, "userspace");
      const s = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
      assertEquals(s.experiment.ctor_network, "emulated-hosts");
      assert(
        s.experiment.emulation.ctor.some((x: string) => x.startsWith("userspace emulator")),
        JSON.stringify(s.experiment.emulation.ctor),
      );
      const cal = (s.calibrations ?? []) as {
        arm: string;
        against: string;
        same_network: boolean;
      }[];
      const c = cal.find((x) => x.arm === "tor" && x.against === "ctor");
      assert(c?.same_network === true, JSON.stringify(s.calibration));
      const recs = (await Deno.readTextFile(`${out}/records-ctor.jsonl`)).trim().split("\n").map(
        (l) => JSON.parse(l),
      );
      const server = new URL(recs[0].url).hostname;
      assert(/^10\.77\./.test(server), `the server is on its emulated host: ${server}`);
      assert(
        recs.some((x) => x.outcome === "ok" && x.circuit?.path?.length === 3),
        "pinned circuits carried traffic",
      );
      // Nothing left: no namespace of the arm's network.
      const tag = em.notes[0].match(/namespaces (pc[0-9a-z]+)-\*/)?.[1];
      assert(tag, em.notes[0]);
      const left = new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output())
          .stdout,
      );
      assert(!left.includes(`${tag}-`), `namespaces left: ${left}`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
