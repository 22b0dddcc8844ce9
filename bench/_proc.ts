/**
 * What the benchmarks read of other processes from /proc.
 * @module
 */

/** sysconf(_SC_CLK_TCK) on Linux x86-64: /proc/PID/stat counts CPU time in these. */
const CLK_TCK = 100;

/** CPU seconds (utime + stime) of a process so far; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after "(comm)": state is field 3; utime 14 and stime 15 (proc(5)).
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}
