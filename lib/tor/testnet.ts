/**
 * A private network of real Tor (Debian's `tor`) on 127.0.0.1, or with every node in a network
 * namespace of its own (`hosts`, see lib/tor/emulated.ts): directory authorities that are also
 * exit relays, and one client with a SocksPort and a ControlPort (cookie authentication). TestingTorNetwork with chutney's rapid-bootstrap settings; it waits
 * until the client has bootstrapped and a circuit works, and always stops what it started.
 * @module
 */

import { TorControl } from "./control.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import { timedFetch } from "../measure/fetch.ts";

/** Options of the private Tor network. */
export interface TorTestnetOptions {
  /** Folder for data directories (created). */
  dir: string;
  /** Relays, each also a directory authority (default 4: with only 3, tor sometimes finds no
   * node for a hop and keeps failing for minutes). */
  relays?: number;
  /** Exit policy entries for the relays (default: accept 127.0.0.1:*). */
  exitAccept?: string[];
  /** Per-relay BandwidthRate/BandwidthBurst in bytes (index = relay). */
  bandwidths?: number[];
  /** The tor binary. */
  tor?: string;
  /** Start afresh this many times in all before giving up (default 2). */
  attempts?: number;
  /** Give up one attempt after this many ms (default 90 000). */
  bootstrapTimeoutMs?: number;
  /** A URL on this machine that must be fetched through the client before the network counts
   * as ready (a consensus with exits and a working circuit, not only "Bootstrapped 100%"). */
  readyUrl?: string;
  /** Extra torrc lines for every node. */
  extraTorrc?: string[];
  /** Logger. */
  log?: Logger;
  /** Also write each node's info-level log (`info.log` beside `notice.log`; large). */
  infoLogs?: boolean;
  /**
   * Every tor exits when this process is gone (torrc `__OwningControllerProcess`; default this
   * process). `false`: none, for a network that outlives the command that started it (`pctcp
   * network up --ctor`; `network down` stops it by pid).
   */
  ownerPid?: number | false;
  /**
   * Run every node on a host of its own (network namespaces): relay i on `hosts.relays[i]`,
   * the client on `hosts.client`. Each binds to its host's address (fixed ports: a namespace
   * is a machine of its own); the client's SOCKS and control ports listen on its address, so
   * the root namespace reaches them over the emulated link. Default: everything on 127.0.0.1.
   */
  hosts?: { relays: TorHost[]; client: TorHost };
}

/** A host (network namespace) a tor node runs on. */
export interface TorHost {
  /** Namespace name (`ip netns exec NS`). */
  ns: string;
  /** Its IPv4 address. */
  address: string;
}

/** Fixed ports of nodes on hosts of their own. */
const HOST_PORTS = { or: 5000, dir: 7000, socks: 9050, control: 9051 } as const;

/**
 * Torrc lines for nodes on private addresses (10.0.0.0/8) of their own. TestingTorNetwork
 * implies most of them (tor's config.c testing defaults); set explicitly so that a private
 * network never depends on that list: relays may extend to and publish private addresses, and
 * a client builds paths whose relays share a /16.
 */
export const PRIVATE_HOSTS_TORRC: string[] = [
  "ExtendAllowPrivateAddresses 1",
  "DirAllowPrivateAddresses 1",
  "EnforceDistinctSubnets 0",
  "AssumeReachable 1",
  "ClientDNSRejectInternalAddresses 0",
  "ClientRejectInternalAddresses 0",
];

/** One relay of the network. */
export interface TorRelayInfo {
  nickname: string;
  fingerprint: string;
  address: string;
  orPort: number;
  dirPort: number;
  pid: number;
}

/** A running private Tor network. */
export interface TorTestnet {
  /** Client SOCKS address HOST:PORT. */
  socks: string;
  /** Client control address HOST:PORT. */
  control: string;
  /** Client control cookie file. */
  cookieFile: string;
  /** Relays. */
  relays: TorRelayInfo[];
  /** Tor's version string. */
  version: string;
  /** The torrc `DirAuthority` lines of the network (every relay is also an authority). */
  dirAuthorities: string[];
  /** The client's process id. */
  clientPid: number;
  /** The data directories' folder (each node's notice.log is in `DIR/NICKNAME/`). */
  dir: string;
  /** Stops every tor process (idempotent). */
  stop(): Promise<void>;
}

/** The Testing* options chutney uses for a rapidly bootstrapping network. */
export const TESTING_TORRC: string[] = [
  "TestingTorNetwork 1",
  "AssumeReachable 1",
  "PathsNeededToBuildCircuits 0.25",
  "TestingDirAuthVoteExit *",
  "TestingDirAuthVoteGuard *",
  "TestingDirAuthVoteHSDir *",
  "TestingMinExitFlagThreshold 0",
  "V3AuthNIntervalsValid 2",
  "EnforceDistinctSubnets 0",
  "Sandbox 0",
  "RunAsDaemon 0",
  "SafeLogging 0",
  "ShutdownWaitLength 0",
];

/** Every tor exits when the process that started it is gone, even if that one was killed. */
function ownerTorrc(owner: number | false | undefined): string[] {
  return owner === false ? [] : [`__OwningControllerProcess ${owner ?? Deno.pid}`];
}

const AUTHORITY_TORRC = [
  "AuthoritativeDirectory 1",
  "V3AuthoritativeDirectory 1",
  "TestingV3AuthInitialVotingInterval 10",
  "TestingV3AuthInitialVoteDelay 2",
  "TestingV3AuthInitialDistDelay 2",
  "V3AuthVotingInterval 20",
  "V3AuthVoteDelay 4",
  "V3AuthDistDelay 4",
];

/** True if Debian's tor is installed. */
export async function haveTor(tor = "tor"): Promise<boolean> {
  try {
    return (await new Deno.Command(tor, { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/**
 * A free TCP port on 127.0.0.1, as the OS gives it (bound to port 0, then released). Another
 * process may take it before tor binds it (a race): only the authorities use it, whose ports
 * every torrc must name before any starts; a lost race fails that attempt, and
 * {@linkcode startTorTestnet} retries with fresh ports. The client takes `auto` ports instead.
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The ports tor chose for the client's `auto` listeners (ControlPortWriteToFile, GETINFO). */
async function clientPorts(
  cdir: string,
  address: string,
  timeoutMs: number,
): Promise<{ socksPort: number; controlPort: number }> {
  const deadline = Date.now() + timeoutMs;
  const esc = address.replace(/\./g, "\\.");
  let controlPort = 0;
  while (!controlPort) {
    const text = await Deno.readTextFile(`${cdir}/control.port`).catch(() => "");
    controlPort = Number(new RegExp(`PORT=${esc}:(\\d+)`).exec(text)?.[1] ?? 0);
    if (controlPort) break;
    if (Date.now() > deadline) throw new Error("the tor client wrote no control port file");
    await new Promise((r) => setTimeout(r, 100));
  }
  const control = await TorControl.connect(address, controlPort);
  try {
    await control.authenticate({ cookieFile: `${cdir}/control_auth_cookie` });
    const reply = (await control.command("GETINFO net/listeners/socks")).lines.join(" ");
    const socksPort = Number(new RegExp(`${esc}:(\\d+)`).exec(reply)?.[1] ?? 0);
    if (!socksPort) throw new Error(`no SOCKS listener in: ${reply}`);
    return { socksPort, controlPort };
  } finally {
    await control.close();
  }
}

/** Starts the network; on any failure it stops what it started and throws. */
export async function startTorTestnet(o: TorTestnetOptions): Promise<TorTestnet> {
  // A fresh TestingTorNetwork sometimes settles on a consensus it cannot build paths from for
  // minutes; a second try with new keys is faster than waiting it out.
  const attempts = o.attempts ?? 2;
  for (let i = 1;; i++) {
    try {
      return await startOnce(i === 1 ? o : { ...o, dir: `${o.dir}-retry${i}` });
    } catch (e) {
      if (i >= attempts) throw e;
      (o.log ?? nullLogger).warn(
        `tor testnet attempt ${i} failed, retrying: ${(e as Error).message}`,
      );
    }
  }
}

async function startOnce(o: TorTestnetOptions): Promise<TorTestnet> {
  const tor = o.tor ?? "tor";
  const log = o.log ?? nullLogger;
  const n = o.relays ?? 4;
  const hosts = o.hosts;
  if (hosts && hosts.relays.length < n) {
    throw new RangeError(`${n} relays need ${n} hosts, got ${hosts.relays.length}`);
  }
  const addressOf = (i: number) => hosts?.relays[i]?.address ?? "127.0.0.1";
  const clientAddress = hosts?.client.address ?? "127.0.0.1";
  // A node's command: in its namespace when on hosts (`ip netns exec` execs tor: same pid).
  const torCommand = (torrc: string, host?: TorHost) =>
    host
      ? new Deno.Command("ip", {
        args: ["netns", "exec", host.ns, tor, "-f", torrc],
        stdout: "null",
        stderr: "null",
        stdin: "null",
      })
      : new Deno.Command(tor, {
        args: ["-f", torrc],
        stdout: "null",
        stderr: "null",
        stdin: "null",
      });
  const version = (await run(tor, ["--version"])).split("\n")[0]!.trim();
  await Deno.mkdir(o.dir, { recursive: true });
  const children: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const c of children) {
      try {
        c.kill("SIGTERM");
      } catch { /* gone */ }
    }
    // A tor that logged "exiting cleanly" and then hung in a futex wait was seen here (the
    // suite waited 7 minutes for it): SIGKILL whatever is still running after 5 s.
    const all = Promise.allSettled(children.map((c) => c.status));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), 5000));
    if ((await Promise.race([all, late])) === "late") {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await all;
    }
    clearTimeout(timer);
    children.length = 0;
  };
  try {
    const nodes = [];
    for (let i = 0; i < n; i++) {
      const nickname = `tor${i + 1}`;
      const dir = `${o.dir}/${nickname}`;
      await Deno.mkdir(`${dir}/keys`, { recursive: true, mode: 0o700 });
      await Deno.chmod(dir, 0o700);
      const orPort = hosts ? HOST_PORTS.or : freePort();
      const dirPort = hosts ? HOST_PORTS.dir : freePort();
      const address = addressOf(i);
      // Authority keys (tor-gencert, empty passphrase) and the relay identity.
      await run("tor-gencert", [
        "--create-identity-key",
        "-m",
        "12",
        "-a",
        `${address}:${dirPort}`,
        "-i",
        `${dir}/keys/authority_identity_key`,
        "-s",
        `${dir}/keys/authority_signing_key`,
        "-c",
        `${dir}/keys/authority_certificate`,
        "--passphrase-fd",
        "0",
      ], "\n");
      await run(tor, [
        "--quiet",
        "--ignore-missing-torrc",
        "--list-fingerprint",
        "--orport",
        "1",
        "--dirserver",
        "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
        "--datadirectory",
        dir,
      ]);
      const cert = await Deno.readTextFile(`${dir}/keys/authority_certificate`);
      const v3ident = /^fingerprint ([0-9A-F]{40})$/m.exec(cert)![1]!;
      const fingerprint = (await Deno.readTextFile(`${dir}/fingerprint`)).trim().split(/\s+/)[1]!;
      nodes.push({ nickname, dir, address, orPort, dirPort, v3ident, fingerprint });
    }
    const dirAuthorities = nodes.map((x) =>
      `DirAuthority ${x.nickname} orport=${x.orPort} no-v2 v3ident=${x.v3ident} ${x.address}:${x.dirPort} ${x.fingerprint}`
    );
    const relays: TorRelayInfo[] = [];
    for (const [i, x] of nodes.entries()) {
      const bw = o.bandwidths?.[i];
      const torrc = [
        ...TESTING_TORRC,
        ...ownerTorrc(o.ownerPid),
        ...AUTHORITY_TORRC,
        ...(hosts ? PRIVATE_HOSTS_TORRC : []),
        ...dirAuthorities,
        ...(o.extraTorrc ?? []),
        `Nickname ${x.nickname}`,
        `DataDirectory ${x.dir}`,
        `Log notice file ${x.dir}/notice.log`,
        ...(o.infoLogs ? [`Log info file ${x.dir}/info.log`] : []),
        `Address ${x.address}`,
        `ORPort ${x.address}:${x.orPort}`,
        `DirPort ${x.address}:${x.dirPort}`,
        "SocksPort 0",
        "ExitRelay 1",
        ...(o.exitAccept ?? ["127.0.0.1:*"]).map((a) => `ExitPolicy accept ${a}`),
        "ExitPolicy reject *:*",
        ...(bw ? [`BandwidthRate ${bw} bytes`, `BandwidthBurst ${bw} bytes`] : []),
        `ContactInfo pctcp-testnet`,
      ];
      await Deno.writeTextFile(`${x.dir}/torrc`, torrc.join("\n") + "\n");
      const child = torCommand(`${x.dir}/torrc`, hosts?.relays[i]).spawn();
      children.push(child);
      // A network that outlives this process must not keep its event loop alive.
      if (o.ownerPid === false) child.unref();
      relays.push({
        nickname: x.nickname,
        fingerprint: x.fingerprint,
        address: x.address,
        orPort: x.orPort,
        dirPort: x.dirPort,
        pid: child.pid,
      });
    }
    const cdir = `${o.dir}/client`;
    await Deno.mkdir(cdir, { recursive: true, mode: 0o700 });
    await Deno.chmod(cdir, 0o700);
    await Deno.writeTextFile(
      `${cdir}/torrc`,
      [
        ...TESTING_TORRC,
        ...ownerTorrc(o.ownerPid),
        ...(hosts ? PRIVATE_HOSTS_TORRC : []),
        ...dirAuthorities,
        ...(o.extraTorrc ?? []),
        "Nickname client",
        `DataDirectory ${cdir}`,
        `Log notice file ${cdir}/notice.log`,
        ...(o.infoLogs ? [`Log info file ${cdir}/info.log`] : []),
        // Ports from the OS, taken by tor itself (no bind-release race); read back below.
        `SocksPort ${clientAddress}:${hosts ? HOST_PORTS.socks : "auto"} IsolateSOCKSAuth`,
        `ControlPort ${clientAddress}:${hosts ? HOST_PORTS.control : "auto"}`,
        `ControlPortWriteToFile ${cdir}/control.port`,
        "CookieAuthentication 1",
        "ORPort 0",
        "DirPort 0",
        "ClientUseIPv6 0",
        // Full descriptors: a microdescriptor policy summary ignores private addresses, so
        // exits that only accept 127.0.0.1 would look like they reject everything.
        "UseMicrodescriptors 0",
      ].join("\n") + "\n",
    );
    const client = torCommand(`${cdir}/torrc`, hosts?.client).spawn();
    children.push(client);
    if (o.ownerPid === false) client.unref();
    log.info(`tor testnet: ${n} relays and a client starting in ${o.dir}`);
    const { socksPort, controlPort } = await clientPorts(
      cdir,
      clientAddress,
      o.bootstrapTimeoutMs ?? 90_000,
    );
    // Bootstrapped when the client's log says so.
    const deadline = Date.now() + (o.bootstrapTimeoutMs ?? 90_000);
    for (;;) {
      const text = await Deno.readTextFile(`${cdir}/notice.log`).catch(() => "");
      if (text.includes("Bootstrapped 100%")) break;
      if (Date.now() > deadline) {
        const last = text.trim().split("\n").slice(-3).join("\n");
        throw new Error(
          `the private Tor network did not bootstrap in time; client log ends:\n${last}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // Every relay in the client's consensus: "Bootstrapped 100%" needs only enough of them,
    // and a pinned path through one the client has not yet listed fails with 552 "No such
    // router" (seen under load).
    await waitForRelays(
      clientAddress,
      controlPort,
      `${cdir}/control_auth_cookie`,
      relays,
      deadline,
    );
    if (o.readyUrl) {
      for (let i = 0;; i++) {
        const r = await timedFetch(o.readyUrl, {
          socksHost: clientAddress,
          socksPort,
          timeoutMs: 10_000,
          socksUser: "ready",
        });
        if (r.outcome === "ok") break;
        if (Date.now() > deadline) {
          throw new Error(`the private Tor network carries no traffic: ${r.outcome}: ${r.error}`);
        }
        await new Promise((res) => setTimeout(res, 500));
      }
    }
    return {
      socks: `${clientAddress}:${socksPort}`,
      control: `${clientAddress}:${controlPort}`,
      clientPid: client.pid,
      dir: o.dir,
      cookieFile: `${cdir}/control_auth_cookie`,
      relays,
      version,
      dirAuthorities,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Waits until the client's consensus lists every relay (GETINFO ns/id/FP answers 250). */
async function waitForRelays(
  address: string,
  controlPort: number,
  cookieFile: string,
  relays: TorRelayInfo[],
  deadline: number,
): Promise<void> {
  const control = await TorControl.connect(address, controlPort);
  try {
    await control.authenticate({ cookieFile });
    let missing = relays.map((r) => r.fingerprint);
    for (;;) {
      const still: string[] = [];
      for (const fp of missing) {
        const r = await control.command(`GETINFO ns/id/${fp}`).catch(() => undefined);
        if (!r || r.code !== 250) still.push(fp);
      }
      missing = still;
      if (!missing.length) return;
      if (Date.now() > deadline) {
        throw new Error(`the tor client's consensus still lacks relays: ${missing.join(", ")}`);
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  } finally {
    await control.close();
  }
}
