/**
 * The cross-circuit interference experiment: the same workload on the same private network,
 * first with every relay on `tor` (one shared connection per relay pair), then every relay
 * on `pctcp` (a connection per circuit), optionally a half-upgraded (`mixed`) network; then
 * the comparison. Everything lands in one folder: raw records per arm, relay and socket
 * queue samples, summary.json, summary.md, CDF plots and report.html.
 * @module
 */

import { networkDown, type NetworkState, networkUp } from "../network/launcher.ts";
import { runMeasurement } from "../measure/run.ts";
import { circuitLookupFromLog } from "../measure/streams.ts";
import { readRecords } from "../stats/load.ts";
import { compareSamples, type Comparison, describeChange } from "../stats/compare.ts";
import { percentile } from "../stats/percentile.ts";
import { VERSION } from "../version.ts";
import { loadScenario, type Scenario, sizeOf } from "./scenario.ts";
import { sampleSockets, type SocketSample } from "./sockets.ts";
import { writeReport } from "./report.ts";
import type { MeasureRecord } from "../measure/record.ts";
import { serve } from "../serve/server.ts";
import { startTorTestnet, type TorTestnet } from "../tor/testnet.ts";
import { PinnedCircuits } from "../tor/pinned.ts";
import { type EmulationSpec, mergeSpecs } from "../emulate/config.ts";

/** An arm of the experiment: our relays on a transport, or Debian's tor ("realtor"). */
export type Arm = "tor" | "pctcp" | "mixed" | "realtor";

/** Options of the experiment. */
export interface InterferenceOptions {
  /** Scenario name or file (default "quick"). */
  scenario?: string;
  /** Output folder. */
  out: string;
  /** Add the mixed arm. */
  mixed?: boolean;
  /** Add an arm on a private network of Debian's tor with the same workload. */
  withRealTor?: boolean;
  /** Hosts in network namespaces, links through the user-space emulator (root needed). */
  netns?: boolean;
  /** With `netns`: emulation flags, layered over the scenario's `emulation` field. */
  emulation?: EmulationSpec;
  /** Override the scenario's duration (s). */
  durationS?: number;
  /** Progress lines go here. */
  progress?: (line: string) => void;
  /** Aborts (Ctrl-C): the current arm stops, its network is torn down. */
  signal?: AbortSignal;
}

/** One metric's comparison in summary.json. */
export interface MetricSummary {
  /** Per percentile. */
  [p: string]: { tor: number; pctcp: number; change_pct: number; ci95: [number, number] };
}

/** The metrics the summary reports, with the label and phase they come from. */
export const METRICS = {
  web_response: { label: "web", phase: "first_byte" },
  web_download: { label: "web", phase: "last_byte" },
  bulk_download: { label: "bulk", phase: "last_byte" },
} as const;

/** Samples (ms) of a records file by metric. */
export async function metricSamples(
  file: string,
): Promise<Record<keyof typeof METRICS, number[]> & { errors: number; total: number }> {
  const out = {
    web_response: [] as number[],
    web_download: [] as number[],
    bulk_download: [] as number[],
    errors: 0,
    total: 0,
  };
  await readRecords([file], (r) => {
    out.total++;
    if (r.outcome !== "ok") {
      out.errors++;
      return;
    }
    for (const [k, m] of Object.entries(METRICS)) {
      const v = r.phases_ms[m.phase];
      if (r.label === m.label && typeof v === "number") out[k as keyof typeof METRICS].push(v);
    }
  });
  return out;
}

/** A network an arm runs on: where to send SOCKS, what to fetch, how to tear it down. */
interface ArmNetwork {
  socks: string;
  server: string;
  orPorts: number[];
  /** Namespaces to sample sockets in (netns mode). */
  namespaces?: string[];
  /** How links were emulated. */
  emulation?: string[];
  circuitLookup?: (port: number) => MeasureRecord["circuit"] | Promise<MeasureRecord["circuit"]>;
  relayStats(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Our relays (tor, pctcp or mixed transport) as processes on loopback. */
async function ourNetwork(
  arm: Exclude<Arm, "realtor">,
  s: Scenario,
  dir: string,
  netns = false,
  emulation?: EmulationSpec,
): Promise<ArmNetwork> {
  const net: NetworkState = await networkUp({
    dir,
    relays: s.relays,
    transport: arm,
    bandwidths: s.bandwidths.map(sizeOf),
    ...(s.path ? { path: s.path } : {}),
    logLevel: "warn",
    ownerPid: Deno.pid,
    // On real hosts PCTCP's per-circuit connections run under IPsec, as the design has it;
    // the tor arm keeps its encrypted shared links.
    ...(netns ? { netns: true, ipsec: arm !== "tor", ...(emulation ? { emulation } : {}) } : {}),
  });
  return {
    socks: net.socks,
    server: net.server,
    orPorts: net.relays.map((r) => r.orPort),
    namespaces: net.netns?.hosts.filter((h) => h.name.startsWith("relay")).map((h) => h.ns) ?? [],
    emulation: net.emulation?.notes ??
      ["loopback; relays rate-limited by their token buckets (reads and writes)"],
    circuitLookup: circuitLookupFromLog(net.streams),
    async relayStats() {
      const out: Record<string, unknown> = {};
      for (const r of net.relays) {
        try {
          out[r.nickname] = JSON.parse(await Deno.readTextFile(`${dir}/${r.nickname}/stats.json`));
        } catch { /* none */ }
      }
      return out;
    },
    stop: () => networkDown(dir).then(() => {}),
  };
}

/**
 * Debian's tor as the same network: relays with the scenario's BandwidthRate, every circuit
 * pinned through the relays the scenario names (relayN → the Nth tor relay), one circuit per
 * SOCKS user as our client makes.
 */
async function realTorNetwork(s: Scenario, dir: string): Promise<ArmNetwork> {
  const server = await serve();
  let tor: TorTestnet | undefined;
  let pinned: PinnedCircuits | undefined;
  try {
    tor = await startTorTestnet({
      dir,
      relays: Math.max(4, s.relays),
      bandwidths: s.bandwidths.map(sizeOf),
      readyUrl: `${server.url}/bytes/1KiB`,
    });
    const t = tor;
    if (s.path) {
      const fps = s.path.map((nick) => {
        const i = Number(/(\d+)$/.exec(nick)?.[1]) - 1;
        const r = t.relays[i];
        if (!r) throw new RangeError(`scenario path names ${nick}, which the tor network lacks`);
        return r.fingerprint;
      });
      pinned = await PinnedCircuits.open(t.control, fps, { cookieFile: t.cookieFile });
    }
    const p = pinned;
    return {
      socks: t.socks,
      server: server.url,
      orPorts: t.relays.map((r) => r.orPort),
      ...(p ? { circuitLookup: (port: number) => p.info(port) } : {}),
      relayStats: () => Promise.resolve({ version: t.version }),
      async stop() {
        await p?.close().catch(() => {});
        await t.stop();
        await server.stop();
      },
    };
  } catch (e) {
    await pinned?.close().catch(() => {});
    await tor?.stop();
    await server.stop();
    throw e;
  }
}

async function runArm(
  arm: Arm,
  s: Scenario,
  o: InterferenceOptions,
): Promise<
  {
    records: string;
    sockets: SocketSample[];
    relayStats: Record<string, unknown>;
    emulation: string[];
  }
> {
  const say = o.progress ?? (() => {});
  const dir = `${o.out}/net-${arm}`;
  const records = `${o.out}/records-${arm}.jsonl`;
  await Deno.remove(records).catch(() => {});
  await Deno.remove(`${records}.runs.jsonl`).catch(() => {});
  say(
    arm === "realtor"
      ? `[${arm}] starting a private network of Debian's tor`
      : `[${arm}] starting ${s.relays} relays ${o.netns ? "in network namespaces" : "on loopback"}`,
  );
  const net = arm === "realtor"
    ? await realTorNetwork(s, dir)
    : await ourNetwork(arm, s, dir, o.netns, mergeSpecs(s.emulation, o.emulation));
  if (net.emulation) say(`[${arm}] emulation: ${net.emulation.join("; ")}`);
  const sockets: SocketSample[] = [];
  let relayStats: Record<string, unknown> = {};
  try {
    const orPorts = new Set(net.orPorts);
    const socksPort = Number(net.socks.split(":")[1]);
    const t0 = performance.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const x = await sampleSockets(orPorts, new Set([socksPort]), net.namespaces);
        if (x) sockets.push({ t: Math.round(performance.now() - t0), ...x });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const duration = o.durationS ?? s.durationS;
    say(
      `[${arm}] measuring for ${duration} s: ${s.web.clients} web clients (${s.web.size}, think ${s.web.thinkS} s), ${s.bulk.clients} bulk clients (${s.bulk.size})`,
    );
    let summary;
    try {
      summary = await runMeasurement({
        socks: net.socks,
        workloads: [
          {
            label: "web",
            urls: [`${net.server}/bytes/${sizeOf(s.web.size)}`],
            thinkS: s.web.thinkS,
            concurrency: s.web.clients,
          },
          {
            label: "bulk",
            urls: [`${net.server}/bytes/${sizeOf(s.bulk.size)}`],
            concurrency: s.bulk.clients,
          },
        ],
        durationS: duration,
        timeoutMs: s.timeoutS * 1000,
        jitter: s.jitter,
        seed: s.seed,
        transport: arm,
        out: records,
        ...(net.circuitLookup ? { circuitLookup: net.circuitLookup } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } finally {
      sampling = false;
      await sampler;
    }
    relayStats = await net.relayStats();
    say(`[${arm}] ${summary.ok} fetches ok, ${summary.failed} failed`);
  } finally {
    await net.stop().catch(() => {});
  }
  return { records, sockets, relayStats, emulation: net.emulation ?? [] };
}

function summarize(c: Comparison, tor: number[], pctcp: number[]) {
  const m: Record<string, unknown> = {};
  for (const ch of c.changes) {
    m[`p${ch.p}`] = {
      tor: round(ch.base),
      pctcp: round(ch.other),
      change_pct: round(ch.changePct),
      ci95: [round(ch.lo), round(ch.hi)],
    };
  }
  m.n = { tor: tor.length, pctcp: pctcp.length };
  m.mann_whitney_p = Number(c.pValue.toPrecision(3));
  return m;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Facts of the machine saved beside the results. */
async function machineFacts(): Promise<Record<string, unknown>> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const cpu = (await read("/proc/cpuinfo")).split("\n").find((l) => l.startsWith("model name"))
    ?.split(":")[1]?.trim();
  return {
    hostname: Deno.hostname(),
    os: Deno.build.os,
    arch: Deno.build.arch,
    kernel: Deno.osRelease(),
    cpus: navigator.hardwareConcurrency,
    cpu,
    memory_bytes: Deno.systemMemoryInfo().total,
    deno: Deno.version.deno,
    emulation:
      "loopback; relays rate-limited by their token buckets (reads and writes); no netem, no namespaces",
  };
}

/** Runs the experiment and writes its folder; returns the summary. */
export async function runInterference(o: InterferenceOptions): Promise<Record<string, unknown>> {
  const s = await loadScenario(o.scenario ?? "quick");
  await Deno.mkdir(o.out, { recursive: true });
  const started = new Date().toISOString();
  await Deno.writeTextFile(`${o.out}/scenario.json`, JSON.stringify(s, null, 2) + "\n");
  await Deno.writeTextFile(
    `${o.out}/machine.json`,
    JSON.stringify(await machineFacts(), null, 2) + "\n",
  );
  const arms: Arm[] = [
    "tor",
    "pctcp",
    ...(o.mixed ? ["mixed" as const] : []),
    ...(o.withRealTor ? ["realtor" as const] : []),
  ];
  const queues: Record<string, unknown> = {};
  for (const arm of arms) {
    if (o.signal?.aborted) break;
    const r = await runArm(arm, s, o);
    const sq = r.sockets.map((x) => x.sendQ);
    queues[arm] = {
      relay_sockets_send_q_bytes: {
        mean: round(sq.reduce((a, b) => a + b, 0) / Math.max(1, sq.length)),
        p90: sq.length ? percentile(sq, 90) : null,
        max: sq.length ? Math.max(...sq) : null,
      },
      relay_to_relay_connections: {
        max: r.sockets.length ? Math.max(...r.sockets.map((x) => x.connections)) : null,
      },
      emulation: r.emulation,
      samples: r.sockets,
      relays: r.relayStats,
    };
  }
  await Deno.writeTextFile(`${o.out}/queues.json`, JSON.stringify(queues, null, 2) + "\n");
  const summary = await summarizeFolder(o.out, { started, scenario: s.name, arms });
  await writeReport(o.out);
  return summary;
}

/** Recomputes summary.json and summary.md from a folder's records (used by `pctcp report`). */
export async function summarizeFolder(
  out: string,
  meta: { started?: string; scenario?: string; arms?: Arm[] } = {},
): Promise<Record<string, unknown>> {
  const tor = await metricSamples(`${out}/records-tor.jsonl`);
  const pctcp = await metricSamples(`${out}/records-pctcp.jsonl`);
  const summary: Record<string, unknown> = {
    v: 1,
    tool: "pctcp",
    version: VERSION,
    scenario: meta.scenario ??
      JSON.parse(await Deno.readTextFile(`${out}/scenario.json`).catch(() => "{}")).name,
    started: meta.started,
    finished: new Date().toISOString(),
    time_base:
      "onionperf: ms from stream start (SOCKS included); response = first byte, download = last byte",
    change:
      "(pctcp - tor) / tor in %, negative is faster; ci95 from a 1000-resample bootstrap of both arms",
    errors: {
      tor: { failed: tor.errors, total: tor.total },
      pctcp: { failed: pctcp.errors, total: pctcp.total },
    },
  };
  const lines: string[] = [];
  for (const k of Object.keys(METRICS) as (keyof typeof METRICS)[]) {
    if (!tor[k].length || !pctcp[k].length) {
      summary[k] = null;
      lines.push(`${k}: not enough successful fetches in both arms`);
      continue;
    }
    const c = compareSamples(tor[k], pctcp[k], [50, 75, 90]);
    summary[k] = summarize(c, tor[k], pctcp[k]);
    for (const ch of c.changes) lines.push(describeChange(k.replace("_", " ") + " time", ch));
  }
  // Other arms, when they ran: their percentiles beside tor's and pctcp's.
  for (const [arm, key] of [["mixed", "mixed"], ["realtor", "real_tor"]] as const) {
    let other;
    try {
      other = await metricSamples(`${out}/records-${arm}.jsonl`);
    } catch {
      continue;
    }
    (summary.errors as Record<string, unknown>)[key] = { failed: other.errors, total: other.total };
    for (const k of Object.keys(METRICS) as (keyof typeof METRICS)[]) {
      const m = summary[k] as Record<string, Record<string, unknown>> | null;
      if (!m || !other[k].length) continue;
      for (const p of [50, 75, 90]) m[`p${p}`]![key] = round(percentile(other[k], p));
      if (arm === "realtor" && tor[k].length) {
        const c = compareSamples(other[k], tor[k], [50]);
        const ch = c.changes[0]!;
        m.baseline_vs_real_tor = {
          p50_change_pct: round(ch.changePct),
          ci95: [round(ch.lo), round(ch.hi)],
        };
        lines.push(
          `our tor baseline against Debian's tor (negative: ours faster), ${
            k.replace("_", " ")
          } time: ${describeChange("", ch).replace(/^[\s:]+/, "")}`,
        );
      }
    }
  }
  summary.sentences = lines;
  await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  await Deno.writeTextFile(`${out}/summary.md`, summaryMarkdown(summary));
  return summary;
}

/** The comparison table in Markdown (also what the demo prints). */
export function summaryMarkdown(summary: Record<string, unknown>): string {
  type Row = {
    tor: number;
    pctcp: number;
    change_pct: number;
    ci95: [number, number];
    mixed?: number;
    real_tor?: number;
  };
  const metrics = Object.keys(METRICS).map((k) =>
    [k, summary[k] as Record<string, Row> | null] as const
  );
  const extra = (["mixed", "real_tor"] as const).filter((x) =>
    metrics.some(([, m]) => m?.p50?.[x] !== undefined)
  );
  const head = [
    "metric",
    "pct",
    "tor ms",
    "pctcp ms",
    "change",
    "95 % CI",
    ...extra.map((x) => `${x.replace("_", " ")} ms`),
  ];
  const rows = [
    `| ${head.join(" | ")} |`,
    `| --- | --- | ---: | ---: | ---: | --- |${extra.map(() => " ---: |").join("")}`,
  ];
  for (const [k, m] of metrics) {
    if (!m) {
      rows.push(`| ${k} | – | – | – | – | too few samples |${extra.map(() => " – |").join("")}`);
      continue;
    }
    for (const p of ["p50", "p75", "p90"]) {
      const e = m[p]!;
      const more = extra.map((x) => ` ${e[x] !== undefined ? e[x]!.toFixed(1) : "–"} |`).join("");
      rows.push(
        `| ${k} | ${p} | ${e.tor.toFixed(1)} | ${e.pctcp.toFixed(1)} | ${
          e.change_pct >= 0 ? "+" : ""
        }${e.change_pct.toFixed(1)} % | ${e.ci95[0].toFixed(1)} .. ${
          e.ci95[1].toFixed(1)
        } % |${more}`,
      );
    }
  }
  return rows.join("\n") + "\n\n" +
    ((summary.sentences as string[]) ?? []).map((l) => `- ${l}`).join("\n") + "\n";
}
