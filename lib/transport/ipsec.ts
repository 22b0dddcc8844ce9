/**
 * IPsec checks for PCTCP's per-circuit connections. IPsec fails open: with no CHILD_SA there
 * is no policy and packets go in the clear, so before a relay carries a circuit on its own
 * connection to a peer it asks strongSwan (`swanctl --list-sas`) whether an INSTALLED
 * CHILD_SA's remote traffic selector covers the peer's address, and refuses otherwise.
 * @module
 */

function ipv4(a: string): number | undefined {
  const p = a.split(".");
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined;
  return p.reduce((n, x) => n * 256 + Number(x), 0) >>> 0;
}

function covers(selector: string, address: string): boolean {
  const [net, bitsText] = selector.split("/");
  const a = ipv4(address), n = ipv4(net ?? "");
  if (a === undefined || n === undefined) return false;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  if (bits === 0) return true;
  const mask = (0xffffffff << (32 - bits)) >>> 0;
  return ((a & mask) >>> 0) === ((n & mask) >>> 0);
}

/**
 * True when `swanctl --list-sas` text shows an INSTALLED CHILD_SA whose remote traffic
 * selectors cover `address`, under an IKE_SA whose peer is that relay: its remote identity
 * is `peerId` when given, else its remote endpoint is `address` itself. A selector alone is
 * not enough (issue 24 item 12: an SA with some other gateway whose selectors happen to
 * cover the address says nothing about who is at it), nor is the IKE_SA alone (FACTS.md:
 * check the CHILD_SA).
 */
export function childSaCovers(listSas: string, address: string, peerId?: string): boolean {
  let installed = false;
  let peerMatches = false;
  for (const raw of listSas.split("\n")) {
    const line = raw.trim();
    // A CHILD_SA header: "name: #N, reqid N, STATE, MODE, ..."
    const child = /^[^:]+: #\d+, reqid \d+, ([A-Z_]+),/.exec(line);
    if (child) {
      installed = child[1] === "INSTALLED";
      continue;
    }
    // An IKE_SA header ends the previous IKE_SA and its CHILD_SAs.
    if (/^[^:]+: #\d+, [A-Z_]+, IKEv[12]/.test(line)) {
      installed = false;
      peerMatches = false;
      continue;
    }
    // The IKE_SA's peer: "remote 'ID' @ ADDRESS[PORT]".
    const ike = /^remote\s+'([^']*)'\s+@\s+([^\s\[]+)/.exec(line);
    if (ike) {
      peerMatches = peerId !== undefined ? ike[1] === peerId : ike[2] === address;
      continue;
    }
    const remote = /^remote\s+(.+)$/.exec(line);
    if (installed && peerMatches && remote && !remote[1]!.includes("'")) {
      for (const ts of remote[1]!.split(/\s+/)) {
        if (covers(ts.split("[")[0]!, address)) return true;
      }
    }
  }
  return false;
}

/** A check that runs `swanctl --list-sas` (cached for `cacheMs`). */
export function swanctlCheck(
  options: { swanctl?: string; cacheMs?: number; uri?: string } = {},
): (address: string) => Promise<boolean> {
  let cached: { at: number; text: string } | undefined;
  return async (address) => {
    const now = Date.now();
    if (!cached || now - cached.at > (options.cacheMs ?? 1000)) {
      try {
        const out = await new Deno.Command(options.swanctl ?? "swanctl", {
          args: ["--list-sas", ...(options.uri ? ["--uri", options.uri] : [])],
          stdout: "piped",
          stderr: "null",
        })
          .output();
        cached = { at: now, text: out.success ? new TextDecoder().decode(out.stdout) : "" };
      } catch {
        cached = { at: now, text: "" }; // no strongSwan: nothing is covered
      }
    }
    return childSaCovers(cached.text, address);
  };
}
