/**
 * The user-space emulator process: one TUN device per host (moved into the host's namespace
 * and named eth0 there, so it is the host's only way out), every packet read from a host's
 * device goes through the link model and is written to the destination host's device when
 * due. One loop, one timer: it sleeps in `ppoll` on the main thread (timer slack 1 µs) until a
 * device is readable or the next packet is due (no timer per packet), reads every device until
 * EAGAIN, and writes what is due; every 20 ms it yields to the event loop (signals, files). Run it as its own process (`pctcp network emulate`), so a busy launcher cannot delay
 * packets and "emulator killed" is a real failure: the devices vanish with it.
 * @module
 */

import { runCommand } from "../util/command.ts";
import type { ResolvedNetwork } from "./config.ts";
import { LinkModel } from "./model.ts";
import {
  closeTun,
  openTun,
  preciseTimers,
  readPacket,
  type Tun,
  TunPoller,
  writePacket,
} from "./tun.ts";

/** One host the emulator attaches. */
export interface EmulatorHost {
  /** Host name (as in the resolved network, same order). */
  name: string;
  /** Its namespace; absent for the root namespace. */
  ns?: string;
  /** Its IPv4 address. */
  address: string;
  /** TUN name at creation (unique on the machine, ≤ 15 bytes); eth0 inside a namespace. */
  device: string;
}

/** What the emulator process reads (written by the launcher to a file). */
export interface EmulatorConfig {
  /** Hosts, index-aligned with `network.hosts`. */
  hosts: EmulatorHost[];
  /** Prefix length of the hosts' subnet. */
  prefixLength: number;
  /** The resolved network. */
  network: ResolvedNetwork;
  /** Folder for `ready` and `stats.json`. */
  stateDir: string;
  /** Exit when this process is gone. */
  ownerPid?: number;
  /** Device MTU (default 1500). */
  mtu?: number;
}

/** Counters the emulator writes to stats.json every second. */
export interface EmulatorStats {
  /** When written. */
  time: string;
  /** Emulator pid. */
  pid: number;
  /** Packets read from devices. */
  read: number;
  /** Non-IPv4 or unknown-destination packets dropped. */
  unroutable: number;
  /** Writes the kernel refused. */
  writeErrors: number;
  /** Model counters. */
  model: LinkModel<Uint8Array>["counters"];
  /** Per host: packets and bytes read from it and written to it. */
  hosts: Record<string, { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number }>;
  /** Late deliveries: p50/p99/max of (write time − due time), ms, over the last second. */
  lateMs: { p50: number; p99: number; max: number };
}

function ipv4(a: string): number {
  const p = a.split(".").map(Number);
  return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0);
}

/** Creates the devices and gives each host its address; on failure closes what it opened. */
async function attach(c: EmulatorConfig): Promise<Tun[]> {
  const tuns: Tun[] = [];
  const mtu = String(c.mtu ?? 1500);
  try {
    for (const h of c.hosts) {
      const t = openTun(h.device);
      tuns.push(t);
      if (h.ns) {
        await runCommand(["ip", "link", "set", h.device, "netns", h.ns]);
        const ip = ["ip", "-n", h.ns];
        await runCommand([...ip, "link", "set", h.device, "name", "eth0"]);
        await runCommand([...ip, "addr", "add", `${h.address}/${c.prefixLength}`, "dev", "eth0"]);
        await runCommand([...ip, "link", "set", "eth0", "mtu", mtu, "up"]);
      } else {
        await runCommand(["ip", "addr", "add", `${h.address}/${c.prefixLength}`, "dev", h.device]);
        await runCommand(["ip", "link", "set", h.device, "mtu", mtu, "up"]);
      }
    }
    return tuns;
  } catch (e) {
    for (const t of tuns) closeTun(t);
    throw e;
  }
}

/**
 * Runs the emulator until SIGTERM/SIGINT, the owner's exit or a device failure. Writes
 * `stateDir/ready` once every host is attached and `stateDir/stats.json` every second.
 */
export async function runEmulator(c: EmulatorConfig): Promise<string> {
  const tuns = await attach(c);
  const model = new LinkModel<Uint8Array>(c.network);
  const byAddress = new Map<number, number>(c.hosts.map((h, i) => [ipv4(h.address), i]));
  const poller = new TunPoller(tuns);
  let stop = "";
  const onSignal = (s: string) => () => (stop ||= s);
  const sigterm = onSignal("SIGTERM"), sigint = onSignal("SIGINT");
  Deno.addSignalListener("SIGTERM", sigterm);
  Deno.addSignalListener("SIGINT", sigint);
  const stats: EmulatorStats = {
    time: "",
    pid: Deno.pid,
    read: 0,
    unroutable: 0,
    writeErrors: 0,
    model: model.counters,
    hosts: Object.fromEntries(
      c.hosts.map((h) => [h.name, { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 }]),
    ),
    lateMs: { p50: 0, p99: 0, max: 0 },
  };
  const perHost = c.hosts.map((h) => stats.hosts[h.name]!);
  let late: number[] = [];
  let now = performance.now();
  // Packet buffers are reused (no allocation per packet, so less garbage collection).
  const slotSize = Math.max(2048, (c.mtu ?? 1500) + 64);
  const free: Uint8Array[] = [];
  const release = (b: Uint8Array) => void free.push(b);
  const deliver = (dst: number, packet: Uint8Array, _src: number, size: number) => {
    if (!writePacket(tuns[dst]!, packet, size)) stats.writeErrors++;
    else {
      perHost[dst]!.txPackets++;
      perHost[dst]!.txBytes += size;
    }
    release(packet);
  };
  // Wake this much before a packet is due and poll (without sleeping) until it is: a sleep's
  // wake-up can be late by the scheduler's delay on a busy machine.
  const wakeEarlyMs = 0.2;
  const yieldEveryMs = 20;
  let nextHousekeeping = now;
  let nextYield = now + yieldEveryMs;
  preciseTimers();
  await Deno.writeTextFile(`${c.stateDir}/ready`, `${Deno.pid}\n`);
  try {
    while (!stop) {
      now = performance.now();
      // Deliver what is due; note how late the first due packet is.
      const due = model.nextTime();
      if (due !== undefined && due <= now) {
        late.push(now - due);
        model.poll(now, deliver, release);
      }
      if (now >= nextYield) {
        // Let signal listeners run (the loop blocks the event loop between yields). An async
        // FFI call, not a timer: nested zero timers are clamped to 4 ms.
        nextYield = now + yieldEveryMs;
        await poller.wait(0);
        if (stop) break;
      }
      if (now >= nextHousekeeping) {
        nextHousekeeping = now + 1000;
        if (c.ownerPid) {
          try {
            Deno.statSync(`/proc/${c.ownerPid}`);
          } catch {
            stop = `owner ${c.ownerPid} is gone`;
            break;
          }
        }
        late.sort((a, b) => a - b);
        const q = (p: number) => Number((late[Math.floor(p * (late.length - 1))] ?? 0).toFixed(3));
        stats.lateMs = { p50: q(0.5), p99: q(0.99), max: q(1) };
        late = [];
        stats.time = new Date().toISOString();
        Deno.writeTextFileSync(`${c.stateDir}/stats.json.tmp`, JSON.stringify(stats));
        Deno.renameSync(`${c.stateDir}/stats.json.tmp`, `${c.stateDir}/stats.json`);
      }
      const next = model.nextTime();
      const cap = Math.max(0, nextYield - now);
      const wait = next === undefined ? cap : Math.min(cap, next - now - wakeEarlyMs);
      const r = poller.waitSync(Math.max(0, wait));
      if (r.broken.length) {
        stop = `device ${tuns[r.broken[0]!]!.name} of ${c.hosts[r.broken[0]!]!.name} failed`;
        break;
      }
      if (r.ready === 0) continue;
      // Read every device until EAGAIN (batches per wake-up).
      const t = performance.now();
      for (let i = 0; i < tuns.length; i++) {
        for (;;) {
          const slot = free.pop() ?? new Uint8Array(slotSize);
          const n = readPacket(tuns[i]!, slot);
          if (n <= 0) {
            release(slot);
            break;
          }
          stats.read++;
          perHost[i]!.rxPackets++;
          perHost[i]!.rxBytes += n;
          // IPv4 only: version 4, destination at bytes 16..19.
          const dst = n >= 20 && slot[0]! >> 4 === 4
            ? byAddress.get(
              ((slot[16]! << 24) | (slot[17]! << 16) | (slot[18]! << 8) | slot[19]!) >>> 0,
            )
            : undefined;
          if (dst === undefined || dst === i) {
            stats.unroutable++;
            release(slot);
            continue;
          }
          if (!model.send(t, i, dst, n, slot)) release(slot);
        }
      }
    }
  } finally {
    Deno.removeSignalListener("SIGTERM", sigterm);
    Deno.removeSignalListener("SIGINT", sigint);
    for (const x of tuns) closeTun(x);
  }
  return stop;
}
