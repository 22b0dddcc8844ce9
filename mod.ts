/**
 * pctcp: per-circuit TCP over IPsec for onion routing, and the tools to measure it.
 *
 * The public library API; everything here is re-exported from lib/.
 * @module
 */

export { VERSION } from "./lib/version.ts";
