/**
 * Small assertion helpers for the tests (@std/assert is on JSR, which is unreachable here).
 * @module
 */

/** Throws unless `cond` is truthy. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

function show(v: unknown): string {
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})[${toHex(v)}]`;
  try {
    return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? `${x}n` : x);
  } catch {
    return String(v);
  }
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

/** Throws unless `actual` deep-equals `expected` (Uint8Arrays compared by bytes). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!deepEqual(actual, expected)) {
    throw new Error(`${msg ? msg + ": " : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Throws unless `actual` includes `part`. */
export function assertStringIncludes(actual: string, part: string): void {
  if (!actual.includes(part)) throw new Error(`expected ${show(actual)} to include ${show(part)}`);
}

/** Throws unless `fn` throws an error of class `cls` whose message includes `includes`. */
export function assertThrows(
  fn: () => unknown,
  cls: abstract new (...a: never[]) => Error = Error,
  includes = "",
): Error {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${show(String(e))}`);
    if (!e.message.includes(includes)) {
      throw new Error(`expected message to include ${show(includes)}, got ${show(e.message)}`);
    }
    return e;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

/** Async variant of assertThrows. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls: abstract new (...a: never[]) => Error = Error,
  includes = "",
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${show(String(e))}`);
    if (!e.message.includes(includes)) {
      throw new Error(`expected message to include ${show(includes)}, got ${show(e.message)}`);
    }
    return e;
  }
  throw new Error(`expected ${cls.name} to be rejected`);
}

/** Hex string → bytes (for test vectors). */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * For `Deno.test({ ignore: skipUnless(ok, reason) })`: true (ignore the test) unless `ok`.
 * A skip is recorded with its reason in `$PCTCP_SKIP_LOG` (set by scripts/test.sh), which
 * names every skipped test and why above its closing line.
 */
export function skipUnless(ok: unknown, reason: string): boolean {
  if (ok) return false;
  const log = Deno.env.get("PCTCP_SKIP_LOG");
  if (log) {
    // The caller's file, from the stack: "at file:///…/tests/x_test.ts:12:3".
    const where = new Error().stack?.split("\n")[2]?.match(/(file:\/\/\/[^:)]+)/)?.[1] ?? "";
    const file = where ? new URL(where).pathname : "?";
    Deno.writeTextFileSync(log, `${file}\t${reason}\n`, { append: true });
  }
  return true;
}

/**
 * Awaits `p`, failing with `what` if it has not settled within `ms`. For an upper bound on
 * a hang (e.g. 60 s on a loaded 2-core box), not a timing check: the test waits for the
 * event itself, and the bound only turns "never" into a failure.
 */
export async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (not within ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
