/**
 * The toolkit's version, read from deno.json at build time so there is one source.
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The pctcp version (semver), recorded in every measurement run. */
export const VERSION: string = denoJson.version;
