/**
 * `pctcp keygen`: makes a relay's identity, onion and link keys.
 * @module
 */

import { Command } from "commander";
import { run, UsageError } from "./_common.ts";
import { generateRelayKeys, relayFingerprint, relayKeysToJson } from "../lib/directory/keys.ts";

/** Builds the `keygen` command. */
export function keygenCommand(): Command {
  return new Command("keygen")
    .description(
      "make a relay's keys as JSON: Tor's set (RSA-1024 identity and TAP key, Ed25519 identity, signing and link-auth keys with their certificates, ntor key, TLS certificate) and PCTCP's link key",
    )
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
        // tor's `--list-fingerprint` form; the file says the rest.
        console.log(`fingerprint ${relayFingerprint(keys)}`);
      })
    );
}
