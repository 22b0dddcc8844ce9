/**
 * Keeps the current network document from a file: read when it appears, re-read when it
 * changes, verified every time; a bad new document is refused and the last good one kept.
 * @module
 */

import { DirectoryError, type SignedDocument, verifyDocument } from "./document.ts";
import type { Logger } from "../util/log.ts";

/** A directory source: `get()` returns the current verified document. */
export interface DirectoryWatch {
  /** The current document; throws DirectoryError if none has been loaded yet. */
  get(): SignedDocument;
  /** Resolves once a document is loaded (or rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<SignedDocument>;
  /** Stops watching. */
  stop(): void;
}

/** Watches `path`; `authority` (base64) pins the signing key. */
export function watchDirectory(
  path: string,
  options: { authority?: string; intervalMs?: number; log?: Logger } = {},
): DirectoryWatch {
  let current: SignedDocument | undefined;
  let lastText = "";
  let lastError = "";
  const load = () => {
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch {
      return;
    }
    if (text === lastText) return;
    lastText = text;
    try {
      current = verifyDocument(text, options.authority ? { authority: options.authority } : {});
      options.log?.info(`directory loaded: ${current.relays.length} relays`);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastError) options.log?.warn(`directory refused: ${msg}`);
      lastError = msg;
    }
  };
  load();
  const timer = setInterval(load, options.intervalMs ?? 500);
  return {
    get() {
      if (!current) load();
      if (!current) throw new DirectoryError(`no valid directory at ${path} yet`);
      return current;
    },
    async ready(timeoutMs = 30_000) {
      const t0 = Date.now();
      while (!current) {
        if (Date.now() - t0 > timeoutMs) {
          throw new DirectoryError(
            `no valid directory at ${path} after ${timeoutMs} ms${
              lastError ? `: ${lastError}` : ""
            }`,
          );
        }
        await new Promise((r) => setTimeout(r, 100));
        load();
      }
      return current;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
