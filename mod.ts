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
export * from "./lib/keys/mod.ts";
export * from "./lib/dirauth/mod.ts";
export * from "./lib/transport/mod.ts";
export * from "./lib/relay/mod.ts";
export {
  CircuitBuildError,
  ClientCircuit,
  type ClientOptions,
  OnionClient,
  pathFromUser,
  type StreamEvent,
} from "./lib/client/client.ts";
export { type Logger, type LogLevel, makeLogger, nullLogger } from "./lib/util/log.ts";
export { serve, type ServeOptions, type TestServer } from "./lib/serve/server.ts";
export { formatSize, parseSize } from "./lib/serve/sizes.ts";
export {
  type FetchOptions,
  type FetchResult,
  type HttpClient,
  type Outcome,
  timedFetch,
} from "./lib/measure/fetch.ts";
export { LockedError, type MeasureRecord, RecordWriter } from "./lib/measure/record.ts";
export { OUTCOMES } from "./lib/measure/outcome.ts";
export {
  readRecords,
  type ReadResult,
  RecordError,
  type SchemaProblem,
  validateRecord,
} from "./lib/measure/schema.ts";
export {
  type Arm,
  type ArmCounts,
  type ArmOrder,
  type OverrunPolicy,
  ProxyDownError,
  runMeasurement,
  type RunOptions,
  type RunSummary,
  type Workload,
} from "./lib/measure/run.ts";
export type { Sample } from "./lib/stats/censor.ts";
export type { EmulationEngine, EmulationState } from "./lib/network/emulated_hosts.ts";
export * from "./lib/emulate/mod.ts";
export type { Scenario } from "./lib/experiment/scenario.ts";
export type { NetworkDistribution } from "./lib/experiment/ctor_networks.ts";
export { percentile, PERCENTILE_METHOD } from "./lib/stats/percentile.ts";
export { type Estimate, estimate, type GroupSummary, Summarizer } from "./lib/stats/summary.ts";
export {
  type Change,
  compareSamples,
  type Comparison,
  describeChange,
  describeFactor,
  mannWhitney,
} from "./lib/stats/compare.ts";
export {
  describeStop,
  networkDown,
  type NetworkOptions,
  type NetworkState,
  networkStatus,
  networkUp,
  type ProcessInfo,
  type StopReport,
} from "./lib/network/launcher.ts";
export type { NetnsHost, NetnsHosts } from "./lib/network/netns.ts";
export {
  type Arm as ExperimentArm,
  ARMS as EXPERIMENT_ARMS,
  type Metric as ExperimentMetric,
  METRICS as EXPERIMENT_METRICS,
} from "./lib/experiment/arms.ts";
export { type InterferenceOptions, runInterference } from "./lib/experiment/run.ts";
export { analyzeFolder, type AnalyzeOptions, writeSummary } from "./lib/experiment/analyze.ts";
export { writeExperimentReport } from "./lib/experiment/report.ts";
