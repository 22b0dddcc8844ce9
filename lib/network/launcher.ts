/**
 * The private network launcher: keys, a signed directory, N relays, a web/file server and a
 * client as separate processes on loopback, with their state in one folder so that `status`
 * and `down` (from another process, or after a crash) find every process it started.
 * @module
 */

import {
  generateRelayKeys,
  relayFingerprint,
  relayKeysFromJson,
  relayKeysToJson,
} from "../directory/keys.ts";
import { makeDocument, type RelaySpec } from "../directory/build.ts";
import type { Transport } from "../directory/document.ts";
import { timedFetch } from "../measure/fetch.ts";
import {
  createHosts,
  destroyHosts,
  inNamespace,
  type NetnsHost,
  type NetnsHosts,
  probeNetns,
} from "./netns.ts";
import { haveIpsecTools, listSas, loadIpsec, prepareIpsec } from "./ipsec_hosts.ts";
import {
  type EmulationState,
  emulationSummary,
  prepareEmulator,
  setCongestion,
} from "./emulated_hosts.ts";
import type { EmulationSpec } from "../emulate/config.ts";
import { childSaCovers } from "../transport/ipsec.ts";
import { advertisedTransports, launchArgs, transportDefinition } from "../transport/registry.ts";
import type { SchedulerKind } from "../channel/scheduler.ts";

/** Options of `network up`. */
export interface NetworkOptions {
  /** State folder (default ./pctcp-net). */
  dir?: string;
  /** Number of relays (≥ 3). */
  relays?: number;
  /**
   * Transport of every relay, a name of the transport registry, or "mixed"
   * ({@link MIXED_TRANSPORTS} alternating, first pctcp). The client runs it too (the first of
   * the mixed ones).
   */
  transport?: Transport | "mixed";
  /**
   * Caps on per-circuit connections, to one peer and in all, for the client and every pctcp
   * relay (default 512 and 4096: past them circuits share the link).
   */
  pctcpCaps?: { perPeer: number; total: number };
  /** Relay rate limit, bytes/s (reads and writes), and burst. */
  bandwidth?: number;
  /** Burst, bytes (default: the rate). */
  burst?: number;
  /** Per-relay rate limits, bytes/s (overrides `bandwidth` for the relays it lists). */
  bandwidths?: number[];
  /** Pin the client's circuits to these relays. */
  path?: string[];
  /** Folder of web pages for the server. */
  webRoot?: string;
  /** EWMA half-life for relays (ms). */
  ewmaHalflifeMs?: number;
  /** Cell scheduler of every relay, or per relay (default "vanilla"). */
  scheduler?: SchedulerKind | SchedulerKind[];
  /** Log level of the processes. */
  logLevel?: string;
  /** Every process exits when this one is gone (an experiment passes its own pid). */
  ownerPid?: number;
  /**
   * Put every relay, the server and the client in its own network namespace (root needed),
   * linked only through the user-space emulator (lib/emulate); bandwidths then become each
   * relay host's up/down rate in the emulator instead of its token bucket.
   */
  netns?: boolean;
  /**
   * With `netns`: latency, jitter, loss, host rates, queues, a GML topology, per host and per
   * pair settings (see EmulationSpec). `bandwidth` (every host) and `bandwidths` (per relay)
   * are layered under it.
   */
  emulation?: EmulationSpec;
  /**
   * With `netns`: IPsec (strongSwan, user-space ESP) between every pair of relay hosts, an
   * nftables rule that lets only IKE/ESP reach another relay host, and relays that carry a
   * per-circuit connection only where a CHILD_SA covers the peer.
   */
  ipsec?: boolean;
  /**
   * pctcp relays send per-circuit connections unencrypted (`--pctcp-security none
   * --insecure-lab`); relay logs and every measurement record joined to a circuit say so.
   */
  insecureLab?: boolean;
}

/** One process of the network. */
export interface ProcessInfo {
  /** Role name (relay nickname, "server", "client"). */
  name: string;
  /** Process id. */
  pid: number;
  /** Log file. */
  log: string;
}

/** The network's state, as `network status --json` prints it. */
export interface NetworkState {
  /** The client's SOCKS address. */
  socks: string;
  /** The server's base URL. */
  server: string;
  /** Relays. */
  relays: {
    nickname: string;
    address: string;
    orPort: number;
    transports: Transport[];
    pid: number;
    fingerprint: string;
    /** Cell scheduler ("vanilla" when absent). */
    scheduler?: SchedulerKind;
  }[];
  /** Every process started. */
  processes: ProcessInfo[];
  /** State folder. */
  dir: string;
  /** The directory file. */
  directory: string;
  /** Client stream log (joins measurements to circuits). */
  streams: string;
  /** When it came up. */
  started: string;
  /** Namespaces, when the hosts are in network namespaces. */
  netns?: NetnsHosts;
  /** How links are emulated (engine, hosts' rates, paths, notes). */
  emulation?: EmulationState;
}

/** The scheduler of relay `i`. */
function schedulerOf(i: number, s: NetworkOptions["scheduler"]): SchedulerKind {
  return (Array.isArray(s) ? s[i] : s) ?? "vanilla";
}

/** How to run this program again as a child: from source, the bundle or a compiled binary. */
export { selfCommand } from "../util/self.ts";
import { selfCommand } from "../util/self.ts";

/**
 * V8 flags of the long-running onion roles (relays, client): a heap that grows less ahead of
 * what is live and a smaller young generation. `deno run -A bench/vs_tor.ts` with and without
 * (1000 idle circuits, one run each): RSS per idle circuit pctcp 329–409 → 96 KiB across the
 * path, tor 67 → 32 KiB; CPU per MB and MB/s within run-to-run noise. V8 reads it only at
 * start (node:v8's setFlagsFromString at run time had no effect), so it is a command-line flag.
 */
const ROLE_V8_FLAGS = ["--optimize-for-size"];

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Starts `args` of this program in the background with output to `log`; returns its pid. */
export async function spawn(
  args: string[],
  log: string,
  prefix: string[] = [],
  raw = false,
): Promise<number> {
  const role = args[0] === "relay" || args[0] === "client";
  const cmd = (raw ? args : [...prefix, ...selfCommand(role ? ROLE_V8_FLAGS : []), ...args])
    .map(shellQuote).join(" ");
  const child = new Deno.Command("sh", {
    args: ["-c", `exec ${cmd} >>${shellQuote(log)} 2>&1 </dev/null & echo $!`],
    stdout: "piped",
    stderr: "inherit",
  });
  const out = await child.output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim());
  if (!pid) throw new Error(`could not start: ${cmd}`);
  return pid;
}

/** True if a process with this pid exists (and is not a zombie we can see). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

export async function waitForFile(
  path: string,
  pid: number,
  log: string,
  timeoutMs = 20_000,
): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    try {
      const t = (await Deno.readTextFile(path)).trim();
      if (t) return t;
    } catch { /* not yet */ }
    if (!isAlive(pid)) {
      const tail = (await Deno.readTextFile(log).catch(() => "")).split("\n").slice(-5).join("\n");
      throw new Error(`process ${pid} exited during start-up; its log ${log} ends:\n${tail}`);
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The transports of a "mixed" network, alternating over the relays. */
export const MIXED_TRANSPORTS: readonly Transport[] = ["pctcp", "tor"];

/** The transport of relay `i` (the client's is relay 0's); a clear error for an unknown name. */
function transportOf(i: number, t: NetworkOptions["transport"]): Transport {
  const name = t === "mixed" ? MIXED_TRANSPORTS[i % MIXED_TRANSPORTS.length]! : t ?? "tor";
  return transportDefinition(name).name;
}

/** Reads the state of a network folder; a clear error if there is none. */
export async function readState(dir = "./pctcp-net"): Promise<NetworkState> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
  } catch {
    throw new Error(`no network in ${dir} (run \`pctcp network up --dir ${dir}\` first)`);
  }
}

/** Throws when a network started in `dir` still runs (one network per folder). */
export async function assertNoNetwork(dir: string): Promise<void> {
  let s: NetworkState;
  try {
    s = await readState(dir);
  } catch {
    return; // none there
  }
  if (s.processes.some((p) => isAlive(p.pid))) {
    throw new Error(`a network is already running in ${dir} (pctcp network down --dir ${dir})`);
  }
}

/**
 * IPsec between `relayHosts` (strongSwan, see ipsec_hosts.ts): a charon per host, spawned and
 * listed in `processes` (and `save`d at once, so `down` stops it), the connections and nft
 * rules loaded, and a wait until every host has an INSTALLED CHILD_SA to every other (30 s).
 * The IPsec routes (table 220) get `tcpCongestion` like the main ones. Returns each host's
 * VICI socket by host name (what `--swanctl-uri` of its relay needs).
 */
export async function startIpsec(
  dir: string,
  netns: NetnsHosts,
  relayHosts: NetnsHost[],
  processes: ProcessInfo[],
  save: () => Promise<void>,
  tcpCongestion?: string,
): Promise<Map<string, string>> {
  const vici = new Map<string, string>();
  const daemons = await prepareIpsec(dir, relayHosts);
  for (const d of daemons) {
    const log = `${d.ipsec.dir}/charon.log`;
    processes.push({
      name: `charon-${d.host.name}`,
      pid: await spawn(d.command, log, [], true),
      log,
    });
    await save();
  }
  for (const d of daemons) {
    await loadIpsec(d.host, d.ipsec);
    vici.set(d.host.name, d.ipsec.vici);
  }
  // Up when every relay host has an INSTALLED CHILD_SA to every other.
  const t0 = Date.now();
  for (const d of daemons) {
    for (const peer of relayHosts.filter((p) => p !== d.host)) {
      while (!childSaCovers(await listSas(d.host, d.ipsec), peer.address)) {
        if (Date.now() - t0 > 30_000) {
          throw new Error(`no CHILD_SA from ${d.host.name} to ${peer.name} after 30 s`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
  // The IPsec routes (table 220) carry the relays' connections: same congestion control.
  const asked = tcpCongestion;
  if (asked) {
    await setCongestion(netns, asked, relayHosts.map((h) => h.name));
  }
  return vici;
}

/**
 * Brings a network up and returns once a fetch through it succeeds. On any failure it stops
 * what it started.
 */
export async function networkUp(options: NetworkOptions = {}): Promise<NetworkState> {
  const dir = options.dir ?? "./pctcp-net";
  const n = options.relays ?? 3;
  if (n < 3) throw new RangeError(`a network needs at least 3 relays: ${n}`);
  await assertNoNetwork(dir);
  await Deno.mkdir(dir, { recursive: true });
  const processes: ProcessInfo[] = [];
  const partial: NetworkState = {
    socks: "",
    server: "",
    relays: [],
    processes,
    dir,
    directory: `${dir}/directory.json`,
    streams: `${dir}/client/streams.jsonl`,
    started: new Date().toISOString(),
  };
  // Written whole then renamed: `status`, `down` and tests never read half a file.
  const save = () =>
    Deno.writeTextFile(`${dir}/state.json.tmp`, JSON.stringify(partial, null, 2) + "\n")
      .then(() => Deno.rename(`${dir}/state.json.tmp`, `${dir}/state.json`));
  try {
    if (options.netns) {
      const support = await probeNetns();
      if (!support.netns) throw new Error("--netns needs root and iproute2 (ip netns add failed)");
      partial.netns = await createHosts(dir, [
        ...Array.from({ length: n }, (_, i) => `relay${i + 1}`),
        "server",
        "client",
      ], { links: "emulated" });
      await save();
      // Relay rates (scenario bandwidths, or --bandwidth for every host) under the spec.
      const relayRates: EmulationSpec["hosts"] = {};
      for (let i = 0; i < n; i++) {
        const r = options.bandwidths?.[i];
        if (r) relayRates[`relay${i + 1}`] = { bandwidth: r };
      }
      const spec: EmulationSpec = {
        ...(options.bandwidth ? { bandwidth: options.bandwidth } : {}),
        ...options.emulation,
        hosts: { ...relayRates, ...options.emulation?.hosts },
      };
      const em = await prepareEmulator(dir, partial.netns, {
        spec,
        ...(options.ownerPid ? { ownerPid: options.ownerPid } : {}),
      });
      const log = `${em.stateDir}/emulator.log`;
      // Above the other processes' priority: its timing is the network's (it sleeps in ppoll
      // between packets, so it takes no CPU it does not use).
      const pid = await spawn(["network", "emulate", "--config", em.config], log, [
        "nice",
        "-n",
        "-10",
      ]);
      processes.push({ name: "emulator", pid, log });
      partial.emulation = {
        ...em.state,
        netemAvailable: support.netem,
        pid,
        notes: [
          `hosts in network namespaces ${partial.netns.tag}-*, linked only through the user-space emulator (a TUN device per host)`,
          support.netem
            ? "netem available in this kernel (not used: one engine for every machine)"
            : "no netem in this kernel: delay and loss emulated in user space",
        ],
      };
      partial.emulation.notes.push(emulationSummary(partial.emulation));
      await save();
      await waitForFile(`${em.stateDir}/ready`, pid, log);
      partial.emulation.notes.push(
        `TCP congestion control in every host: ${await setCongestion(
          partial.netns,
          spec.tcpCongestion,
        )}`,
      );
    } else {
      partial.emulation = {
        engine: "none",
        netemAvailable: false,
        hosts: [],
        paths: [],
        notes: ["loopback; relays rate-limited by their token buckets (reads and writes)"],
      };
    }
    const host = (name: string) => partial.netns?.hosts.find((h) => h.name === name);
    const vici = new Map<string, string>();
    if (options.ipsec) {
      if (!partial.netns) throw new Error("IPsec between relay hosts needs --netns");
      if (!(await haveIpsecTools())) {
        throw new Error(
          "IPsec needs strongSwan and nftables: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins nftables",
        );
      }
      const relayHosts = partial.netns.hosts.filter((x) => x.name.startsWith("relay"));
      for (
        const [k, v] of await startIpsec(
          dir,
          partial.netns,
          relayHosts,
          processes,
          save,
          partial.emulation?.spec?.tcpCongestion,
        )
      ) {
        vici.set(k, v);
      }
      partial.emulation!.notes.push(
        "IPsec: strongSwan IKEv2, kernel-libipsec user-space ESP (no kernel ESP), nftables IKE/ESP only between relay hosts",
      );
    }
    const serverAddress = host("server")?.address ?? "127.0.0.1";
    await Deno.remove(partial.directory).catch(() => {});
    const specs: RelaySpec[] = [];
    const level = options.logLevel ?? "info";
    for (let i = 0; i < n; i++) {
      const nick = `relay${i + 1}`;
      const rdir = `${dir}/${nick}`;
      await Deno.mkdir(rdir, { recursive: true });
      const keyFile = `${rdir}/keys.json`;
      let keys;
      try {
        keys = relayKeysFromJson(await Deno.readTextFile(keyFile));
      } catch {
        keys = generateRelayKeys();
        await Deno.writeTextFile(keyFile, relayKeysToJson(keys), { mode: 0o600 });
      }
      await Deno.remove(`${rdir}/port`).catch(() => {});
      const transport = transportOf(i, options.transport);
      const args = [
        "relay",
        "--keys",
        keyFile,
        "--nickname",
        nick,
        "--directory",
        partial.directory,
        "--port-file",
        `${rdir}/port`,
        "--stats-file",
        `${rdir}/stats.json`,
        "--exit-allow",
        `${serverAddress}:*`,
        "--address",
        host(nick)?.address ?? "127.0.0.1",
        "--log-level",
        level,
        ...(options.ownerPid ? ["--exit-with", String(options.ownerPid)] : []),
      ];
      const rate = options.bandwidths?.[i] ?? options.bandwidth;
      const h = host(nick);
      // In namespaces the emulator enforces the rate on the relay host's links.
      if (rate && !h) {
        args.push("--bandwidth", String(rate), "--burst", String(options.burst ?? rate));
      }
      if (options.ewmaHalflifeMs !== undefined) {
        args.push("--ewma-halflife", String(options.ewmaHalflifeMs));
      }
      args.push("--scheduler", schedulerOf(i, options.scheduler));
      const v = vici.get(nick);
      args.push(...launchArgs(transport, {
        role: "relay",
        ...(v ? { ipsecVici: v } : {}),
        ...(options.insecureLab ? { insecureLab: true } : {}),
        ...(options.pctcpCaps ? { caps: options.pctcpCaps } : {}),
      }));
      const log = `${rdir}/relay.log`;
      const pid = await spawn(args, log, h ? inNamespace(h) : []);
      processes.push({ name: nick, pid, log });
      await save();
      specs.push({
        nickname: nick,
        keys,
        address: h?.address ?? "127.0.0.1",
        orPort: 0,
        // First relay(s) guard, last two exits (path choice honours them).
        flags: i === 0 || (n > 4 && i === 1) ? ["guard"] : i >= n - 2 ? ["exit"] : [],
        bandwidth: options.bandwidths?.[i] ?? options.bandwidth ?? 10_000_000,
        transports: advertisedTransports(transport),
      });
    }
    for (let i = 0; i < n; i++) {
      const p = processes.find((x) => x.name === `relay${i + 1}`)!;
      specs[i]!.orPort = Number(await waitForFile(`${dir}/${p.name}/port`, p.pid, p.log));
    }
    const { document } = makeDocument(specs, { exitAllow: [`${serverAddress}:*`] });
    await Deno.writeTextFile(`${partial.directory}.tmp`, JSON.stringify(document, null, 2));
    await Deno.rename(`${partial.directory}.tmp`, partial.directory);
    partial.relays = specs.map((s) => ({
      nickname: s.nickname,
      address: s.address,
      orPort: s.orPort,
      transports: s.transports,
      pid: processes.find((x) => x.name === s.nickname)!.pid,
      fingerprint: relayFingerprint(s.keys),
      scheduler: schedulerOf(specs.indexOf(s), options.scheduler),
    }));
    // The server.
    await Deno.mkdir(`${dir}/server`, { recursive: true });
    const serverLog = `${dir}/server/server.log`;
    await Deno.remove(serverLog).catch(() => {});
    const serverArgs = ["serve", ...(options.webRoot ? ["--root", options.webRoot] : [])];
    if (options.ownerPid) serverArgs.push("--exit-with", String(options.ownerPid));
    serverArgs.push("--address", serverAddress);
    const serverHost = host("server");
    const spid = await spawn(serverArgs, serverLog, serverHost ? inNamespace(serverHost) : []);
    processes.push({ name: "server", pid: spid, log: serverLog });
    await save();
    const first = await waitForFile(serverLog, spid, serverLog);
    partial.server = JSON.parse(first.split("\n").find((l) => l.startsWith("{"))!).server;
    // The client.
    await Deno.mkdir(`${dir}/client`, { recursive: true });
    await Deno.remove(`${dir}/client/port`).catch(() => {});
    const clientTransport = transportOf(0, options.transport);
    const cargs = [
      "client",
      "--directory",
      partial.directory,
      "--socks-port",
      "0",
      "--port-file",
      `${dir}/client/port`,
      "--streams-file",
      partial.streams,
      ...launchArgs(clientTransport, {
        role: "client",
        ...(options.pctcpCaps ? { caps: options.pctcpCaps } : {}),
      }),
      "--log-level",
      level,
      ...(options.ownerPid ? ["--exit-with", String(options.ownerPid)] : []),
    ];
    if (options.path) cargs.push("--path", options.path.join(","));
    const clog = `${dir}/client/client.log`;
    const clientHost = host("client");
    if (clientHost) cargs.push("--socks-address", clientHost.address);
    if (options.insecureLab) {
      cargs.push(
        "--security-note",
        "INSECURE LAB MODE: per-circuit connections between relays are not encrypted",
      );
    }
    const cpid = await spawn(cargs, clog, clientHost ? inNamespace(clientHost) : []);
    processes.push({ name: "client", pid: cpid, log: clog });
    await save();
    partial.socks = `${clientHost?.address ?? "127.0.0.1"}:${await waitForFile(
      `${dir}/client/port`,
      cpid,
      clog,
    )}`;
    await save();
    // Ready when a fetch goes through.
    const t0 = Date.now();
    for (;;) {
      const r = await timedFetch(`${partial.server}/bytes/1KiB`, {
        socksHost: partial.socks.split(":")[0]!,
        socksPort: Number(partial.socks.split(":")[1]),
        timeoutMs: 10_000,
        socksUser: "readiness",
      });
      if (r.outcome === "ok") break;
      if (Date.now() - t0 > 60_000) {
        throw new Error(`network not ready after 60 s: ${r.outcome}: ${r.error}`);
      }
      await new Promise((res) => setTimeout(res, 300));
    }
    if (partial.emulation) {
      await Deno.writeTextFile(
        `${dir}/emulation.json`,
        JSON.stringify(partial.emulation, null, 2) + "\n",
      );
    }
    if (options.ownerPid && partial.netns) {
      // Our processes end with their owner (--exit-with); namespaces and charons do not, so a
      // watchdog removes them if the owner dies without `down` (a crash, SIGKILL).
      const n = partial.netns;
      const charons = processes.filter((x) => x.name.startsWith("charon-") || x.name === "emulator")
        .map((x) => x.pid);
      const script = [
        `while kill -0 ${options.ownerPid} 2>/dev/null; do sleep 1; done`,
        ...(charons.length ? [`kill -9 ${charons.join(" ")} 2>/dev/null`] : []),
        ...n.hosts.map((h) => `ip netns del ${h.ns} 2>/dev/null`),
        `ip netns del ${n.hub} 2>/dev/null`,
        `ip link del ${n.tag}r 2>/dev/null`,
        "true",
      ].join("; ");
      const log = `${dir}/watchdog.log`;
      processes.push({
        name: "watchdog",
        pid: await spawn(["sh", "-c", script], log, [], true),
        log,
      });
      await save();
    }
    return partial;
  } catch (e) {
    await stopProcesses(processes);
    if (partial.netns) await destroyHosts(partial.netns);
    await Deno.remove(`${dir}/state.json`).catch(() => {});
    throw e;
  }
}

/** What stopping a set of processes did (see {@linkcode stopProcesses}). */
export interface StopReport {
  /** Processes that were running and were sent SIGTERM. */
  stopped: number;
  /** Of those, processes still running after the grace period and sent SIGKILL. */
  killed: number;
  /** Processes already gone before anything was sent. */
  alreadyGone: number;
  /** Names of processes still running when it gave up (none, unless a process is stuck). */
  remaining: string[];
  /** Exited but not yet removed from the process table by init (a zombie) when it returned. */
  unreaped: number;
  /** Milliseconds from the first signal until every process had exited. */
  ms: number;
}

/** True if no process with this pid exists at all (not even as a zombie). */
function isReaped(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return false;
  } catch {
    return true;
  }
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 >= ms) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/**
 * Stops processes by pid: SIGTERM, then SIGKILL to those still running after `graceMs`, and
 * returns only once every one has exited (or, for a process that survives SIGKILL for
 * `killWaitMs`, names it in `remaining`). It then waits up to `reapMs` for init to remove the
 * exited processes from the process table, so that `kill -0 PID` in a script also sees them
 * gone (init here reaps orphans every ~1.5 s).
 */
export async function stopProcesses(
  processes: ProcessInfo[],
  options: { graceMs?: number; killWaitMs?: number; reapMs?: number } = {},
): Promise<StopReport> {
  const { graceMs = 3000, killWaitMs = 5000, reapMs = 3000 } = options;
  const t0 = Date.now();
  const running = processes.filter((p) => isAlive(p.pid));
  const alreadyGone = processes.length - running.length;
  for (const p of running) {
    try {
      Deno.kill(p.pid, "SIGTERM");
    } catch { /* exited meanwhile */ }
  }
  await waitUntil(() => running.every((p) => !isAlive(p.pid)), graceMs);
  const stubborn = running.filter((p) => isAlive(p.pid));
  for (const p of stubborn) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch { /* exited meanwhile */ }
  }
  await waitUntil(() => stubborn.every((p) => !isAlive(p.pid)), killWaitMs);
  const ms = Date.now() - t0;
  const remaining = running.filter((p) => isAlive(p.pid)).map((p) => `${p.name} (pid ${p.pid})`);
  await waitUntil(() => running.every((p) => isAlive(p.pid) || isReaped(p.pid)), reapMs);
  const unreaped = running.filter((p) => !isAlive(p.pid) && !isReaped(p.pid)).length;
  return { stopped: running.length, killed: stubborn.length, alreadyGone, remaining, unreaped, ms };
}

/**
 * Stops every process of the network in `dir` (see {@linkcode stopProcesses}), removes its
 * namespaces if it has any, and its state file. Throws if a process could not be stopped.
 */
export async function networkDown(dir = "./pctcp-net"): Promise<StopReport> {
  const state = await readState(dir);
  const report = await stopProcesses(state.processes);
  if (report.remaining.length) {
    throw new Error(`could not stop: ${report.remaining.join(", ")}`);
  }
  if (state.netns) await destroyHosts(state.netns);
  await Deno.remove(`${dir}/state.json`).catch(() => {});
  return report;
}

/** One line saying what {@linkcode stopProcesses} did. */
export function describeStop(r: StopReport): string {
  const parts = [`${r.stopped} processes stopped in ${(r.ms / 1000).toFixed(1)} s`];
  parts.push(
    r.killed
      ? `${r.stopped - r.killed} on SIGTERM, ${r.killed} killed (SIGKILL) after the grace period`
      : "all on SIGTERM",
  );
  if (r.alreadyGone) parts.push(`${r.alreadyGone} had already exited`);
  if (r.unreaped) parts.push(`${r.unreaped} exited but not yet reaped by init`);
  return parts.join("; ");
}

/**
 * The state plus liveness of each process, each relay's latest statistics, the emulator's
 * counters, and `broken`: why the network cannot carry traffic (empty when it can).
 */
export async function networkStatus(
  dir = "./pctcp-net",
): Promise<
  NetworkState & {
    alive: Record<string, boolean>;
    stats: Record<string, unknown>;
    broken: string[];
    /** The emulator's counters (stats.json), when it runs. */
    emulator?: unknown;
  }
> {
  const state = await readState(dir);
  const alive: Record<string, boolean> = {};
  const stats: Record<string, unknown> = {};
  const broken: string[] = [];
  for (const p of state.processes) {
    alive[p.name] = isAlive(p.pid);
    if (!alive[p.name] && p.name !== "watchdog") {
      broken.push(
        p.name === "emulator"
          ? `emulator (pid ${p.pid}) is not running: hosts are cut off from each other`
          : `${p.name} (pid ${p.pid}) is not running`,
      );
    }
  }
  let emulator: unknown;
  if (state.emulation?.dir) {
    try {
      emulator = JSON.parse(await Deno.readTextFile(`${state.emulation.dir}/stats.json`));
    } catch { /* none yet */ }
  }
  for (const r of state.relays) {
    try {
      stats[r.nickname] = JSON.parse(await Deno.readTextFile(`${dir}/${r.nickname}/stats.json`));
    } catch { /* none yet */ }
  }
  return { ...state, alive, stats, broken, ...(emulator ? { emulator } : {}) };
}
