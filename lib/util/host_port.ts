/**
 * HOST:PORT values of flags and state files, IPv6 in brackets (`[::1]:9050`).
 * @module
 */

/** Splits HOST:PORT (IPv6 in brackets); a SyntaxError on a bad value. */
export function splitHostPort(s: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) {
    throw new SyntaxError(`expected HOST:PORT, got ${JSON.stringify(s)}`);
  }
  return [(m[1] ?? m[2])!, Number(m[3])];
}
