/**
 * Crontab entries for `pctcp schedule`: one line per entry, tagged with a trailing
 * `# pctcp-schedule NAME` comment (sh ignores it) so that `list` and `remove` find exactly
 * ours and `add` with the same name replaces instead of duplicating. Every path in the line is
 * absolute (cron runs with a bare environment in the home folder), output goes to a log file,
 * and `%` is escaped as cron requires (an unescaped `%` ends the command).
 * @module
 */

/** The tag that marks our lines. */
export const TAG = "# pctcp-schedule ";

/** One of our crontab entries. */
export interface ScheduleEntry {
  /** Its name (unique in the crontab). */
  name: string;
  /** The five cron time fields, e.g. `*\/5 * * * *`. */
  cron: string;
  /** The command cron runs (as written in the crontab, `%` escaped). */
  command: string;
  /** The whole line. */
  line: string;
}

/**
 * Cron time fields for "every N minutes/hours/days": `5m` → `*\/5 * * * *`, `1h` →
 * `0 * * * *`, `1d` → `0 0 * * *`. Only periods that divide the hour or the day evenly
 * (cron's `*\/N` restarts at each hour or day); a RangeError otherwise, a SyntaxError on a
 * malformed value.
 */
export function everyToCron(every: string): string {
  const m = /^(\d+)\s*(m|min|h|d)$/.exec(every.trim());
  if (!m) throw new SyntaxError(`not a period: ${every} (use e.g. 1m, 5m, 1h, 1d)`);
  const n = Number(m[1]);
  const unit = m[2]!;
  if (unit === "m" || unit === "min") {
    if (n < 1 || n > 60 || 60 % n !== 0) {
      throw new RangeError(`every ${n} minutes does not divide the hour (1,2,3,4,5,6,10,…,60)`);
    }
    return n === 60 ? "0 * * * *" : n === 1 ? "* * * * *" : `*/${n} * * * *`;
  }
  if (unit === "h") {
    if (n < 1 || n > 24 || 24 % n !== 0) {
      throw new RangeError(`every ${n} hours does not divide the day (1,2,3,4,6,8,12,24)`);
    }
    return n === 24 ? "0 0 * * *" : n === 1 ? "0 * * * *" : `0 */${n} * * *`;
  }
  if (n !== 1) throw new RangeError("days: only 1d (use a --cron expression for more)");
  return "0 0 * * *";
}

/** Checks five cron time fields (numbers, `*`, ranges, lists, steps); a SyntaxError if not. */
export function checkCronFields(cron: string): string {
  const fields = cron.trim().split(/\s+/);
  const ok = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
  if (fields.length !== 5 || !fields.every((f) => ok.test(f))) {
    throw new SyntaxError(`not five cron time fields: ${cron}`);
  }
  return fields.join(" ");
}

/** Quotes one word for sh (single quotes). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Escapes a command for a crontab line: `\` → `\\`, `%` → `\%` (crontab(5)). */
export function cronEscape(command: string): string {
  return command.replaceAll("\\", "\\\\").replaceAll("%", "\\%");
}

/** Options of {@linkcode makeEntry}. */
export interface EntryOptions {
  /** Entry name: letters, digits, `-`, `_`, `.`. */
  name: string;
  /** Five cron time fields. */
  cron: string;
  /** The program and its arguments, absolute paths (e.g. deno, run, -A, /…/main.ts, …). */
  argv: string[];
  /** Folder the command runs in (relative paths in its arguments resolve here). */
  cwd: string;
  /** Log file (stdout and stderr appended). */
  log: string;
}

/** Builds the crontab line of an entry. */
export function makeEntry(o: EntryOptions): ScheduleEntry {
  if (!/^[A-Za-z0-9_.-]+$/.test(o.name)) {
    throw new SyntaxError(`entry name may hold only letters, digits, - _ .: ${o.name}`);
  }
  for (const p of [o.cwd, o.log]) {
    if (!p.startsWith("/")) throw new TypeError(`not an absolute path: ${p}`);
  }
  const cron = checkCronFields(o.cron);
  const command = cronEscape(
    `cd ${shellQuote(o.cwd)} && ${o.argv.map(shellQuote).join(" ")} >>${shellQuote(o.log)} 2>&1`,
  );
  const line = `${cron} ${command} ${TAG}${o.name}`;
  if (line.includes("\n")) throw new SyntaxError("a crontab entry must be one line");
  return { name: o.name, cron, command, line };
}

/** Our entries in a crontab's text. */
export function parseEntries(text: string): ScheduleEntry[] {
  const out: ScheduleEntry[] = [];
  for (const line of text.split("\n")) {
    const i = line.lastIndexOf(TAG);
    if (i < 0 || line.trimStart().startsWith("#")) continue;
    const name = line.slice(i + TAG.length).trim();
    const fields = line.trim().split(/\s+/);
    out.push({
      name,
      cron: fields.slice(0, 5).join(" "),
      command: line.slice(0, i).trim().split(/\s+/).slice(5).join(" "),
      line,
    });
  }
  return out;
}

/**
 * The crontab text with `entry` added, replacing a line of ours with the same name in place
 * (so adding twice changes nothing), or appended at the end.
 */
export function withEntry(text: string, entry: ScheduleEntry): string {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const i = lines.findIndex((l) => parseEntries(l)[0]?.name === entry.name);
  if (i >= 0) lines[i] = entry.line;
  else lines.push(entry.line);
  return lines.join("\n") + "\n";
}

/** The crontab text without our entries named in `names` (all of ours when `names` is null). */
export function withoutEntries(text: string, names: string[] | null): string {
  const keep = text.split("\n").filter((l) => {
    const e = parseEntries(l)[0];
    return !e || (names !== null && !names.includes(e.name));
  });
  return keep.join("\n");
}

/** Reads and writes the user's crontab with the `crontab` command. */
export interface CrontabStore {
  /** The crontab's text, or null when the user has none. */
  read(): Promise<string | null>;
  /** Installs `text` (null or empty: removes the crontab). */
  write(text: string | null): Promise<void>;
}

async function runCrontab(args: string[], stdin?: string): Promise<Deno.CommandOutput> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("crontab", {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("no crontab command: install cron (Debian: apt-get install cron)");
    }
    throw e;
  }
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  return await child.output();
}

/** The user's crontab through `crontab -l`, `crontab -` and `crontab -r`. */
export function systemCrontab(): CrontabStore {
  return {
    async read() {
      const out = await runCrontab(["-l"]);
      const err = new TextDecoder().decode(out.stderr);
      if (!out.success) {
        if (/no crontab/i.test(err)) return null;
        throw new Error(`crontab -l failed: ${err.trim()}`);
      }
      return new TextDecoder().decode(out.stdout);
    },
    async write(text) {
      if (text === null || text.trim() === "") {
        const out = await runCrontab(["-r"]);
        const err = new TextDecoder().decode(out.stderr);
        if (!out.success && !/no crontab/i.test(err)) {
          throw new Error(`crontab -r failed: ${err.trim()}`);
        }
        return;
      }
      const out = await runCrontab(["-"], text);
      if (!out.success) {
        throw new Error(
          `crontab refused the entry: ${new TextDecoder().decode(out.stderr).trim()}`,
        );
      }
    },
  };
}

/**
 * Runs `fn` holding an exclusive lock (flock) on `/tmp/pctcp-crontab-UID.lock`, so that two
 * `pctcp schedule` commands do not interleave their read-modify-write of one crontab.
 */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const path = `/tmp/pctcp-crontab-${Deno.uid() ?? "user"}.lock`;
  const f = await Deno.open(path, { create: true, write: true });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close(); // releases the lock
  }
}

/** Adds or replaces an entry in the store; returns the entry. */
export function addEntry(store: CrontabStore, entry: ScheduleEntry): Promise<ScheduleEntry> {
  return withLock(async () => {
    const text = (await store.read()) ?? "";
    const next = withEntry(text, entry);
    if (next !== text) await store.write(next);
    return entry;
  });
}

/** Our entries in the store. */
export async function listEntries(store: CrontabStore): Promise<ScheduleEntry[]> {
  return parseEntries((await store.read()) ?? "");
}

/**
 * Removes our entries named in `names` (all of ours when null); returns those removed. A
 * crontab left empty is removed, so a user who had none before `add` has none after.
 */
export function removeEntries(
  store: CrontabStore,
  names: string[] | null,
): Promise<ScheduleEntry[]> {
  return withLock(async () => {
    const text = await store.read();
    if (text === null) return [];
    const ours = parseEntries(text).filter((e) => names === null || names.includes(e.name));
    if (!ours.length) return [];
    const next = withoutEntries(text, names);
    await store.write(next.trim() === "" ? null : next);
    return ours;
  });
}
