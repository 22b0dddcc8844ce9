/**
 * Path selection (tor's path-spec, simplified): exit first from exit-flagged relays, then a
 * guard from guard-flagged ones, then a middle, each chosen with probability proportional to
 * bandwidth, all distinct. Or a pinned path by nickname or fingerprint.
 * @module
 */

import type { RelayEntry } from "../directory/document.ts";

/** Picks one of `relays` weighted by bandwidth; `random()` in [0,1). */
export function weightedPick(relays: RelayEntry[], random: () => number): RelayEntry | undefined {
  const total = relays.reduce((n, r) => n + Math.max(1, r.bandwidth), 0);
  let x = random() * total;
  for (const r of relays) {
    x -= Math.max(1, r.bandwidth);
    if (x < 0) return r;
  }
  return relays[relays.length - 1];
}

/** Chooses a path of `length` hops (≥ 1) honouring guard and exit flags. */
export function choosePath(
  relays: RelayEntry[],
  options: { length?: number; random?: () => number } = {},
): RelayEntry[] {
  const length = options.length ?? 3;
  const random = options.random ?? Math.random;
  const exits = relays.filter((r) => r.flags.includes("exit"));
  const exit = weightedPick(exits, random);
  if (!exit) throw new RangeError("no exit relay in the directory");
  if (length === 1) return [exit];
  const used = new Set([exit.fingerprint]);
  const guards = relays.filter((r) => r.flags.includes("guard") && !used.has(r.fingerprint));
  const guard = weightedPick(
    guards.length ? guards : relays.filter((r) => !used.has(r.fingerprint)),
    random,
  );
  if (!guard) throw new RangeError("not enough relays for a path");
  used.add(guard.fingerprint);
  const middles: RelayEntry[] = [];
  for (let i = 0; i < length - 2; i++) {
    const m = weightedPick(relays.filter((r) => !used.has(r.fingerprint)), random);
    if (!m) throw new RangeError(`not enough relays for a ${length}-hop path`);
    used.add(m.fingerprint);
    middles.push(m);
  }
  return [guard, ...middles, exit];
}

/** Resolves a pinned path of nicknames or fingerprints; a RangeError names an unknown one. */
export function pinnedPath(relays: RelayEntry[], names: string[]): RelayEntry[] {
  return names.map((n) => {
    const r = relays.find((x) => x.nickname === n || x.fingerprint === n.toUpperCase());
    if (!r) throw new RangeError(`no relay named ${n} in the directory`);
    return r;
  });
}
