/**
 * The `raw` client: our own SOCKS5 handshake and HTTP/1.1 request on a Deno TCP connection, so
 * every phase is stamped at the socket from one monotonic clock (undici through its SOCKS agent
 * adds ~0.6 ms and hides the SOCKS phase; FACTS.md). HTTPS runs TLS over the tunnel with
 * Deno.startTls.
 *
 * Phases count from the start of the stream, before the proxy connection, as OnionPerf does:
 * `tcp` (connected to the proxy), `socks` (CONNECT answered), `request` (request written),
 * `first_byte`, `last_byte`.
 * @module
 */

import {
  BodyMeter,
  FetchFailure,
  type FetchOptions,
  type FetchResult,
  fetchStop,
  newFetchResult,
} from "./result.ts";

const SOCKS_REPLIES = [
  "succeeded",
  "general failure",
  "not allowed by ruleset",
  "network unreachable",
  "host unreachable",
  "connection refused",
  "TTL expired",
  "command not supported",
  "address type not supported",
];

interface Conn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** Fetches `url` through the proxy with our SOCKS5 and HTTP/1.1 on a Deno socket, every phase
 * stamped at the socket; never throws (failures are outcomes). */
export async function rawFetch(url: string, options: FetchOptions): Promise<FetchResult> {
  const { r, at } = newFetchResult("raw");
  let conn: Conn | undefined;
  const stop = fetchStop(options, () => conn?.close());
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new FetchFailure("http", `unsupported URL scheme ${u.protocol}`);
    }
    const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({ hostname: options.socksHost, port: options.socksPort });
    } catch (e) {
      throw new FetchFailure(
        "proxy-connect",
        `cannot connect to the SOCKS proxy: ${(e as Error).message}`,
      );
    }
    conn = tcp;
    if (stop.why) throw new FetchFailure("interrupted", "stopped");
    tcp.setNoDelay(true);
    r.sourcePort = (tcp.localAddr as Deno.NetAddr).port;
    r.phases.tcp = at();
    await socksHandshake(tcp, u.hostname.replace(/^\[|\]$/g, ""), port, options.socksUser);
    r.phases.socks = at();
    if (u.protocol === "https:") {
      try {
        conn = await Deno.startTls(tcp, {
          hostname: u.hostname.replace(/^\[|\]$/g, ""),
          ...(options.caCerts ? { caCerts: options.caCerts } : {}),
        });
        // The handshake runs lazily; finish it here so TLS failures are classed as "tls".
        await (conn as Deno.TlsConn).handshake();
      } catch (e) {
        throw new FetchFailure("tls", (e as Error).message);
      }
    }
    const req = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
      `User-Agent: pctcp-measure\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(req));
    r.phases.request = at();
    await readResponse(conn, r, at, options);
  } catch (e) {
    if (stop.settle(r)) { /* timeout or interrupted */ }
    else if (e instanceof FetchFailure) {
      r.outcome = e.outcome;
      r.error = e.message;
    } else {
      r.outcome = "reset";
      r.error = (e as Error).message;
    }
  } finally {
    stop.clear();
    try {
      conn?.close();
    } catch { /* closed */ }
  }
  return r;
}

async function writeAll(conn: Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

async function readExactly(conn: Conn, n: number, what: string): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const k = await conn.read(out.subarray(off));
    if (k === null) throw new FetchFailure("socks", `proxy closed the connection during ${what}`);
    off += k;
  }
  return out;
}

async function socksHandshake(
  conn: Conn,
  host: string,
  port: number,
  user?: string,
): Promise<void> {
  await writeAll(conn, user ? Uint8Array.of(5, 1, 2) : Uint8Array.of(5, 1, 0));
  const m = await readExactly(conn, 2, "method selection");
  if (m[0] !== 5) throw new FetchFailure("socks", `not a SOCKS5 proxy (version ${m[0]})`);
  if (m[1] === 2) {
    const u = new TextEncoder().encode(user ?? "");
    await writeAll(conn, Uint8Array.of(1, u.length, ...u, 1, 0x78));
    const a = await readExactly(conn, 2, "authentication");
    if (a[1] !== 0) throw new FetchFailure("socks", "proxy refused the user name");
  } else if (m[1] !== 0) {
    throw new FetchFailure("socks", "proxy accepts none of our authentication methods");
  }
  const h = new TextEncoder().encode(host);
  if (h.length > 255) throw new FetchFailure("socks", "host name too long");
  await writeAll(conn, Uint8Array.of(5, 1, 0, 3, h.length, ...h, port >> 8, port & 0xff));
  const rep = await readExactly(conn, 4, "the CONNECT reply");
  if (rep[1] !== 0) {
    throw new FetchFailure(
      "socks",
      `SOCKS error ${rep[1]}: ${SOCKS_REPLIES[rep[1]!] ?? "unknown"}`,
    );
  }
  const rest = rep[3] === 1
    ? 6
    : rep[3] === 4
    ? 18
    : 1 + (await readExactly(conn, 1, "reply"))[0]! + 2 - 1;
  await readExactly(conn, rest, "the CONNECT reply");
}

async function readResponse(
  conn: Conn,
  r: FetchResult,
  at: () => number,
  options: FetchOptions,
): Promise<void> {
  const buf = new Uint8Array(65536);
  let head = new Uint8Array(0);
  let bodyStart: Uint8Array | undefined;
  while (!bodyStart) {
    const k = await conn.read(buf);
    if (k === null) {
      throw new FetchFailure("short-read", "connection closed before the response headers");
    }
    if (r.phases.first_byte === undefined) r.phases.first_byte = at();
    const next = new Uint8Array(head.length + k);
    next.set(head);
    next.set(buf.subarray(0, k), head.length);
    head = next;
    const idx = findCrlfCrlf(head);
    if (idx >= 0) {
      bodyStart = head.subarray(idx + 4);
      head = head.subarray(0, idx);
    } else if (head.length > 65536) throw new FetchFailure("http", "response headers too long");
  }
  const lines = new TextDecoder().decode(head).split("\r\n");
  const sm = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!sm) throw new FetchFailure("http", `malformed status line: ${JSON.stringify(lines[0])}`);
  r.status = Number(sm[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  r.headers = headers;
  const chunked = /chunked/i.test(headers["transfer-encoding"] ?? "");
  const len = headers["content-length"] !== undefined
    ? Number(headers["content-length"])
    : undefined;
  if (len !== undefined && Number.isFinite(len)) r.size = len;
  const meter = new BodyMeter(r, at, options.keepBody ?? false);
  const take = (b: Uint8Array) => meter.take(b);
  if (chunked) {
    await readChunked(conn, bodyStart, buf, take);
  } else {
    take(bodyStart);
    while (len === undefined || r.bytes < len) {
      const k = await conn.read(buf);
      if (k === null) break;
      take(buf.subarray(0, len === undefined ? k : Math.min(k, len - r.bytes)));
    }
  }
  meter.finish(headers, options.expectedSha256);
}

function findCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

async function readChunked(
  conn: Conn,
  initial: Uint8Array,
  buf: Uint8Array,
  take: (b: Uint8Array) => void,
): Promise<void> {
  let pending: Uint8Array = initial.slice();
  const fill = async () => {
    const k = await conn.read(buf);
    if (k === null) throw new FetchFailure("short-read", "connection closed inside a chunked body");
    const next = new Uint8Array(pending.length + k);
    next.set(pending);
    next.set(buf.subarray(0, k), pending.length);
    pending = next;
  };
  for (;;) {
    let nl: number;
    while ((nl = pending.findIndex((x, i) => x === 13 && pending[i + 1] === 10)) < 0) await fill();
    const size = parseInt(new TextDecoder().decode(pending.subarray(0, nl)).split(";")[0]!, 16);
    if (!Number.isFinite(size)) throw new FetchFailure("http", "malformed chunk size");
    pending = pending.subarray(nl + 2);
    if (size === 0) return;
    let left = size;
    while (left > 0) {
      if (pending.length === 0) await fill();
      const n = Math.min(left, pending.length);
      take(pending.subarray(0, n));
      pending = pending.subarray(n);
      left -= n;
    }
    while (pending.length < 2) await fill();
    pending = pending.subarray(2);
  }
}
