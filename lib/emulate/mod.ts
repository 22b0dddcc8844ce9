/**
 * A packet-level network emulator in user space on TUN devices (this kernel has no netem):
 * per-host up/down bandwidth with bounded drop-tail queues, per-pair one-way latency, jitter
 * without reordering, Bernoulli or Gilbert-Elliott loss, seeded; configured by flags, per host
 * and per pair fields, or Shadow's GML network graph.
 * @module
 */

export * from "./units.ts";
export * from "./gml.ts";
export * from "./config.ts";
export * from "./model.ts";
export * from "./engine.ts";
export * from "./tun.ts";
