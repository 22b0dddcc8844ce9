/**
 * TUN devices from Deno through libc (FFI): open `/dev/net/tun`, TUNSETIFF with
 * IFF_TUN | IFF_NO_PI (raw IP packets, no header), O_NONBLOCK reads until EAGAIN, one write
 * per packet, and `ppoll` (run off the main thread) to sleep until a device is readable or the
 * next packet is due. Devices are not persistent: they vanish when the process holding them
 * exits, so a killed emulator leaves no device behind (and cuts its hosts off).
 * Needs --allow-ffi and CAP_NET_ADMIN.
 * @module
 */

const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const POLLIN = 0x1;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  ppoll: { parameters: ["buffer", "u64", "buffer", "pointer"], result: "i32", nonblocking: true },
  ppoll_sync: {
    name: "ppoll",
    parameters: ["buffer", "u64", "buffer", "pointer"],
    result: "i32",
  },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

function libc(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return lib.symbols;
}

function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** An open TUN device. */
export interface Tun {
  /** Interface name at creation (in the namespace it was made in). */
  name: string;
  /** File descriptor. */
  fd: number;
}

/** Creates a TUN device `name` (≤ 15 bytes) and returns its nonblocking fd. */
export function openTun(name: string): Tun {
  const c = libc();
  const fd = c.open(new TextEncoder().encode("/dev/net/tun\0"), O_RDWR | O_NONBLOCK);
  if (fd < 0) throw new Error(`open /dev/net/tun failed: errno ${errno()}`);
  const ifr = new Uint8Array(40);
  const nb = new TextEncoder().encode(name);
  if (nb.length > 15) throw new RangeError(`interface name too long: ${name}`);
  ifr.set(nb, 0);
  new DataView(ifr.buffer).setUint16(16, IFF_TUN | IFF_NO_PI, true);
  if (c.ioctl(fd, BigInt(TUNSETIFF), ifr) < 0) {
    const e = errno();
    c.close(fd);
    throw new Error(`TUNSETIFF ${name} failed: errno ${e}`);
  }
  return { name, fd };
}

/** Reads one packet into `buf`; 0 when none is waiting (EAGAIN), -1 on another error. */
export function readPacket(tun: Tun, buf: Uint8Array): number {
  const n = Number(libc().read(tun.fd, buf, BigInt(buf.length)));
  if (n >= 0) return n;
  const e = errno();
  return e === 11 ? 0 : -1;
}

/** Writes one packet (the first `length` bytes of `buf`); false if the kernel refused it. */
export function writePacket(tun: Tun, buf: Uint8Array, length = buf.length): boolean {
  return Number(libc().write(tun.fd, buf, BigInt(length))) === length;
}

/** Closes the device (it disappears). */
export function closeTun(tun: Tun): void {
  libc().close(tun.fd);
}

/**
 * Lowers this thread's timer slack to 1 µs (PR_SET_TIMERSLACK; the default 50 µs lets the
 * kernel fire a sleep's timeout that much later). True if the kernel took it.
 */
export function preciseTimers(): boolean {
  return libc().prctl(29, 1000n, 0n, 0n, 0n) === 0;
}

/**
 * Waits on many TUN fds with a sub-millisecond timeout: `wait` off the main thread (the event
 * loop keeps running), `waitSync` on it (no thread hand-over: wakes as soon as the kernel does).
 */
export class TunPoller {
  #fds: Uint8Array;
  #ts = new Uint8Array(16);
  #n: number;

  /** Polls these devices for input. */
  constructor(tuns: Tun[]) {
    this.#n = tuns.length;
    this.#fds = new Uint8Array(8 * tuns.length);
    const v = new DataView(this.#fds.buffer);
    tuns.forEach((t, i) => {
      v.setInt32(8 * i, t.fd, true);
      v.setInt16(8 * i + 4, POLLIN, true);
    });
  }

  /**
   * Resolves when a device is readable or after `timeoutMs`; returns the indexes of devices
   * with input, and of devices in error (revents POLLERR/POLLHUP/POLLNVAL) as `broken`.
   */
  async wait(timeoutMs: number): Promise<{ ready: number; broken: number[] }> {
    this.#prepare(timeoutMs);
    return this.#result(await libc().ppoll(this.#fds, BigInt(this.#n), this.#ts, null));
  }

  /** Like `wait`, blocking the calling thread. */
  waitSync(timeoutMs: number): { ready: number; broken: number[] } {
    this.#prepare(timeoutMs);
    return this.#result(libc().ppoll_sync(this.#fds, BigInt(this.#n), this.#ts, null));
  }

  #prepare(timeoutMs: number): void {
    const v = new DataView(this.#fds.buffer);
    for (let i = 0; i < this.#n; i++) v.setInt16(8 * i + 6, 0, true);
    const ms = Math.max(0, timeoutMs);
    const tv = new DataView(this.#ts.buffer);
    const s = Math.floor(ms / 1000);
    tv.setBigInt64(0, BigInt(s), true);
    tv.setBigInt64(8, BigInt(Math.round((ms - s * 1000) * 1e6)), true);
  }

  #result(r: number): { ready: number; broken: number[] } {
    const v = new DataView(this.#fds.buffer);
    const broken: number[] = [];
    if (r > 0) {
      for (let i = 0; i < this.#n; i++) {
        if (v.getInt16(8 * i + 6, true) & 0x38) broken.push(i);
      }
    }
    return { ready: Math.max(0, r), broken };
  }
}
