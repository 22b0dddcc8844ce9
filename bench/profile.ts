/**
 * Where the CPU goes while one bulk stream crosses three hops.
 *
 * - Default: client, 3 relays and the file server in THIS process on loopback, profiled with
 *   V8's sampling profiler (node:inspector): prints the functions with the most self time
 *   and the share of each source file. `--out FILE` keeps the raw .cpuprofile (open it in
 *   Chrome DevTools).
 * - `--processes`: a `pctcp network` (separate processes) with `DENO_V8_FLAGS=--prof`; each
 *   process's V8 tick log is summarized with `node --prof-process` (native code inside the
 *   deno binary is one lump there: it is stripped).
 *
 * `deno run -A bench/profile.ts [--mib 50] [--transport tor|pctcp] [--processes] [--out F]`
 * @module
 */

import { Session } from "node:inspector";
import { startNet } from "../tests/_net.ts";
import { timedFetch } from "../lib/measure/fetch.ts";
import { serve } from "../lib/serve/server.ts";
import { networkDown, networkUp } from "../lib/network/launcher.ts";
import type { Transport } from "../lib/directory/mod.ts";

let mib = 50, transport: Transport = "tor", processes = false, outFile: string | undefined;
for (let i = 0; i < Deno.args.length; i++) {
  const a = Deno.args[i]!;
  if (a === "--mib") mib = Number(Deno.args[++i]);
  else if (a === "--transport") transport = Deno.args[++i] as Transport;
  else if (a === "--processes") processes = true;
  else if (a === "--out") outFile = Deno.args[++i];
  else {
    console.error(`profile: unknown argument: ${a}`);
    Deno.exit(2);
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function post<T>(s: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    s.post(method, params ?? {}, (err, r) => err ? reject(err) : resolve(r as T))
  );
}

/** Self time per function and per file, from a .cpuprofile. */
function summarize(p: Profile): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const short = (url: string) => url.replace(/^.*\/(lib|bench|tests|ext|node)\//, "$1/");
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let total = 0;
  const fn = new Map<string, number>(), file = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    total += us;
    const url = short(n.callFrame.url);
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : "";
    let k = `${n.callFrame.functionName || "(anonymous)"} ${where}`.trim();
    if (!n.callFrame.functionName && !url) {
      // FFI calls show up as nameless frames: name them by their caller.
      const c = byId.get(parent.get(id) ?? -1)?.callFrame;
      if (c) k = `(native) ← ${c.functionName} ${short(c.url)}:${c.lineNumber + 1}`;
    }
    fn.set(k, (fn.get(k) ?? 0) + us);
    const f = url || n.callFrame.functionName;
    file.set(f, (file.get(f) ?? 0) + us);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) =>
      `| ${(100 * us / total).toFixed(1).padStart(5)} % | ${
        (us / 1e3).toFixed(0).padStart(6)
      } | ${k} |`
    ).join("\n");
  return [
    `total sampled ${(total / 1e6).toFixed(2)} s`,
    "",
    "| self | ms | function |",
    "| ---: | ---: | --- |",
    top(fn, 30),
    "",
    "| self | ms | file |",
    "| ---: | ---: | --- |",
    top(file, 15),
  ].join("\n");
}

const srv = await serve();
if (!processes) {
  const net = await startNet(3, [transport, transport, transport], transport, ["r1", "r2", "r3"]);
  try {
    const fetch = () =>
      timedFetch(`${srv.url}/bytes/${mib}MiB`, {
        socksHost: "127.0.0.1",
        socksPort: net.client.socksPort,
        socksUser: "prof",
        timeoutMs: 300_000,
      });
    await fetch(); // warm-up: circuit built, code optimized
    const s = new Session();
    s.connect();
    await post(s, "Profiler.enable");
    await post(s, "Profiler.setSamplingInterval", { interval: 200 });
    await post(s, "Profiler.start");
    const t0 = performance.now();
    const r = await fetch();
    const secs = (performance.now() - t0) / 1000;
    const { profile } = await post<{ profile: Profile }>(s, "Profiler.stop");
    s.disconnect();
    if (r.outcome !== "ok") throw new Error(`${r.outcome}: ${r.error}`);
    console.log(
      `one ${mib} MiB stream, 3 hops (${transport}), all roles in one process: ${
        (r.bytes / 1e6 / secs).toFixed(1)
      } MB/s\n`,
    );
    console.log(summarize(profile));
    if (outFile) await Deno.writeTextFile(outFile, JSON.stringify(profile));
  } finally {
    await net.stop();
    await srv.stop();
  }
} else {
  const dir = await Deno.makeTempDir({ prefix: "profile-" });
  const cwd = Deno.cwd();
  Deno.chdir(dir); // V8 writes isolate-*-PID-v8.log into the working directory
  Deno.env.set("DENO_V8_FLAGS", "--prof");
  let names = new Map<number, string>();
  try {
    const net = await networkUp({
      dir: `${dir}/net`,
      relays: 3,
      transport,
      path: ["relay1", "relay2", "relay3"],
    });
    Deno.env.delete("DENO_V8_FLAGS");
    names = new Map(net.processes.map((p) => [p.pid, p.name]));
    try {
      const r = await timedFetch(`${srv.url}/bytes/${mib}MiB`, {
        socksHost: "127.0.0.1",
        socksPort: Number(net.socks.split(":")[1]),
        socksUser: "prof",
        timeoutMs: 300_000,
      });
      console.log(`one ${mib} MiB stream, 3 hops (${transport}), processes: ${r.outcome}`);
    } finally {
      await networkDown(`${dir}/net`);
    }
    for (const e of Deno.readDirSync(dir)) {
      const m = /^isolate-0x[0-9a-f]+-(\d+)-v8\.log$/.exec(e.name);
      const name = m && names.get(Number(m[1]));
      if (!name || name === "server") continue;
      const o = await new Deno.Command("node", {
        args: ["--prof-process", `${dir}/${e.name}`],
        stdout: "piped",
        stderr: "null",
      }).output();
      const text = new TextDecoder().decode(o.stdout);
      const js = /\[JavaScript\]:\n([\s\S]*?)\n\n/.exec(text)?.[1]?.split("\n").slice(0, 13);
      const summary = /\[Summary\]:\n([\s\S]*?)\n\n/.exec(text)?.[1];
      const libs = /\[Shared libraries\]:\n([\s\S]*?)\n\n/.exec(text)?.[1]?.split("\n")
        .slice(0, 6);
      const cpp = /\[C\+\+\]:\n([\s\S]*?)\n\n/.exec(text)?.[1]?.split("\n").slice(0, 8);
      console.log(
        `\n## ${name}\n${summary ?? ""}\n${(libs ?? []).join("\n")}\n${(cpp ?? []).join("\n")}\n${
          (js ?? []).join("\n")
        }`,
      );
    }
  } finally {
    Deno.chdir(cwd);
    await srv.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
