/**
 * Machine load while an arm measures, for the self-check (was the machine the bottleneck?):
 * all CPUs' busy share from /proc/stat, a process's CPU time from /proc/PID/stat, and the
 * emulator's per-second lateness from its stats.json. Linux only; elsewhere null.
 * @module
 */

/** Load samples of one arm's measurement (load.json): what says whether the machine kept up. */
export interface LoadSample {
  /** Arm and run. */
  arm: string;
  run: number;
  /** Measurement seconds. */
  seconds: number;
  /** Share of all CPUs busy over the measurement (/proc/stat, 0–1). */
  cpu_busy: number | null;
  /** CPUs. */
  cpus: number;
  /** Highest per-second p99 of the emulator's late deliveries, ms (emulator/stats.json). */
  emulator_late_p99_ms: number | null;
  /** Per relay: CPU seconds used over the measurement per second of it (1 = one core). */
  relay_cpu: Record<string, number>;
}

/** Jiffies of all CPUs from /proc/stat's first line: busy and total. */
export interface CpuTimes {
  /** user + nice + system + irq + softirq + steal. */
  busy: number;
  /** busy + idle + iowait. */
  total: number;
}

/** Parses /proc/stat's `cpu` line (proc(5)); undefined when absent. */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** All CPUs' times now, or undefined off Linux. */
export async function cpuTimes(): Promise<CpuTimes | undefined> {
  try {
    return parseProcStat(await Deno.readTextFile("/proc/stat"));
  } catch {
    return undefined;
  }
}

/** The busy share between two readings (0–1), or null. */
export function busyShare(a: CpuTimes | undefined, b: CpuTimes | undefined): number | null {
  if (!a || !b || b.total <= a.total) return null;
  return (b.busy - a.busy) / (b.total - a.total);
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system) a process has used, from /proc/PID/stat fields 14 and 15
 * (after the parenthesized command name, which may hold spaces); undefined if it is gone.
 */
export async function processCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/stat`);
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(rest[11]) + Number(rest[12])) / USER_HZ;
  } catch {
    return undefined;
  }
}

/** Watches an arm's measurement: CPU share, relays' CPU and the emulator's lateness. */
export class LoadWatch {
  #cpu0: CpuTimes | undefined;
  #t0 = performance.now();
  #relay0 = new Map<string, number>();
  #lateP99: number[] = [];
  #pids: Record<string, number>;
  #emulatorStats: string | undefined;
  #lastStatsTime = "";

  private constructor(pids: Record<string, number>, emulatorStats?: string) {
    this.#pids = pids;
    this.#emulatorStats = emulatorStats;
  }

  /** Starts watching (reads the first CPU times). */
  static async start(pids: Record<string, number>, emulatorStats?: string): Promise<LoadWatch> {
    const w = new LoadWatch(pids, emulatorStats);
    w.#cpu0 = await cpuTimes();
    for (const [k, pid] of Object.entries(pids)) {
      const s = await processCpuSeconds(pid);
      if (s !== undefined) w.#relay0.set(k, s);
    }
    return w;
  }

  /** Reads the emulator's last-second lateness (call about once a second). */
  async sample(): Promise<void> {
    if (!this.#emulatorStats) return;
    try {
      const s = JSON.parse(await Deno.readTextFile(this.#emulatorStats)) as {
        time?: string;
        lateMs?: { p99?: number };
      };
      if (s.time !== this.#lastStatsTime && typeof s.lateMs?.p99 === "number") {
        this.#lastStatsTime = s.time ?? "";
        this.#lateP99.push(s.lateMs.p99);
      }
    } catch { /* not written yet */ }
  }

  /** Ends the watch: the load sample of this measurement. */
  async stop(arm: string, run: number): Promise<LoadSample> {
    const seconds = (performance.now() - this.#t0) / 1000;
    const relay_cpu: Record<string, number> = {};
    for (const [k, pid] of Object.entries(this.#pids)) {
      const a = this.#relay0.get(k), b = await processCpuSeconds(pid);
      if (a !== undefined && b !== undefined && seconds > 0) {
        relay_cpu[k] = Math.round((b - a) / seconds * 1000) / 1000;
      }
    }
    const busy = busyShare(this.#cpu0, await cpuTimes());
    return {
      arm,
      run,
      seconds: Math.round(seconds * 10) / 10,
      cpu_busy: busy === null ? null : Math.round(busy * 1000) / 1000,
      cpus: navigator.hardwareConcurrency,
      emulator_late_p99_ms: this.#lateP99.length ? Math.max(...this.#lateP99) : null,
      relay_cpu,
    };
  }
}
