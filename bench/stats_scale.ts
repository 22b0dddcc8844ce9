/**
 * Scale: `pctcp stats` over one million records, with time and peak RSS. Writes a synthetic
 * file once (in a temp folder) and summarizes it in a child process.
 * `deno run -A bench/stats_scale.ts [records]`.
 * @module
 */

const n = Number(Deno.args[0] ?? 1_000_000);
const dir = await Deno.makeTempDir();
const file = `${dir}/million.jsonl`;
try {
  const f = await Deno.open(file, { write: true, create: true });
  const enc = new TextEncoder();
  let buf = "";
  for (let i = 0; i < n; i++) {
    const fb = 50 + ((i * 7919) % 500), lb = fb + ((i * 104729) % 5000);
    buf += JSON.stringify({
      v: 1,
      run: "r",
      id: i,
      label: i % 3 ? "web" : "bulk",
      transport: i % 2 ? "tor" : "pctcp",
      url: "http://127.0.0.1:1/bytes/51200",
      size: 51200,
      start: "2026-11-24T00:00:00.000Z",
      phases_ms: { tcp: 0.3, socks: 2, request: 2.1, first_byte: fb, last_byte: lb },
      progress_ms: {},
      marks_ms: {},
      bytes: 51200,
      status: 200,
      sha256: null,
      sha256_ok: null,
      circuit: null,
      source_port: 1,
      outcome: i % 100 ? "ok" : "timeout",
      error: null,
    }) + "\n";
    if (buf.length > 1 << 20) {
      await f.write(enc.encode(buf));
      buf = "";
    }
  }
  await f.write(enc.encode(buf));
  f.close();
  const size = (await Deno.stat(file)).size;
  const t0 = performance.now();
  // GNU time (Debian package "time") reports the peak RSS; without it only the time is shown.
  const haveTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);
  const cmd = [
    Deno.execPath(),
    "run",
    "-A",
    new URL("../cli/main.ts", import.meta.url).pathname,
    "stats",
    file,
    "--format",
    "csv",
  ];
  const out = await new Deno.Command(haveTime ? "/usr/bin/time" : cmd[0]!, {
    args: haveTime ? ["-f", "%M", ...cmd] : cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const s = (performance.now() - t0) / 1000;
  const rssKiB = haveTime
    ? Number(new TextDecoder().decode(out.stderr).trim().split("\n").pop())
    : NaN;
  const rss = Number.isFinite(rssKiB) ? `, peak RSS ${(rssKiB / 1024).toFixed(0)} MiB` : "";
  console.log(
    `pctcp stats over ${n} records (${(size / 2 ** 20).toFixed(0)} MiB): ${
      s.toFixed(1)
    } s${rss}, exit ${out.code}`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
