/**
 * Hosts in network namespaces for a private network: one namespace per relay, the server and
 * the client. Two ways to link them:
 * - `emulated` (what `network up --netns` uses): no link at all here; the emulator
 *   (lib/emulate) gives each namespace one TUN device, eth0, and carries every packet between
 *   hosts, so nothing between two hosts can bypass it. The root namespace gets a TUN too (to
 *   reach the SOCKS port and the server).
 * - `bridge`: a veth per host to a bridge in a hub namespace (the root namespace joins it),
 *   links shaped with tc (tbf rate on each host's egress) by `shapeHost`.
 * The kernel here has no netem: it is probed, and what was used is reported.
 * Needs root and iproute2.
 * @module
 */

import { runCommand } from "../util/command.ts";

const sh = runCommand;

/** What the machine offers for emulation. */
export interface NetnsSupport {
  /** Network namespaces can be made (root, iproute2). */
  netns: boolean;
  /** The netem qdisc exists (delay, loss). */
  netem: boolean;
}

/** Probes namespaces and netem in a throw-away namespace. */
export async function probeNetns(): Promise<NetnsSupport> {
  const ns = `pctcp-probe-${Deno.pid}`;
  try {
    await sh(["ip", "netns", "add", ns]);
  } catch {
    return { netns: false, netem: false };
  }
  try {
    await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    const netem = await sh([
      "ip",
      "netns",
      "exec",
      ns,
      "tc",
      "qdisc",
      "add",
      "dev",
      "lo",
      "root",
      "netem",
      "delay",
      "1ms",
    ], true)
      .then(() => true, () => false);
    const ok = (await sh(["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "lo"], true))
      .includes("netem");
    return { netns: true, netem: netem && ok };
  } finally {
    await sh(["ip", "netns", "del", ns], true);
  }
}

/** One host. */
export interface NetnsHost {
  /** Host name (relay1, server, client). */
  name: string;
  /** Namespace name. */
  ns: string;
  /** Its address on the bridge. */
  address: string;
}

/** The set of hosts of one network. */
export interface NetnsHosts {
  /** Prefix of every namespace and link name. */
  tag: string;
  /** The hub namespace with the bridge ("" when the hosts are linked by the emulator). */
  hub: string;
  /** The root namespace's address on the bridge. */
  rootAddress: string;
  /** Hosts by name. */
  hosts: NetnsHost[];
}

/** A short tag (and /24) for a state folder, so two networks do not collide. */
export function netnsTag(dir: string): { tag: string; subnet: number } {
  let h = 2166136261;
  for (const c of new TextEncoder().encode(Deno.realPathSync(dir))) {
    h = Math.imul(h ^ c, 16777619) >>> 0;
  }
  return { tag: `pc${(h % 46656).toString(36).padStart(3, "0")}`, subnet: 64 + (h % 128) };
}

/**
 * Creates the hosts and (with `links: "bridge"`, the default) a hub and their veth links; with
 * `links: "emulated"` only the namespaces and addresses (the emulator attaches the devices).
 * On failure removes what it made.
 */
export async function createHosts(
  dir: string,
  names: string[],
  options: { links?: "bridge" | "emulated" } = {},
): Promise<NetnsHosts> {
  const { tag, subnet: preferred } = netnsTag(dir);
  // Another network of ours may hold that /24 on the root namespace: take the next free one.
  const used = await sh(["ip", "-4", "addr", "show"], true);
  let subnet = preferred;
  while (used.includes(`10.77.${subnet}.`)) subnet = 64 + ((subnet - 64 + 1) % 128);
  const net = `10.77.${subnet}`;
  const hub = `${tag}-hub`;
  const made: string[] = [];
  if (options.links === "emulated") {
    try {
      const hosts: NetnsHost[] = [];
      for (const [i, name] of names.entries()) {
        const ns = `${tag}-${name}`;
        await sh(["ip", "netns", "add", ns]);
        made.push(ns);
        await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
        hosts.push({ name, ns, address: `${net}.${i + 1}` });
      }
      return { tag, hub: "", rootAddress: `${net}.254`, hosts };
    } catch (e) {
      for (const ns of made.reverse()) await sh(["ip", "netns", "del", ns], true);
      throw e;
    }
  }
  try {
    await sh(["ip", "netns", "add", hub]);
    made.push(hub);
    await sh(["ip", "netns", "exec", hub, "ip", "link", "add", "br0", "type", "bridge"]);
    await sh(["ip", "netns", "exec", hub, "ip", "link", "set", "br0", "up"]);
    await sh(["ip", "netns", "exec", hub, "ip", "link", "set", "lo", "up"]);
    const hosts: NetnsHost[] = [];
    for (const [i, name] of names.entries()) {
      const ns = `${tag}-${name}`;
      await sh(["ip", "netns", "add", ns]);
      made.push(ns);
      const a = `${tag}h${i}`, b = `${tag}b${i}`;
      await sh([
        "ip",
        "link",
        "add",
        a,
        "netns",
        ns,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        hub,
      ]);
      await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
      await sh(["ip", "netns", "exec", ns, "ip", "link", "set", a, "name", "eth0"]);
      const address = `${net}.${i + 1}`;
      await sh(["ip", "netns", "exec", ns, "ip", "addr", "add", `${address}/24`, "dev", "eth0"]);
      await sh(["ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"]);
      await sh(["ip", "netns", "exec", hub, "ip", "link", "set", b, "master", "br0"]);
      await sh(["ip", "netns", "exec", hub, "ip", "link", "set", b, "up"]);
      hosts.push({ name, ns, address });
    }
    // The root namespace on the bridge, to reach the client's SOCKS port and the server.
    const r = `${tag}r`, rb = `${tag}rb`;
    await sh(["ip", "link", "add", r, "type", "veth", "peer", "name", rb, "netns", hub]);
    const rootAddress = `${net}.254`;
    await sh(["ip", "addr", "add", `${rootAddress}/24`, "dev", r]);
    await sh(["ip", "link", "set", r, "up"]);
    await sh(["ip", "netns", "exec", hub, "ip", "link", "set", rb, "master", "br0"]);
    await sh(["ip", "netns", "exec", hub, "ip", "link", "set", rb, "up"]);
    return { tag, hub, rootAddress, hosts };
  } catch (e) {
    for (const ns of made.reverse()) await sh(["ip", "netns", "del", ns], true);
    await sh(["ip", "link", "del", `${tag}r`], true);
    throw e;
  }
}

/** Shapes a host's egress with tbf at `rate` bytes/s (the link it sends on). */
export async function shapeHost(host: NetnsHost, rate: number): Promise<string> {
  const kbit = Math.max(8, Math.round((rate * 8) / 1000));
  const burst = Math.max(16_000, Math.round(rate / 50));
  await sh([
    "ip",
    "netns",
    "exec",
    host.ns,
    "tc",
    "qdisc",
    "replace",
    "dev",
    "eth0",
    "root",
    "tbf",
    "rate",
    `${kbit}kbit`,
    "burst",
    String(burst),
    "latency",
    "100ms",
  ]);
  return `tbf rate ${kbit}kbit burst ${burst} latency 100ms on ${host.name}`;
}

/** Removes every namespace and link of a network (idempotent). */
export async function destroyHosts(
  h: Pick<NetnsHosts, "tag" | "hub"> & { hosts: { ns: string }[] },
): Promise<void> {
  for (const x of h.hosts) await sh(["ip", "netns", "del", x.ns], true);
  if (h.hub) await sh(["ip", "netns", "del", h.hub], true);
  await sh(["ip", "link", "del", `${h.tag}r`], true);
}

/** The command prefix that runs a program inside a host's namespace. */
export function inNamespace(host: NetnsHost): string[] {
  return ["ip", "netns", "exec", host.ns];
}
