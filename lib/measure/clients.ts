/**
 * The same timed fetch through the HTTP clients applications use, beside our socket-level one
 * (fetch.ts, `raw`):
 *
 * * `undici`: undici's `request` through its `Socks5ProxyAgent` (a fresh agent, so a fresh
 *   proxy connection, per fetch). Phases come from undici's diagnostics channels:
 *   `undici:client:connected` (the SOCKS tunnel, and TLS for HTTPS, is up),
 *   `undici:client:sendHeaders` (request written), `undici:request:headers` (response headers
 *   parsed); body bytes are stamped as the application reads them.
 * * `node`: `node:http(s)` with socks-proxy-agent (`socks5h://`, so the host name goes to the
 *   proxy, as Tor needs). Phases from the request's events: `socket` (tunnel up), `finish`
 *   (request written), `response` (headers parsed), then `data` and `end`.
 *
 * What neither can time: the TCP connection to the proxy apart from the SOCKS handshake (no
 * `tcp` phase: both agents hand back the socket only once the tunnel is up, so `socks` covers
 * both, and for HTTPS the TLS handshake too), and the first byte of the response as it arrives
 * (`first_byte` is when the headers were parsed: after the whole header block, not its first
 * byte). Both add their own overhead (FACTS.md: ~0.6 ms undici, ~0.9 ms node at the median on
 * loopback); `raw` stays the default for timing.
 * @module
 */

import diagnostics from "node:diagnostics_channel";
import {
  BodyMeter,
  FETCH_TIMEOUT_MS,
  FetchFailure,
  type FetchOptions,
  type FetchResult,
  fetchStop,
  lowerHeaders,
  newFetchResult,
} from "./result.ts";

export { HTTP_CLIENTS, type HttpClient } from "./result.ts";

/** Classes an error thrown by undici or node:http into a record outcome. */
function classify(e: unknown, r: FetchResult): void {
  if (e instanceof FetchFailure) {
    r.outcome = e.outcome;
    r.error = e.message;
    return;
  }
  const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code ?? "";
  const msg = err.message || String(e);
  r.error = code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  if (r.phases.socks === undefined) {
    if (/ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(code + msg) && !/socks/i.test(msg)) {
      r.outcome = "proxy-connect";
    } else if (/TLS|CERT|SSL|self.signed|certificate/i.test(code + msg)) r.outcome = "tls";
    else r.outcome = "socks";
  } else if (r.status !== undefined) r.outcome = "short-read";
  else if (/TLS|CERT|SSL|certificate/i.test(code + msg)) r.outcome = "tls";
  else r.outcome = "reset";
}

// One subscription per channel for the process; fetches register what they wait for.
const undiciWaiters = new Map<string, (ev: string, msg: Record<string, unknown>) => void>();
const connectedAt = new WeakMap<object, number>();
let subscribed = false;

function subscribeUndici(): void {
  if (subscribed) return;
  subscribed = true;
  diagnostics.channel("undici:client:connected").subscribe((m) => {
    const socket = (m as { socket?: object }).socket;
    if (socket) connectedAt.set(socket, performance.now());
  });
  for (const ev of ["sendHeaders", "headers"]) {
    const name = ev === "sendHeaders" ? "undici:client:sendHeaders" : "undici:request:headers";
    diagnostics.channel(name).subscribe((m) => {
      const msg = m as { request?: { headers?: unknown } };
      const h = String(msg.request?.headers ?? "");
      for (const [token, f] of undiciWaiters) if (h.includes(token)) f(ev, msg);
    });
  }
}

let undiciSeq = 0;

/** Loads undici once, subscribes to its channels, and silences its one-time warning that
 * SOCKS5 support is experimental (it would print on every `measure --client undici`). */
async function loadUndici(): Promise<typeof import("undici")> {
  const proc = (await import("node:process")).default;
  const emit = proc.emitWarning;
  proc.emitWarning = ((w: string | Error, ...rest: unknown[]) => {
    if (/SOCKS5 proxy support is experimental/.test(String(w))) return;
    return (emit as (...a: unknown[]) => void).call(proc, w, ...rest);
  }) as typeof proc.emitWarning;
  const undici = await import("undici");
  subscribeUndici();
  return undici;
}

/** One timed fetch with undici through its SOCKS5 agent; never throws. */
export async function undiciFetch(url: string, options: FetchOptions): Promise<FetchResult> {
  const undici = await loadUndici(); // before the clock starts: loading is not the fetch
  const { r, at } = newFetchResult("undici");
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const token = `${Deno.pid}-${++undiciSeq}-${r.startMono}`;
  undiciWaiters.set(token, (ev, msg) => {
    if (ev === "sendHeaders") {
      const socket = (msg as { socket?: { localPort?: number } }).socket;
      const c = socket ? connectedAt.get(socket) : undefined;
      if (c !== undefined) {
        r.phases.socks = Math.round((c - r.startMono) * 1000) / 1000;
      }
      if (socket?.localPort) r.sourcePort = socket.localPort;
      r.phases.request = at();
    } else if (ev === "headers") r.phases.first_byte = at();
  });
  const host = options.socksHost.includes(":") ? `[${options.socksHost}]` : options.socksHost;
  const agent = new undici.Socks5ProxyAgent(`socks5://${host}:${options.socksPort}`, {
    ...(options.socksUser ? { username: options.socksUser, password: "x" } : {}),
    ...(options.caCerts ? { requestTls: { ca: options.caCerts } } : {}),
    connections: 1,
  });
  const ac = new AbortController();
  const stop = fetchStop(options, () => ac.abort());
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new FetchFailure("http", `unsupported URL scheme ${u.protocol}`);
    }
    const res = await undici.request(url, {
      dispatcher: agent,
      signal: ac.signal,
      headers: { "user-agent": "pctcp-measure", "accept": "*/*", "x-pctcp-fetch": token },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    r.phases.first_byte ??= at();
    r.status = res.statusCode;
    const headers = lowerHeaders(res.headers);
    r.headers = headers;
    const len = headers["content-length"];
    if (len !== undefined && Number.isFinite(Number(len))) r.size = Number(len);
    const meter = new BodyMeter(r, at, options.keepBody ?? false);
    for await (const chunk of res.body) meter.take(chunk as Uint8Array);
    meter.finish(headers, options.expectedSha256);
  } catch (e) {
    if (!stop.settle(r)) classify(e, r);
  } finally {
    stop.clear();
    undiciWaiters.delete(token);
    await agent.destroy().catch(() => {});
  }
  return r;
}

/** One timed fetch with node:http(s) and socks-proxy-agent (socks5h://); never throws. */
export async function nodeFetch(url: string, options: FetchOptions): Promise<FetchResult> {
  const { SocksProxyAgent } = await import("socks-proxy-agent");
  const http = await import("node:http");
  const https = await import("node:https");
  const { r, at } = newFetchResult("node");
  const user = options.socksUser ? `${encodeURIComponent(options.socksUser)}:x@` : "";
  const host = options.socksHost.includes(":") ? `[${options.socksHost}]` : options.socksHost;
  const agent = new SocksProxyAgent(`socks5h://${user}${host}:${options.socksPort}`);
  let req: import("node:http").ClientRequest | undefined;
  let fail: ((e: Error) => void) | undefined;
  const stop = fetchStop(options, () => {
    req?.destroy(new Error("stopped"));
    fail?.(new Error("stopped"));
  });
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new FetchFailure("http", `unsupported URL scheme ${u.protocol}`);
    }
    const mod = u.protocol === "https:" ? https : http;
    await new Promise<void>((resolve, reject) => {
      fail = reject;
      if (stop.why) return reject(new Error("stopped"));
      let meter: BodyMeter | undefined;
      let headers: Record<string, string> = {};
      req = mod.get(url, {
        agent,
        headers: { "user-agent": "pctcp-measure", "accept": "*/*", "connection": "close" },
        ...(options.caCerts ? { ca: options.caCerts } : {}),
      }, (res) => {
        r.phases.first_byte = at();
        if (res.statusCode !== undefined) r.status = res.statusCode;
        headers = lowerHeaders(res.headers);
        r.headers = headers;
        const len = headers["content-length"];
        if (len !== undefined && Number.isFinite(Number(len))) r.size = Number(len);
        meter = new BodyMeter(r, at, options.keepBody ?? false);
        res.on("data", (c: Uint8Array) => meter!.take(c));
        res.on("end", () => {
          try {
            meter!.finish(headers, options.expectedSha256);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
        res.on("aborted", () => reject(new FetchFailure("short-read", "response aborted")));
        res.on("error", reject);
      });
      req.on("socket", (s) => {
        r.phases.socks = at();
        if (s.localPort) r.sourcePort = s.localPort;
      });
      req.on("finish", () => r.phases.request = at());
      req.on("error", (e) => {
        if (meter && r.size !== undefined && r.bytes < r.size) {
          reject(new FetchFailure("short-read", `got ${r.bytes} of ${r.size} bytes: ${e.message}`));
        } else reject(e);
      });
    });
  } catch (e) {
    if (!stop.settle(r)) classify(e, r);
  } finally {
    stop.clear();
    req?.destroy();
    agent.destroy();
  }
  return r;
}
