/**
 * The kernel's view of a TCP socket, as KIST reads it (tor's scheduler_kist.c,
 * update_socket_info_impl): `getsockopt(TCP_INFO)` for the congestion window, unacked
 * segments and MSS, `ioctl(SIOCOUTQNSD)` for the bytes not yet sent, and `ioctl(SIOCOUTQ)`
 * for everything still in the send queue (so unacked bytes = outq − notsent).
 *
 * Deno gives no file descriptor for a `Deno.TcpConn`, so the descriptor is found once per
 * socket, by asking the descriptors in `/proc/self/fd` for their local and peer addresses
 * (getsockname, getpeername) until one matches the connection's pair. The calls go through FFI
 * to libc (needs `--allow-ffi`; the relay runs with `-A`). Linux only.
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
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
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

/** An address's bytes in network order: 4 for IPv4, 16 for IPv6 (brackets allowed). */
export function addressBytes(hostname: string): Uint8Array {
  const h = hostname.replace(/^\[|\]$/g, "");
  if (!h.includes(":")) return Uint8Array.from(h.split(".").map(Number));
  // IPv6, possibly with an embedded IPv4 tail (::ffff:a.b.c.d).
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
  return Uint8Array.from(words.flatMap((w) => {
    const v = parseInt(w || "0", 16);
    return [v >> 8, v & 0xff];
  }));
}

const AF_INET = 2, AF_INET6 = 10;
const sockaddr = new Uint8Array(28); // sizeof(struct sockaddr_in6)
const sockaddrLen = new Uint32Array(1);

/** Whether the sockaddr in `sockaddr` (just filled) is this endpoint. */
function sockaddrIs(e: { port: number; addr: Uint8Array }): boolean {
  const family = sockaddr[0]! | (sockaddr[1]! << 8);
  if (((sockaddr[2]! << 8) | sockaddr[3]!) !== e.port) return false;
  const at = family === AF_INET ? 4 : family === AF_INET6 ? 8 : -1;
  const len = family === AF_INET ? 4 : 16;
  if (at < 0 || e.addr.length !== len) return false;
  for (let i = 0; i < len; i++) if (sockaddr[at + i] !== e.addr[i]) return false;
  return true;
}

/** Descriptors already found for a live {@link SocketInfo}: not probed again. */
const claimed = new Set<number>();
/** The highest descriptor found so far, and how far around it a new one is looked for first. */
let highestFound = 0;
const PROBE_WINDOW = 32;

function found(fd: number): number {
  if (fd > highestFound) highestFound = fd;
  return fd;
}

/**
 * The file descriptor of this process's TCP socket (local, remote), or undefined. Each
 * descriptor not already claimed is asked its own and its peer's address (getsockname,
 * getpeername: two system calls, failing at once for what is not an open socket): a relay
 * with thousands of connections pays microseconds per probe, where reading /proc/net/tcp and
 * every /proc/self/fd link cost 4–15 ms per lookup at 200–2000 sockets.
 */
export function findSocketFd(local: TcpEndpoint, remote: TcpEndpoint): number | undefined {
  const c = openLibc();
  if (!c) return undefined;
  const l = { port: local.port, addr: addressBytes(local.hostname) };
  const r = { port: remote.port, addr: addressBytes(remote.hostname) };
  const lenBytes = new Uint8Array(sockaddrLen.buffer);
  const matches = (fd: number) => {
    if (claimed.has(fd)) return false;
    sockaddrLen[0] = sockaddr.length;
    if (c.symbols.getsockname(fd, sockaddr, lenBytes) !== 0 || !sockaddrIs(l)) return false;
    sockaddrLen[0] = sockaddr.length;
    return c.symbols.getpeername(fd, sockaddr, lenBytes) === 0 && sockaddrIs(r);
  };
  // Near the highest descriptor found so far first, without listing the directory: they are
  // handed out lowest-free, so without holes a socket just made sits a little above it.
  // Probing a number that is not open costs one failing call (~2 µs through FFI).
  const top = highestFound + PROBE_WINDOW, bottom = Math.max(3, highestFound - PROBE_WINDOW);
  for (let fd = top; fd >= bottom; fd--) if (matches(fd)) return found(fd);
  // Elsewhere (a reused hole, or many descriptors opened meanwhile): list them, newest first.
  const fds = [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name));
  for (let i = fds.length - 1; i >= 0; i--) {
    const fd = fds[i]!;
    if (fd > 2 && (fd > top || fd < bottom) && matches(fd)) return found(fd);
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
      if (this.#fd !== undefined) claimed.add(this.#fd);
    }
    return this.#fd;
  }

  /** The socket is closed: its descriptor may be reused, so it is probed again. */
  release(): void {
    if (typeof this.#fd === "number") claimed.delete(this.#fd);
    this.#fd = undefined;
  }

  /** The kernel's state now. */
  read(): TcpSocketState | undefined {
    const fd = this.fd;
    return fd === undefined ? undefined : readSocketState(fd);
  }
}
