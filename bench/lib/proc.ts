// What the kernel says about a process: resident memory and CPU time, from /proc. CPU time is
// utime + stime in clock ticks (USER_HZ, 100 on Linux) and covers every thread of the process.
import { readFileSync } from "node:fs"

const TICK_US = 1_000_000 / 100

/** VmRSS in bytes, or 0 if the process is gone. */
export const rssBytes = (pid: number): number => {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/** utime + stime in microseconds (10 ms resolution), or 0 if the process is gone. */
export const cpuUs = (pid: number): number => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may hold spaces; fields are counted after its closing paren.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * TICK_US
  } catch {
    return 0
  }
}

/** CPU of several processes together (the servers of a two-node scenario). */
export const cpuUsOf = (pids: ReadonlyArray<number>): number => pids.reduce((sum, pid) => sum + cpuUs(pid), 0)

export const machineCpuUs = (): number => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!
  const [, user, nice, system] = line.split(/\s+/)
  return (Number(user) + Number(nice) + Number(system)) * TICK_US
}
