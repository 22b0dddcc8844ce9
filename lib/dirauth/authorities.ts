/**
 * Directory authorities as a torrc names them: `DirAuthority [nickname] [flags] ADDR:DIRPORT
 * FINGERPRINT`, the syntax of tor's manual and of `parse_dir_authority_line` in tor's
 * src/app/config/config.c (nickname optional; flags `orport=N`, `v3ident=HEX`, `no-v2`, `bridge`,
 * `hs`/`no-hs`, `weight=N`, `ipv6=[ADDR]:PORT`, `upload=`/`download=`/`vote=`; the fingerprint is
 * the rest of the line with its spaces removed, 40 hex digits).
 * @module
 */

/** One directory authority of a torrc's `DirAuthority` line. */
export interface DirAuthority {
  /** Its nickname, when the line names one. */
  nickname?: string;
  /** IPv4 address of its DirPort. */
  address: string;
  /** Its DirPort (where descriptors are uploaded: `POST /tor/`). */
  dirPort: number;
  /** Its ORPort (`orport=`), when given. */
  orPort?: number;
  /** Its v3 authority identity (`v3ident=`, 40 upper-case hex), when given. */
  v3ident?: string;
  /** Its relay identity fingerprint (SHA-1 of the RSA identity key, 40 upper-case hex). */
  fingerprint: string;
  /** True for a bridge authority (`bridge`). */
  bridge: boolean;
  /** `ipv6=[ADDR]:PORT`, when given (kept as written). */
  ipv6?: string;
  /** `weight=`, when given. */
  weight?: number;
  /** The line as given (without the keyword). */
  line: string;
}

const NICKNAME = /^[A-Za-z0-9]{1,19}$/;
const HEX40 = /^[0-9A-Fa-f]{40}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function port(text: string, what: string, line: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new SyntaxError(`Invalid ${what} '${text}' in DirAuthority line: ${line}`);
  }
  return Number(text);
}

/**
 * Parses one torrc `DirAuthority` line, with or without the keyword, as tor does
 * (src/app/config/config.c `parse_dir_authority_line`). Throws SyntaxError naming the line.
 *
 * @example Parse a line of lib/tor/testnet.ts's form
 * ```ts
 * import { parseDirAuthorityLine } from "./authorities.ts";
 * const a = parseDirAuthorityLine(
 *   "DirAuthority tor1 orport=5000 no-v2 v3ident=" + "AB".repeat(20) +
 *     " 127.0.0.1:7000 " + "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567",
 * );
 * if (a.dirPort !== 7000 || a.fingerprint !== "0123456789ABCDEF0123456789ABCDEF01234567") {
 *   throw new Error("wrong parse");
 * }
 * ```
 */
export function parseDirAuthorityLine(line: string): DirAuthority {
  const given = line.trim();
  let items = given.split(/\s+/).filter((x) => x !== "");
  if (items[0]?.toLowerCase() === "dirauthority") items = items.slice(1);
  const body = items.join(" ");
  if (items.length === 0) throw new SyntaxError(`No arguments on DirAuthority line: ${given}`);
  let nickname: string | undefined;
  if (NICKNAME.test(items[0]!)) nickname = items.shift();
  let orPort: number | undefined, v3ident: string | undefined, ipv6: string | undefined;
  let weight: number | undefined;
  let bridge = false;
  while (items.length > 0 && !/^\d/.test(items[0]!)) {
    const flag = items.shift()!;
    const lower = flag.toLowerCase();
    if (lower === "hs" || lower === "no-hs" || lower === "no-v2") {
      // Obsolete flags tor still accepts.
    } else if (lower === "bridge") {
      bridge = true;
    } else if (lower.startsWith("orport=")) {
      orPort = port(flag.slice(7), "orport", given);
    } else if (lower.startsWith("v3ident=")) {
      const id = flag.slice(8);
      if (!HEX40.test(id)) {
        throw new SyntaxError(`Bad v3 identity digest '${id}' in DirAuthority line: ${given}`);
      }
      v3ident = id.toUpperCase();
    } else if (flag.startsWith("weight=")) {
      const w = Number(flag.slice(7));
      if (!Number.isFinite(w) || w < 0) {
        throw new SyntaxError(`Invalid weight '${flag}' in DirAuthority line: ${given}`);
      }
      weight = w;
    } else if (lower.startsWith("ipv6=")) {
      const v = flag.slice(5);
      if (!/^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(v)) {
        throw new SyntaxError(`Bad ipv6 address and port '${v}' in DirAuthority line: ${given}`);
      }
      ipv6 = v;
    } else if (/^(upload|download|vote)=/.test(lower)) {
      // Extra DirPorts for one purpose: tor uses them; uploads here go to the main DirPort.
    } else {
      throw new SyntaxError(`Unrecognized flag '${flag}' in DirAuthority line: ${given}`);
    }
  }
  if (items.length < 2) throw new SyntaxError(`Too few arguments in DirAuthority line: ${given}`);
  const addrport = items.shift()!;
  const m = /^([^:]+):(\d+)$/.exec(addrport);
  if (!m || !IPV4.test(m[1]!)) {
    throw new SyntaxError(`Bad address '${addrport}' in DirAuthority line: ${given}`);
  }
  const dirPort = port(m[2]!, "DirPort", given);
  const fingerprint = items.join("");
  if (!HEX40.test(fingerprint)) {
    throw new SyntaxError(
      `Fingerprint '${items.join(" ")}' is not 40 hex digits in DirAuthority line: ${given}`,
    );
  }
  const a: DirAuthority = {
    address: m[1]!,
    dirPort,
    fingerprint: fingerprint.toUpperCase(),
    bridge,
    line: body,
  };
  if (nickname !== undefined) a.nickname = nickname;
  if (orPort !== undefined) a.orPort = orPort;
  if (v3ident !== undefined) a.v3ident = v3ident;
  if (ipv6 !== undefined) a.ipv6 = ipv6;
  if (weight !== undefined) a.weight = weight;
  return a;
}

/**
 * The `DirAuthority` lines of a torrc file's text (keyword case-insensitive, `#` comments,
 * backslash-newline continuations as tor's config reader joins them). Other lines are ignored.
 * Throws SyntaxError naming the line number and the line.
 */
export function authoritiesFromTorrc(text: string): DirAuthority[] {
  const out: DirAuthority[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, " ") + lines[++i]!;
    }
    const hash = line.indexOf("#");
    if (hash >= 0) line = line.slice(0, hash);
    line = line.trim();
    if (!/^dirauthority\s/i.test(line)) continue;
    try {
      out.push(parseDirAuthorityLine(line));
    } catch (e) {
      if (e instanceof SyntaxError) {
        throw new SyntaxError(`torrc line ${start}: ${e.message}`);
      }
      throw e;
    }
  }
  return out;
}

/** How an authority is named in logs and results: its nickname, else ADDR:DIRPORT. */
export function authorityName(a: DirAuthority): string {
  return a.nickname ?? `${a.address}:${a.dirPort}`;
}
