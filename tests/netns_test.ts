// Hosts in network namespaces (root only; shown as ignored elsewhere): a pctcp network whose
// relays, server and client each live in their own namespace, links shaped with tc; bytes
// arrive exact, per-circuit connections show inside the relay's namespace, and `down` leaves
// no namespace or link.
import { assert, assertEquals, skipUnless } from "./_assert.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import { probeNetns } from "../lib/network/netns.ts";
import { createHash } from "node:crypto";

const support = Deno.uid() === 0 ? await probeNetns() : { netns: false, netem: false };

async function run(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name:
    "network up --netns: relays in their own namespaces carry 2 MiB byte-exact over emulated links; down removes them",
  ignore: skipUnless(support.netns, "needs root and network namespaces"),
  async fn() {
    const dir = await Deno.makeTempDir();
    let tag = "";
    try {
      const net = await networkUp({
        dir,
        relays: 3,
        transport: "pctcp",
        netns: true,
        bandwidth: 8 * 1024 * 1024,
        // Pinned, so relay1 certainly holds a connection to relay2 for the check below.
        path: ["relay1", "relay2", "relay3"],
      });
      tag = net.netns!.tag;
      assert(
        net.relays.every((r) => r.address.startsWith("10.77.")),
        "relays bound to their namespace addresses",
      );
      assertEquals(net.emulation!.engine, "userspace");
      assertEquals(net.emulation!.netemAvailable, support.netem);
      // Every host's links at the rate, both ways; the root namespace (the measuring side)
      // unlimited.
      for (const h of net.emulation!.hosts) {
        const want = h.name === "root" ? null : 8 * 1024 * 1024;
        assertEquals([h.up, h.down], [want, want], h.name);
      }
      const file = `${dir}/body.bin`;
      const hdr = `${dir}/h.txt`;
      const c = await new Deno.Command("curl", {
        args: [
          "-s",
          "-D",
          hdr,
          "-o",
          file,
          "--socks5-hostname",
          net.socks,
          `${net.server}/bytes/2MiB`,
        ],
      }).output();
      assertEquals(c.code, 0);
      const body = await Deno.readFile(file);
      const published = /x-content-sha256: ([0-9a-f]{64})/i.exec(await Deno.readTextFile(hdr))?.[1];
      assertEquals(createHash("sha256").update(body).digest("hex"), published);
      // Inside relay1's namespace: its connections to relay2 (per circuit under pctcp).
      const r2 = net.relays[1]!;
      const ss = await run([
        "ip",
        "netns",
        "exec",
        `${tag}-relay1`,
        "ss",
        "-tnH",
        "state",
        "established",
        `dport = :${r2.orPort}`,
      ]);
      assert(ss.includes(`${r2.address}:${r2.orPort}`), ss);
      await networkDown(dir);
      const left = (await run(["ip", "netns", "list"])).split("\n").filter((l) =>
        l.startsWith(tag)
      );
      assertEquals(left, []);
      assert(!(await run(["ip", "link", "show"])).includes(`${tag}r`), "root veth removed");
    } finally {
      await networkDown(dir).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
