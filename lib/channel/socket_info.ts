/**
 * The kernel's view of a TCP socket, as KIST reads it (tor's scheduler_kist.c,
 * update_socket_info_impl): `getsockopt(TCP_INFO)` for the congestion window, unacked
 * segments and MSS, `ioctl(SIOCOUTQNSD)` for the bytes not yet sent, and `ioctl(SIOCOUTQ)`
 * for everything still in the send queue (so unacked bytes = outq − notsent).
 *
 * Deno gives no file descriptor for a `Deno.TcpConn`, so the descriptor is found once per
 * socket: the socket's (local, remote) address pair is looked up in `/proc/self/net/tcp`
 * (and `tcp6`) for its inode, and `/proc/self/fd/*` for the link `socket:[INODE]`. The calls
 * go through FFI to libc (needs `--allow-ffi`; the relay runs with `-A`). Linux only.
 * @module
 */

/** What the kernel says about one TCP socket. */
export interface TcpSocketState {
  /** Congestion window, segments (tcpi_snd_cwnd). */
  cwnd: number;
  /** Segments sent and not yet acknowledged (tcpi_unacked). */
  unacked: number;
  /** Sender MSS, bytes (tcpi_snd_mss). */
  mss: number;
  /** Bytes in the send queue not yet sent (SIOCOUTQNSD). */
  notsent: number;
  /** Bytes in the send queue, sent or not (SIOCOUTQ); outq − notsent are unacked bytes. */
  outq: number;
  /** Smoothed RTT, µs (tcpi_rtt). */
  rttUs: number;
}

/** A TCP endpoint. */
export interface TcpEndpoint {
  /** IPv4 or IPv6 address as Deno prints it. */
  hostname: string;
  /** Port. */
  port: number;
}

const SOL_TCP = 6;
const TCP_INFO = 11;
const SIOCOUTQ = 0x5411n; // = TIOCOUTQ
const SIOCOUTQNSD = 0x894bn;
/** Offsets in struct tcp_info (linux/tcp.h). */
const OFF = { mss: 16, unacked: 24, rtt: 68, cwnd: 80 } as const;
const TCP_INFO_LEN = 232;

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;
let libc: Libc | null | undefined;

function openLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS) : null;
  } catch {
    libc = null; // no --allow-ffi, or no glibc
  }
  return libc;
}

/** True when this process can read kernel socket state (Linux, FFI allowed, libc found). */
export function socketInfoAvailable(): boolean {
  return openLibc() !== null;
}

/** Hex of an address as /proc/net/tcp{,6} prints it (host byte order per 32-bit word). */
export function procAddressHex(hostname: string): string {
  const h = hostname.replace(/^\[|\]$/g, "");
  if (!h.includes(":")) {
    const b = h.split(".").map(Number);
    return b.reverse().map((x) => x.toString(16).padStart(2, "0")).join("").toUpperCase();
  }
  // IPv6: 16 bytes, each 4-byte word little-endian.
  const m = /^(.*):(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  let s = h;
  if (m) {
    const b = m[2]!.split(".").map(Number);
    s = `${m[1]}:${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.split("::") as [string, string | undefined];
  const hw = head ? head.split(":") : [];
  const tw = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const words = [...hw, ...Array(8 - hw.length - tw.length).fill("0"), ...tw];
  const bytes = words.flatMap((w) => {
    const v = parseInt(w || "0", 16);
    return [v >> 8, v & 0xff];
  });
  let out = "";
  for (let i = 0; i < 16; i += 4) {
    out += bytes.slice(i, i + 4).reverse().map((x) => x.toString(16).padStart(2, "0")).join("");
  }
  return out.toUpperCase();
}

/** The inode of the socket with this (local, remote) pair in /proc/net/tcp text, if any. */
export function findInode(procText: string, local: TcpEndpoint, remote: TcpEndpoint): string {
  const want = `${procAddressHex(local.hostname)}:${hex4(local.port)}`;
  const peer = `${procAddressHex(remote.hostname)}:${hex4(remote.port)}`;
  for (const line of procText.split("\n")) {
    const t = line.trim().split(/\s+/);
    if (t.length > 9 && t[1] === want && t[2] === peer) return t[9]!;
  }
  return "";
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0").toUpperCase();
}

/** The file descriptor of this process's TCP socket (local, remote), or undefined. */
export function findSocketFd(local: TcpEndpoint, remote: TcpEndpoint): number | undefined {
  let inode = "";
  for (const f of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    try {
      inode = findInode(Deno.readTextFileSync(f), local, remote);
    } catch { /* no such table */ }
    if (inode && inode !== "0") break;
  }
  if (!inode || inode === "0") return undefined;
  const target = `socket:[${inode}]`;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`) === target) return Number(e.name);
    } catch { /* closed meanwhile */ }
  }
  return undefined;
}

const info = new Uint8Array(TCP_INFO_LEN);
const infoLen = new Uint32Array(1);
const intOut = new Int32Array(1);

/** Reads the kernel's state of socket `fd`; undefined when it cannot (not a TCP socket). */
export function readSocketState(fd: number): TcpSocketState | undefined {
  const c = openLibc();
  if (!c) return undefined;
  infoLen[0] = TCP_INFO_LEN;
  if (
    c.symbols.getsockopt(fd, SOL_TCP, TCP_INFO, info, new Uint8Array(infoLen.buffer)) !== 0
  ) return undefined;
  const dv = new DataView(info.buffer);
  const s = {
    cwnd: dv.getUint32(OFF.cwnd, true),
    unacked: dv.getUint32(OFF.unacked, true),
    mss: dv.getUint32(OFF.mss, true),
    rttUs: dv.getUint32(OFF.rtt, true),
    notsent: 0,
    outq: 0,
  };
  const out = new Uint8Array(intOut.buffer);
  if (c.symbols.ioctl(fd, SIOCOUTQNSD, out) !== 0) return undefined;
  s.notsent = intOut[0]!;
  if (c.symbols.ioctl(fd, SIOCOUTQ, out) !== 0) return undefined;
  s.outq = intOut[0]!;
  return s;
}

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;

/**
 * Fixes a socket's send or receive buffer (setsockopt SO_SNDBUF / SO_RCVBUF; the kernel
 * doubles the value and stops autotuning it, capped by net.core.{w,r}mem_max). For tests and
 * experiments that need a known buffer; true on success.
 */
export function setSocketBuffer(fd: number, which: "send" | "receive", bytes: number): boolean {
  const c = openLibc();
  if (!c) return false;
  const v = new Int32Array([bytes]);
  return c.symbols.setsockopt(
    fd,
    SOL_SOCKET,
    which === "send" ? SO_SNDBUF : SO_RCVBUF,
    new Uint8Array(v.buffer),
    4,
  ) === 0;
}

/**
 * Kernel state of one socket by its addresses: the descriptor is looked up on first use and
 * kept; `undefined` when the socket cannot be found or read.
 */
export class SocketInfo {
  #local: TcpEndpoint;
  #remote: TcpEndpoint;
  #fd: number | undefined | null = null;

  /** The kernel state of the TCP socket with these local and remote endpoints. */
  constructor(local: TcpEndpoint, remote: TcpEndpoint) {
    this.#local = local;
    this.#remote = remote;
  }

  /** The descriptor, once found. */
  get fd(): number | undefined {
    if (this.#fd === null) {
      this.#fd = socketInfoAvailable() ? findSocketFd(this.#local, this.#remote) : undefined;
    }
    return this.#fd;
  }

  /** The kernel's state now. */
  read(): TcpSocketState | undefined {
    const fd = this.fd;
    return fd === undefined ? undefined : readSocketState(fd);
  }
}
