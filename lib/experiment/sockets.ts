/**
 * Where queues build in the kernel: samples `ss -tin` for the TCP connections between relays
 * (both ends on relay OR ports, or one end on an OR port and the other a relay process's
 * outgoing socket) and sums their send and receive queues, and of the send queue the bytes
 * not yet sent (`notsent`, tcpi_notsent_bytes) apart from those sent and not yet acknowledged.
 * @module
 */

/** One sample of relay-to-relay sockets. */
export interface SocketSample {
  /** Time, ms since the experiment arm started. */
  t: number;
  /** Established TCP connections touching a relay OR port from another relay. */
  connections: number;
  /** Sum of Send-Q over those sockets, bytes. */
  sendQ: number;
  /** Sum of Recv-Q, bytes. */
  recvQ: number;
  /** Largest single Send-Q, bytes. */
  maxSendQ: number;
  /** Of the Send-Q, bytes not yet sent (the rest are unacknowledged), when ss says. */
  notsent: number;
}

/**
 * Parses `ss -tnH` (or `ss -tinH`: info lines start with white space and follow their socket)
 * lines; keeps sockets whose local or peer port is in `orPorts`.
 */
export function parseSs(
  text: string,
  orPorts: Set<number>,
  exclude: Set<number> = new Set(),
): Omit<SocketSample, "t"> {
  const s = { connections: 0, sendQ: 0, recvQ: 0, maxSendQ: 0, notsent: 0 };
  let counted = false;
  for (const line of text.split("\n")) {
    if (/^\s/.test(line)) {
      const m = /\bnotsent:(\d+)/.exec(line);
      if (counted && m) s.notsent += Number(m[1]);
      continue;
    }
    counted = false;
    const tok = line.trim().split(/\s+/);
    const addrs = tok.filter((x) => /:\d+$/.test(x));
    if (addrs.length < 2) continue;
    const nums = tok.filter((x) => /^\d+$/.test(x)).map(Number);
    if (nums.length < 2) continue;
    const [recvQ, sendQ] = nums.slice(-2) as [number, number];
    const lp = Number(addrs[0]!.split(":").pop()), pp = Number(addrs[1]!.split(":").pop());
    if (!(orPorts.has(lp) || orPorts.has(pp))) continue;
    if (exclude.has(lp) || exclude.has(pp)) continue;
    s.connections++;
    counted = true;
    s.sendQ += sendQ;
    s.recvQ += recvQ;
    s.maxSendQ = Math.max(s.maxSendQ, sendQ);
  }
  return s;
}

/** Runs `ss -tnH state established` once (in each of `namespaces`, when given) and sums. */
export async function sampleSockets(
  orPorts: Set<number>,
  exclude: Set<number>,
  namespaces: string[] = [],
): Promise<Omit<SocketSample, "t"> | undefined> {
  const total = { connections: 0, sendQ: 0, recvQ: 0, maxSendQ: 0, notsent: 0 };
  try {
    for (const ns of namespaces.length ? namespaces : [undefined]) {
      const cmd = ns ? ["ip", "netns", "exec", ns, "ss"] : ["ss"];
      const out = await new Deno.Command(cmd[0]!, {
        args: [...cmd.slice(1), "-tinH", "state", "established"],
        stdout: "piped",
        stderr: "null",
      })
        .output();
      const x = parseSs(new TextDecoder().decode(out.stdout), orPorts, exclude);
      total.connections += x.connections;
      total.sendQ += x.sendQ;
      total.recvQ += x.recvQ;
      total.maxSendQ = Math.max(total.maxSendQ, x.maxSendQ);
      total.notsent += x.notsent;
    }
    return total;
  } catch {
    return undefined;
  }
}
