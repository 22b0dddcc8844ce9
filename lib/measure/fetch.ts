/**
 * One timed fetch through a SOCKS5 proxy, by the client the options name: `raw` (raw.ts, the
 * default: every phase stamped at the socket), `undici` or `node` (clients.ts). The shared
 * result, options and body meter live in result.ts, so the clients do not import each other.
 * @module
 */

import type { FetchOptions, FetchResult } from "./result.ts";
import { rawFetch } from "./raw.ts";

export {
  BYTE_MARKS,
  type FetchOptions,
  type FetchResult,
  type HttpClient,
  newFetchResult,
  type Outcome,
} from "./result.ts";

/** Fetches `url` through the proxy and times it; never throws (failures are outcomes). */
export async function timedFetch(url: string, options: FetchOptions): Promise<FetchResult> {
  if (options.client === "undici" || options.client === "node") {
    // Loaded on demand: undici and socks-proxy-agent are not needed by the default client.
    const clients = await import("./clients.ts");
    return options.client === "undici"
      ? clients.undiciFetch(url, options)
      : clients.nodeFetch(url, options);
  }
  return rawFetch(url, options);
}
