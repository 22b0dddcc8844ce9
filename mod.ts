/**
 * pctcp: per-circuit TCP over IPsec for onion routing, and the tools to measure it.
 *
 * The public library API; everything here is re-exported from lib/.
 *
 * @example Percentiles by the stated method
 * ```ts
 * import { percentile } from "./mod.ts";
 * if (percentile([1, 2, 3, 4], 50) !== 2.5) throw new Error("type 7 percentile");
 * ```
 * @module
 */

export { VERSION } from "./lib/version.ts";
export * from "./lib/cell/mod.ts";
export * from "./lib/crypto/mod.ts";
export * from "./lib/circuit/mod.ts";
export * from "./lib/channel/mod.ts";
export * from "./lib/directory/mod.ts";
export { type ByteStream, Link, linkAccept, linkConnect, LinkError } from "./lib/transport/link.ts";
export { type PctcpSecurity, type PeerStats, Relay, type RelayOptions } from "./lib/relay/relay.ts";
export { ExitPolicy } from "./lib/relay/exit_policy.ts";
export { type ClientOptions, OnionClient, type StreamEvent } from "./lib/client/client.ts";
export { serve, type ServeOptions, type TestServer } from "./lib/serve/server.ts";
export { formatSize, parseSize } from "./lib/serve/sizes.ts";
export { type FetchOptions, type FetchResult, timedFetch } from "./lib/measure/fetch.ts";
export { type MeasureRecord, RecordWriter } from "./lib/measure/record.ts";
export { runMeasurement, type RunOptions, type Workload } from "./lib/measure/run.ts";
export { percentile, PERCENTILE_METHOD } from "./lib/stats/percentile.ts";
export { estimate, Summarizer } from "./lib/stats/summary.ts";
export {
  compareSamples,
  describeChange,
  describeFactor,
  mannWhitney,
} from "./lib/stats/compare.ts";
export {
  networkDown,
  type NetworkOptions,
  networkStatus,
  networkUp,
} from "./lib/network/launcher.ts";
export { runInterference } from "./lib/experiment/interference.ts";
