/**
 * IPsec between relay hosts in network namespaces (strongSwan, IKEv2 with a pre-shared key
 * per host pair made at set-up): one charon per relay host with a private /run (its pid file
 * path is fixed), user-space ESP through kernel-libipsec (this kernel has no ESP), a CHILD_SA
 * per pair in tunnel mode with UDP encapsulation, started at once. An nftables rule in each
 * relay namespace lets only IKE/ESP (UDP 500/4500) leave for another relay host on the wire,
 * so a missing SA (IPsec fails open) drops packets instead of sending them in the clear.
 * Lessons from FACTS.md: kdf plugin, kernel-libipsec before kernel-netlink, allow_peer_ts,
 * the fwmark pair, encap = yes, start_action = start.
 * @module
 */

import { runCommand } from "../util/command.ts";

import type { NetnsHost } from "./netns.ts";

/** A relay host's IPsec daemon. */
export interface IpsecHost {
  /** Relay host name. */
  name: string;
  /** The VICI socket (`swanctl --uri`). */
  vici: string;
  /** Folder of its configuration and log. */
  dir: string;
}

const sh = runCommand;

/** True if strongSwan's charon, swanctl and nft are installed. */
export async function haveIpsecTools(): Promise<boolean> {
  for (const p of ["/usr/lib/ipsec/charon", "/usr/sbin/swanctl", "/usr/sbin/nft"]) {
    try {
      await Deno.stat(p);
    } catch {
      return false;
    }
  }
  return true;
}

function strongswanConf(dir: string): string {
  return `charon {
  load_modular = no
  load = random nonce aes sha1 sha2 hmac gcm kdf curve25519 openssl pem pkcs1 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  plugins {
    kernel-libipsec { allow_peer_ts = yes }
    kernel-netlink { fwmark = !0x4500 }
    socket-default { fwmark = 0x4500 }
    vici { socket = unix://${dir}/charon.vici }
  }
}
`;
}

function swanctlConf(
  me: NetnsHost,
  peers: NetnsHost[],
  secret: (a: string, b: string) => string,
): string {
  const conns = peers.map((p) =>
    `  to-${p.name} {
    version = 2
    local_addrs = ${me.address}
    remote_addrs = ${p.address}
    encap = yes
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${me.address}
    }
    remote {
      auth = psk
      id = ${p.address}
    }
    children {
      to-${p.name} {
        local_ts = ${me.address}/32
        remote_ts = ${p.address}/32
        mode = tunnel
        esp_proposals = aes256gcm16
        start_action = start
      }
    }
  }`
  ).join("\n");
  const secrets = peers.map((p) =>
    `  ike-${p.name} {
    id-a = ${me.address}
    id-b = ${p.address}
    secret = "${secret(me.address, p.address)}"
  }`
  ).join("\n");
  return `connections {\n${conns}\n}\nsecrets {\n${secrets}\n}\n`;
}

/** The nftables rules of a relay host: to other relay hosts, only IKE/ESP on the wire. */
export function nftRules(peers: NetnsHost[]): string {
  const set = peers.map((p) => p.address).join(", ");
  return `table inet pctcp {
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "eth0" ip daddr { ${set} } udp dport { 500, 4500 } counter accept
    oifname "eth0" ip daddr { ${set} } counter drop
  }
}
`;
}

/**
 * Writes the configuration of every relay host and returns the command that starts its
 * charon (to be spawned and tracked by pid like every other process of the network).
 */
export async function prepareIpsec(
  base: string,
  relays: NetnsHost[],
): Promise<{ host: NetnsHost; ipsec: IpsecHost; command: string[] }[]> {
  const keys = new Map<string, string>();
  const secret = (a: string, b: string) => {
    const k = [a, b].sort().join("|");
    if (!keys.has(k)) {
      keys.set(k, btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))));
    }
    return keys.get(k)!;
  };
  const out = [];
  for (const h of relays) {
    const dir = `${Deno.realPathSync(base)}/${h.name}/ipsec`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(`${dir}/strongswan.conf`, strongswanConf(dir));
    const peers = relays.filter((p) => p !== h);
    await Deno.writeTextFile(`${dir}/swanctl.conf`, swanctlConf(h, peers, secret), { mode: 0o600 });
    await Deno.writeTextFile(`${dir}/nft.conf`, nftRules(peers));
    await Deno.remove(`${dir}/charon.vici`).catch(() => {});
    out.push({
      host: h,
      ipsec: { name: h.name, vici: `${dir}/charon.vici`, dir },
      command: [
        "ip",
        "netns",
        "exec",
        h.ns,
        "unshare",
        "-m",
        "sh",
        "-c",
        `mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=${dir}/strongswan.conf exec /usr/lib/ipsec/charon`,
      ],
    });
  }
  return out;
}

/** Loads the connections once charon's VICI socket is up, and installs the nft rules. */
export async function loadIpsec(
  host: NetnsHost,
  ipsec: IpsecHost,
  timeoutMs = 15_000,
): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await Deno.stat(ipsec.vici);
      break;
    } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`charon of ${host.name} did not start (no ${ipsec.vici})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await sh(["ip", "netns", "exec", host.ns, "nft", "-f", `${ipsec.dir}/nft.conf`]);
  await sh([
    "ip",
    "netns",
    "exec",
    host.ns,
    "swanctl",
    "--load-all",
    "--file",
    `${ipsec.dir}/swanctl.conf`,
    "--uri",
    `unix://${ipsec.vici}`,
  ]);
}

/** `swanctl --list-sas` of a host (empty text when charon is gone). */
export async function listSas(host: NetnsHost, ipsec: IpsecHost): Promise<string> {
  return await sh([
    "ip",
    "netns",
    "exec",
    host.ns,
    "swanctl",
    "--list-sas",
    "--uri",
    `unix://${ipsec.vici}`,
  ], true);
}

/** The nft counters of a relay host: packets to relay hosts allowed (IKE/ESP) and dropped. */
export async function nftCounters(host: NetnsHost): Promise<{ ikeEsp: number; dropped: number }> {
  const text = await sh(
    ["ip", "netns", "exec", host.ns, "nft", "list", "table", "inet", "pctcp"],
    true,
  );
  const counts = [...text.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
  return { ikeEsp: counts[0] ?? 0, dropped: counts[1] ?? 0 };
}
