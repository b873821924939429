// Preloaded (`node --import bench/lib/probe.ts`) into every server the bench starts, Tidings
// and floor alike, so both are measured by the same code: event-loop delay (perf_hooks, 10 ms
// resolution), heap and RSS as the process sees them, answered over the IPC channel the bench
// opened. It never touches the server's own code; the server exits if the bench goes away.
import { monitorEventLoopDelay } from "node:perf_hooks"
import { getHeapSpaceStatistics, writeHeapSnapshot } from "node:v8"

interface ProbeRequest {
  readonly benchProbe: number
  /** Run a full GC first (the servers are started with --expose-gc) for memory figures. */
  readonly gc?: boolean
  /** Start a fresh event-loop-delay window after answering. */
  readonly reset?: boolean
  /** Write a heap snapshot here (diagnosis runs only: it stops the server for seconds). */
  readonly snapshot?: string
}

if (process.send !== undefined) {
  const eld = monitorEventLoopDelay({ resolution: 10 })
  eld.enable()
  const gc = (globalThis as { gc?: () => void }).gc
  process.on("message", (message: ProbeRequest) => {
    if (typeof message !== "object" || message === null || typeof message.benchProbe !== "number") return
    if (message.gc === true && gc !== undefined) {
      gc()
      gc()
    }
    const memory = process.memoryUsage()
    if (typeof message.snapshot === "string") writeHeapSnapshot(message.snapshot)
    process.send!({
      benchProbe: message.benchProbe,
      eld: {
        count: eld.count,
        p50: eld.percentile(50) / 1e6,
        p99: eld.percentile(99) / 1e6,
        max: eld.max / 1e6,
        mean: eld.mean / 1e6
      },
      memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external, arrayBuffers: memory.arrayBuffers },
      // Committed bytes per V8 space: where a process's heap RSS goes (new space is fixed
      // once grown; old space follows what is kept).
      spaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]))
    })
    if (message.reset === true) eld.reset()
  })
  // The channel alone must not keep a server alive, and a server must not outlive the bench.
  process.channel?.unref()
  process.on("disconnect", () => process.exit(0))
}
