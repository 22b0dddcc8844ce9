/**
 * Exit policy: which destinations an exit may connect to. The default refuses private,
 * loopback, link-local and unspecified addresses (like Tor's ExitPolicyRejectPrivate) and
 * accepts the rest; a private network allows its own servers explicitly with `allow`
 * entries `ADDRESS[/BITS]:PORT|*`, checked before the private-address rule.
 * @module
 */

/** One allow rule. */
interface Rule {
  net: number;
  bits: number;
  port: number | "*";
}

function ipv4ToInt(a: string): number | undefined {
  const p = a.split(".");
  if (p.length !== 4) return undefined;
  let n = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return undefined;
    n = n * 256 + Number(x);
  }
  return n >>> 0;
}

function inNet(ip: number, net: number, bits: number): boolean {
  if (bits === 0) return true;
  const mask = (0xffffffff << (32 - bits)) >>> 0;
  return ((ip & mask) >>> 0) === ((net & mask) >>> 0);
}

const PRIVATE: [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
];

/** Decides whether an exit may connect to a host and port. */
export class ExitPolicy {
  #rules: Rule[];

  /** `allow`: entries like `127.0.0.1:8080`, `10.0.0.0/8:*`; a SyntaxError on a bad one. */
  constructor(allow: string[] = []) {
    this.#rules = allow.map((entry) => {
      const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d{1,2}))?:(\d+|\*)$/.exec(entry);
      const net = m ? ipv4ToInt(m[1]!) : undefined;
      const bits = m?.[2] !== undefined ? Number(m[2]) : 32;
      if (!m || net === undefined || bits > 32) {
        throw new SyntaxError(`exit policy entry malformed: ${entry}`);
      }
      return { net, bits, port: m[3] === "*" ? "*" : Number(m[3]) };
    });
  }

  /**
   * True if the exit may connect to `host:port` (host: an IPv4 address or a name). `self`:
   * the relay's own addresses, refused like private ones unless an allow entry names them
   * (C tor's ExitPolicyRejectPrivate rejects the relay's own addresses too).
   */
  allows(host: string, port: number, self: readonly string[] = []): boolean {
    const ip = ipv4ToInt(host);
    if (ip === undefined) {
      // Names: "localhost" and IPv6 literals are private; other names are resolved by the
      // exit and checked again on the address (see Relay).
      const h = host.toLowerCase();
      return !(h === "localhost" || h.endsWith(".localhost") || h.includes(":"));
    }
    for (const r of this.#rules) {
      if (inNet(ip, r.net, r.bits) && (r.port === "*" || r.port === port)) return true;
    }
    if (self.includes(host)) return false;
    return !PRIVATE.some(([n, b]) => inNet(ip, ipv4ToInt(n)!, b));
  }
}
