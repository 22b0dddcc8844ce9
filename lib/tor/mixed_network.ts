/**
 * `pctcp network up --ctor`: a private network of Debian's tor (every C tor relay also a
 * directory authority, one C tor client with a SOCKS and a control port) and the web/file
 * server, with N of our relays joined to it the way any relay joins a Tor network: each
 * publishes its descriptor to the authorities (lib/dirauth), answers their reachability tests
 * over Tor's link protocol, and is listed. It returns once every relay of ours is listed
 * Running in the C client's consensus and a fetch pinned through each of ours (C guard → ours →
 * C exit) works, and writes `state.json` like `network up`, so `status` and `down` work on it.
 *
 * Between two of ours with `--transport pctcp`, circuits get a TCP connection each (found in
 * band on the authenticated link); every C tor hop keeps the ordinary shared TLS link.
 *
 * With `netns` every node is on a host of its own (a network namespace) over the user-space
 * emulator (the hosts step of lib/tor/emulated.ts, with hosts ours1..oursN beside relay1..K,
 * server and client); our relays bind to and publish their host's address. With `ipsec` the
 * hosts of our pctcp relays get strongSwan IPsec between them (networkUp's `startIpsec`) and
 * those relays PCTCP's `ipsec` security. Readiness there is the pinned fetches only: tor's own
 * exit choice finds no exit for a server-only exit policy on private hosts (README).
 * @module
 */

import { startTorTestnet, type TorTestnet } from "./testnet.ts";
import { TorControl } from "./control.ts";
import { PinnedCircuits } from "./pinned.ts";
import { timedFetch } from "../measure/fetch.ts";
import { generateRelayKeys, relayFingerprint, relayKeysToJson } from "../directory/keys.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import type { SchedulerKind } from "../channel/scheduler.ts";
import {
  assertNoNetwork,
  isAlive,
  type NetworkState,
  type ProcessInfo,
  spawn as spawnSelf,
  startIpsec,
  stopProcesses,
  waitForFile,
} from "../network/launcher.ts";
import { startTorHosts, type TorHostsStep } from "./emulated.ts";
import { destroyHosts, inNamespace } from "../network/netns.ts";
import { haveIpsecTools } from "../network/ipsec_hosts.ts";
import { launchArgs } from "../transport/registry.ts";
import type { EmulationSpec } from "../emulate/config.ts";

/** Options of a C tor network with relays of ours. */
export interface CtorNetworkOptions {
  /** State folder (default ./pctcp-net). */
  dir?: string;
  /** C tor relays, each also a directory authority (default 4, at least 3). */
  ctorRelays?: number;
  /** Relays of ours joined to it (default 2). */
  ours?: number;
  /** Link transport of our relays (default "tor"; "pctcp": per-circuit links between ours). */
  transport?: "tor" | "pctcp";
  /** Per relay of ours (index = ours1, ours2, …), overriding `transport`. */
  transports?: ("tor" | "pctcp")[];
  /** Rate limits (bytes/s, reads and writes) of our relays, by index (none: unlimited). */
  oursBandwidths?: (number | undefined)[];
  /** BandwidthRate/Burst of the C tor relays, by index (tor1, tor2, …). */
  ctorBandwidths?: number[];
  /** Cell scheduler of our relays (default "kist", as C tor). */
  scheduler?: SchedulerKind;
  /** Log level of our processes. */
  logLevel?: string;
  /** Every process exits when this one is gone (an experiment passes its own pid). */
  ownerPid?: number;
  /** Give up waiting for our relays to be listed after this many ms (default 120 000). */
  listTimeoutMs?: number;
  /** Progress log. */
  log?: Logger;
  /**
   * Every node in a network namespace of its own — the C tor relays (hosts relay1..K), ours
   * (ours1..N), the server and the client — linked only through the user-space emulator
   * (root, iproute2; lib/tor/emulated.ts). Rates (`oursBandwidths`, `ctorBandwidths`) then
   * become the hosts' rates in the emulator instead of token buckets and BandwidthRate.
   */
  netns?: boolean;
  /** With `netns`: latency, loss, host rates, … (EmulationSpec), for every host. */
  emulation?: EmulationSpec;
  /**
   * With `netns`: strongSwan IPsec between the hosts of our relays that run pctcp only (C tor
   * hops and ours on the shared link stay plain TLS), and those relays carry a per-circuit
   * connection only where a CHILD_SA covers the peer (`--pctcp-security ipsec`).
   */
  ipsec?: boolean;
}

/** One relay of a mixed network, as `status --json` lists it. */
export interface CtorRelayInfo {
  nickname: string;
  fingerprint: string;
  impl: "ctor" | "pctcp";
  address: string;
  orPort: number;
  pid: number;
  transports: ("tor" | "pctcp")[];
}

/** The state of a C tor network with ours (`state.json`). */
export interface CtorNetworkState extends Omit<NetworkState, "relays"> {
  /** Marks a mixed network. */
  kind: "ctor";
  /** Every relay, C tor's and ours. */
  relays: CtorRelayInfo[];
  /** The C tor client's control port (cookie authentication). */
  control: string;
  /** Its cookie file. */
  cookieFile: string;
  /** Tor's version. */
  torVersion: string;
  /** The network's DirAuthority lines (what a relay joining it needs). */
  dirAuthorities: string[];
}

/** Is `fp` listed with the Running flag in the consensus the client has? */
async function listedRunning(control: TorControl, fp: string): Promise<boolean> {
  const r = await control.command(`GETINFO ns/id/${fp}`).catch(() => undefined);
  if (!r) return false;
  return r.lines.some((l) => /^s .*\bRunning\b/.test(l));
}

/**
 * Brings the mixed network up (see the module doc). On any failure it stops what it started
 * and throws.
 */
export async function ctorNetworkUp(o: CtorNetworkOptions = {}): Promise<CtorNetworkState> {
  const dir = o.dir ?? "./pctcp-net";
  const ours = o.ours ?? 2;
  const log = o.log ?? nullLogger;
  if (ours < 0) throw new RangeError(`--ours must be at least 0: ${ours}`);
  await assertNoNetwork(dir);
  await Deno.mkdir(dir, { recursive: true });
  const processes: ProcessInfo[] = [];
  let net: TorTestnet | undefined;
  const state: CtorNetworkState = {
    kind: "ctor",
    socks: "",
    server: "",
    control: "",
    cookieFile: "",
    relays: [],
    processes,
    dir,
    directory: "",
    streams: "",
    started: new Date().toISOString(),
    torVersion: "",
    dirAuthorities: [],
  };
  const save = () =>
    Deno.writeTextFile(`${dir}/state.json.tmp`, JSON.stringify(state, null, 2) + "\n")
      .then(() => Deno.rename(`${dir}/state.json.tmp`, `${dir}/state.json`));
  const level = o.logLevel ?? "info";
  try {
    let step: TorHostsStep | undefined;
    const vici = new Map<string, string>();
    const ctorRelays = o.ctorRelays ?? 4;
    if (o.netns) {
      if (o.ipsec && !(await haveIpsecTools())) {
        throw new Error(
          "IPsec needs strongSwan and nftables: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins nftables",
        );
      }
      // Hosts, emulator, (watchdog,) server: the step lib/tor/emulated.ts uses for C tor.
      const hostRates: Record<string, number> = {};
      o.ctorBandwidths?.forEach((r, i) => r && (hostRates[`relay${i + 1}`] = r));
      o.oursBandwidths?.forEach((r, i) => r && (hostRates[`ours${i + 1}`] = r));
      step = await startTorHosts({
        dir,
        relays: ctorRelays,
        extraHosts: Array.from({ length: ours }, (_, i) => `ours${i + 1}`),
        hostRates,
        ...(o.emulation ? { emulation: o.emulation } : {}),
        ...(o.ownerPid ? { ownerPid: o.ownerPid } : {}),
        state,
        save,
      });
      if (o.ipsec) {
        // Between the hosts of ours that run PCTCP (all of ours with --transport pctcp): a
        // pair of ours on the shared link (an experiment's ours-tor) keeps plain TLS, as C tor.
        const oursHosts = Array.from({ length: ours }, (_, i) => i)
          .filter((i) => (o.transports?.[i] ?? o.transport ?? "tor") === "pctcp")
          .map((i) => step!.host(`ours${i + 1}`));
        if (oursHosts.length < 2) {
          throw new RangeError(
            `IPsec between our relays' hosts needs two of ours running pctcp: ${oursHosts.length}`,
          );
        }
        const before = processes.length;
        for (
          const [k, v] of await startIpsec(
            dir,
            step.hosts,
            oursHosts,
            processes,
            save,
            step.emulation.spec?.tcpCongestion,
          )
        ) {
          vici.set(k, v);
        }
        await step.killOnOwnerExit(processes.slice(before).map((p) => p.pid));
        step.emulation.notes.push(
          "IPsec: strongSwan IKEv2, kernel-libipsec user-space ESP (no kernel ESP), nftables IKE/ESP only between the hosts of our relays; C tor hops plain TLS",
        );
      }
      await save();
    } else {
      if (o.ipsec) throw new Error("IPsec between our relays' hosts needs --netns");
      // The web/file server first: the C tor network's readiness fetch goes to it.
      const slog = `${dir}/server.log`;
      await Deno.remove(slog).catch(() => {});
      const spid = await spawnSelf([
        "serve",
        "--address",
        "127.0.0.1",
        ...(o.ownerPid ? ["--exit-with", String(o.ownerPid)] : []),
      ], slog);
      processes.push({ name: "server", pid: spid, log: slog });
      await save();
      const first = await waitForFile(slog, spid, slog);
      state.server = JSON.parse(first.split("\n").find((l) => l.startsWith("{"))!).server;
    }
    const serverAddress = step?.host("server").address ?? "127.0.0.1";
    log.info(
      `network up --ctor: C tor network (${ctorRelays} relays + client) starting${
        step ? ` on emulated hosts ${step.hosts.tag}-*` : ""
      }`,
    );
    for (const d of [`${dir}/ctor`, `${dir}/ctor-retry2`]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
    net = await startTorTestnet({
      dir: `${dir}/ctor`,
      relays: ctorRelays,
      // On private 10.x hosts tor's own exit choice finds no exit that accepts only the
      // server (README, Baselines): there readiness is the pinned fetches below.
      ...(step ? {} : { readyUrl: `${state.server}/bytes/1KiB` }),
      ownerPid: o.ownerPid ?? false,
      ...(step
        ? {
          hosts: {
            relays: Array.from({ length: ctorRelays }, (_, i) => step.host(`relay${i + 1}`)),
            client: step.host("client"),
          },
          exitAccept: [`${serverAddress}:*`],
        }
        : {}),
      ...(o.ctorBandwidths && !step ? { bandwidths: o.ctorBandwidths } : {}),
      log,
    });
    for (const r of net.relays) {
      processes.push({ name: r.nickname, pid: r.pid, log: `${net.dir}/${r.nickname}/notice.log` });
      state.relays.push({
        nickname: r.nickname,
        fingerprint: r.fingerprint,
        impl: "ctor",
        address: r.address,
        orPort: r.orPort,
        pid: r.pid,
        transports: ["tor"],
      });
    }
    processes.push({
      name: "client",
      pid: net.clientPid,
      log: `${net.dir}/client/notice.log`,
    });
    state.socks = net.socks;
    state.control = net.control;
    state.cookieFile = net.cookieFile;
    state.torVersion = net.version;
    state.dirAuthorities = net.dirAuthorities;
    await save();
    // Our relays, joined through the authorities' DirAuthority lines.
    for (let i = 0; i < ours; i++) {
      const transport = o.transports?.[i] ?? o.transport ?? "tor";
      const rate = step ? undefined : o.oursBandwidths?.[i];
      const nick = `ours${i + 1}`;
      const h = step?.host(nick);
      const v = vici.get(nick);
      const rdir = `${dir}/${nick}`;
      await Deno.mkdir(rdir, { recursive: true });
      const keys = generateRelayKeys();
      await Deno.writeTextFile(`${rdir}/keys.json`, relayKeysToJson(keys), { mode: 0o600 });
      await Deno.remove(`${rdir}/port`).catch(() => {});
      const rlog = `${rdir}/relay.log`;
      const pid = await spawnSelf(
        [
          "relay",
          "--keys",
          `${rdir}/keys.json`,
          "--nickname",
          nick,
          "--address",
          h?.address ?? "127.0.0.1",
          ...launchArgs(transport, { role: "relay", ...(v ? { ipsecVici: v } : {}) }),
          "--scheduler",
          o.scheduler ?? "kist",
          "--port-file",
          `${rdir}/port`,
          "--stats-file",
          `${rdir}/stats.json`,
          "--exit-allow",
          `${serverAddress}:*`,
          ...(rate ? ["--bandwidth", String(rate)] : []),
          ...net.dirAuthorities.flatMap((l) => ["--dir-authority", l]),
          "--log-level",
          level,
          ...(o.ownerPid ? ["--exit-with", String(o.ownerPid)] : []),
        ],
        rlog,
        h ? inNamespace(h) : [],
      );
      processes.push({ name: nick, pid, log: rlog });
      await save();
      const orPort = Number(await waitForFile(`${rdir}/port`, pid, rlog));
      state.relays.push({
        nickname: nick,
        fingerprint: relayFingerprint(keys),
        impl: "pctcp",
        address: h?.address ?? "127.0.0.1",
        orPort,
        pid,
        transports: transport === "pctcp" ? ["tor", "pctcp"] : ["tor"],
      });
      await save();
    }
    // Listed: every relay of ours Running in the client's consensus.
    const mine = state.relays.filter((r) => r.impl === "pctcp");
    const control = await TorControl.connect(...hostPort(net.control));
    try {
      await control.authenticate({ cookieFile: net.cookieFile });
      const deadline = Date.now() + (o.listTimeoutMs ?? 120_000);
      for (const r of mine) {
        while (!(await listedRunning(control, r.fingerprint))) {
          if (!isAlive(r.pid)) {
            const tail = (await Deno.readTextFile(`${dir}/${r.nickname}/relay.log`).catch(() => ""))
              .split("\n").slice(-8).join("\n");
            throw new Error(`${r.nickname} exited before it was listed; its log ends:\n${tail}`);
          }
          if (Date.now() > deadline) {
            throw new Error(
              `${r.nickname} (${r.fingerprint}) is not listed Running after ${
                (o.listTimeoutMs ?? 120_000) / 1000
              } s; see ${dir}/${r.nickname}/relay.log and its stats.json "published"`,
            );
          }
          await new Promise((res) => setTimeout(res, 1000));
        }
        log.info(`network up --ctor: ${r.nickname} listed Running`);
      }
    } finally {
      await control.close();
    }
    // A fetch pinned through each of ours as middle: C guard → ours → C exit.
    const ctor = state.relays.filter((r) => r.impl === "ctor");
    for (const r of mine) {
      await pinnedFetch(state, [ctor[0]!.fingerprint, r.fingerprint, ctor[1]!.fingerprint]);
    }
    await save();
    if (state.emulation) {
      await Deno.writeTextFile(
        `${dir}/emulation.json`,
        JSON.stringify(state.emulation, null, 2) + "\n",
      );
    }
    return state;
  } catch (e) {
    await stopProcesses(processes);
    await net?.stop().catch(() => {});
    if (state.netns) await destroyHosts(state.netns);
    await Deno.remove(`${dir}/state.json`).catch(() => {});
    throw e;
  }
}

/** `HOST:PORT` split (IPv4 or a name). */
function hostPort(s: string): [string, number] {
  const i = s.lastIndexOf(":");
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

/**
 * One fetch of 50 KiB through the C client on a circuit pinned to `path` (fingerprints);
 * throws with the record's error when it fails. Retried a few times: a relay listed a moment
 * ago may not be in every relay's consensus yet.
 */
export async function pinnedFetch(
  state: Pick<CtorNetworkState, "socks" | "control" | "cookieFile" | "server">,
  path: string[],
  size = "50KiB",
): Promise<{ ms: number; bytes: number }> {
  const pinned = await PinnedCircuits.open(state.control, path, { cookieFile: state.cookieFile });
  try {
    const [host, port] = hostPort(state.socks);
    let last = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await timedFetch(`${state.server}/bytes/${size}`, {
        socksHost: host,
        socksPort: port,
        timeoutMs: 30_000,
        socksUser: `ready-${attempt}-${Date.now()}`,
      });
      if (r.outcome === "ok" && r.sha256Ok !== false) {
        return { ms: r.phases.last_byte ?? 0, bytes: r.bytes };
      }
      last = `${r.outcome}: ${r.error}`;
      await new Promise((res) => setTimeout(res, 1000));
    }
    throw new Error(`no fetch through ${path.join(" → ")}: ${last}`);
  } finally {
    await pinned.close();
  }
}
