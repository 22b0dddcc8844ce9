/**
 * `pctcp keygen`: makes a relay's identity, onion and link keys.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { fingerprint, generateRelayKeys, relayKeysToJson } from "../lib/directory/keys.ts";

/** Builds the `keygen` command. */
export function keygenCommand(): Command {
  return new Command("keygen")
    .description("make a relay's keys (Ed25519 identity, ntor onion key, link key) as JSON")
    .requiredOption("--out <file>", "keys file to write (mode 0600; refuses to overwrite)")
    .action((o: { out: string }) =>
      run(async () => {
        const keys = generateRelayKeys();
        try {
          await Deno.writeTextFile(o.out, relayKeysToJson(keys) + "\n", {
            createNew: true,
            mode: 0o600,
          });
        } catch (e) {
          if (e instanceof Deno.errors.AlreadyExists) {
            throw new UsageError(`${o.out} exists; not overwriting keys`);
          }
          throw e;
        }
        console.log(
          JSON.stringify({ keys: o.out, fingerprint: fingerprint(keys.identity.public) }),
        );
      })
    );
}
