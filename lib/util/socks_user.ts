/**
 * The one codec of the SOCKS user names pctcp gives meaning to: `pctcp-path=R1,R2,R3;` asks our
 * client (or a Tor client pinned through its ControlPort) for a circuit through those relays,
 * guard first; `arm=NAME;c=N;` say which arm and which of its circuits; the rest isolates, as
 * any SOCKS user name does for Tor (IsolateSOCKSAuth). Fields are `;`-separated and never hold
 * `;`, `,` (inside the path) or NUL.
 * @module
 */

/** What a SOCKS user name says. */
export interface SocksUser {
  /** Relays (nicknames or fingerprints, `$` stripped), guard first. */
  path?: string[];
  /** Arm name (`measure --arm`). */
  arm?: string;
  /** Which of the arm's circuits. */
  circuit?: number;
  /** The rest: isolation only. */
  rest?: string;
}

const BAD = /[;\0]/;

/** The user name for `u`; a RangeError for a relay or arm holding `;`, `,` or NUL. */
export function encodeSocksUser(u: SocksUser): string {
  let out = "";
  if (u.path) {
    for (const r of u.path) {
      if (!r || BAD.test(r) || r.includes(",")) {
        throw new RangeError(`relay name not usable in a SOCKS user name: ${JSON.stringify(r)}`);
      }
    }
    out += `pctcp-path=${u.path.join(",")};`;
  }
  if (u.arm !== undefined) {
    if (!u.arm || BAD.test(u.arm)) {
      throw new RangeError(`arm name not usable in a SOCKS user name: ${JSON.stringify(u.arm)}`);
    }
    out += `arm=${u.arm};`;
  }
  if (u.circuit !== undefined) out += `c=${u.circuit};`;
  return out + (u.rest ?? "");
}

/** What a user name asks for; names without our fields are all `rest`. */
export function decodeSocksUser(user: string): SocksUser {
  const out: SocksUser = {};
  let rest = user;
  const take = (key: string): string | undefined => {
    if (!rest.startsWith(`${key}=`)) return undefined;
    const end = rest.indexOf(";");
    const value = rest.slice(key.length + 1, end < 0 ? undefined : end);
    rest = end < 0 ? "" : rest.slice(end + 1);
    return value;
  };
  const path = take("pctcp-path");
  if (path !== undefined) {
    out.path = path.split(",").map((x) => x.trim().replace(/^\$/, "")).filter(Boolean);
  }
  const arm = take("arm");
  if (arm !== undefined) out.arm = arm;
  const c = take("c");
  if (c !== undefined && /^\d+$/.test(c)) out.circuit = Number(c);
  else if (c !== undefined) rest = `c=${c};${rest}`;
  if (rest) out.rest = rest;
  return out;
}
