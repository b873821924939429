// The audit trail's one writer, shared by every sink. `append` only stamps and buffers an
// entry (it never waits and never fails), and a background fiber chains what accumulated and
// hands it to the sink in one batch (group commit). A failed batch is retried, the same
// records in the same order, until the sink takes it; meanwhile the log reports itself not
// ready, and the programs refuse new sessions and tickets (fail closed). At shutdown the
// buffer is flushed and the chain sealed with `audit.closed`.
import { Clock, Duration, Effect, Latch, Metric, Semaphore } from "effect"
import type { AuditEntry } from "../../domain/Audit.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { type AuditRecord, type ChainHead, makeChain } from "./Chain.ts"

/** A sink refused or lost a write. Carries nothing: the writer retries, the log says which sink. */
export class SinkFailed {
  readonly _tag = "SinkFailed"
}

/** Where a node's chained records end up: a file directory, a Redis stream, memory. */
export interface Sink {
  /** For logs and metrics: `file`, `redis`, `memory`. */
  readonly name: string
  /**
   * The last record this node already left in the sink, so its chain continues across
   * restarts (and deleting a whole earlier file shows as a gap); undefined starts a chain.
   */
  readonly head: Effect.Effect<(ChainHead & { readonly event: string }) | undefined, SinkFailed>
  /** Appends whole lines, in order. On failure nothing of the batch may count as written. */
  readonly write: (lines: ReadonlyArray<string>) => Effect.Effect<void, SinkFailed>
  /** After the final write (shutdown). */
  readonly close: Effect.Effect<void>
}

export interface WriterOptions {
  readonly key: Uint8Array
  readonly node: string
  /** Entries held while the sink fails before new ones are dropped (and counted). */
  readonly maxBuffered?: number
  /** How long shutdown keeps retrying a failing sink before it gives up on the rest. */
  readonly shutdownGrace?: Duration.Input
}

export const sinkUp = Metric.gauge("tidings_audit_sink_up", {
  description: "1 while the audit sink takes writes; 0 while it fails (the node then refuses new sessions and tickets)"
})
export const buffered = Metric.gauge("tidings_audit_buffered", {
  description: "Audit records appended but not yet in the sink"
})
const written = Metric.counter("tidings_audit_records_total", {
  description: "Audit records, written to the sink or dropped because the buffer was full while the sink failed",
  incremental: true,
  attributes: { result: "written" }
})
const dropped = Metric.counter("tidings_audit_records_total", {
  description: "Audit records, written to the sink or dropped because the buffer was full while the sink failed",
  incremental: true,
  attributes: { result: "dropped" }
})

const RETRY_FIRST = Duration.millis(100)
const RETRY_MAX = Duration.seconds(5)

interface Stamped {
  readonly entry: AuditEntry
  readonly at: number
}

/**
 * Starts the writer in the current scope and returns the AuditLog plus `flush` (one write
 * attempt of everything buffered, true when the sink took it) for tests and shutdown.
 */
export const make = (sink: Sink, options: WriterOptions) =>
  Effect.gen(function*() {
    const maxBuffered = options.maxBuffered ?? 1_000_000
    const head = yield* sink.head
    const chain = makeChain(options.key, options.node, head)
    const lock = yield* Semaphore.make(1)
    const wake = yield* Latch.make(false)
    let buffer: Array<Stamped> = []
    // Chained lines the sink has not taken yet: kept, in order, across failed attempts.
    let pending: Array<string> = []
    let up = true
    let lost = 0
    yield* Metric.update(sinkUp, 1)

    const push = (entry: AuditEntry, at: number) => {
      if (buffer.length >= maxBuffered) {
        lost += 1
        return false
      }
      buffer.push({ entry, at })
      Latch.openUnsafe(wake)
      return true
    }

    const transition = (now: boolean) =>
      now === up ? Effect.void : Effect.gen(function*() {
        up = now
        yield* Metric.update(sinkUp, now ? 1 : 0)
        yield* now
          ? Effect.logInfo("audit sink recovered; admitting new sessions and tickets again")
          : Effect.logError("audit sink failing; refusing new sessions and tickets until it recovers")
      }).pipe(Effect.annotateLogs({ sink: sink.name }))

    /** One attempt to move everything buffered into the sink. Uninterruptible: a batch is all or nothing. */
    const drain: Effect.Effect<boolean> = lock.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
      while (true) {
        if (pending.length === 0) {
          if (buffer.length === 0) break
          const batch = buffer
          buffer = []
          pending = batch.map(({ at, entry }) => JSON.stringify(chain(entry, at)))
        }
        const ok = yield* Effect.match(sink.write(pending), { onFailure: () => false, onSuccess: () => true })
        yield* Metric.update(buffered, pending.length + buffer.length)
        if (!ok) {
          yield* transition(false)
          return false
        }
        yield* Metric.update(written, pending.length)
        pending = []
        yield* transition(true)
      }
      if (lost > 0) {
        yield* Metric.update(dropped, lost)
        yield* Effect.logError("audit buffer full while the sink failed; records dropped").pipe(
          Effect.annotateLogs({ sink: sink.name, dropped: lost })
        )
        lost = 0
      }
      yield* Metric.update(buffered, 0)
      return true
    })))

    // Until the sink takes the batch: 100 ms, doubling, at most 5 s apart.
    const drainUntilTaken = Effect.gen(function*() {
      let delay = RETRY_FIRST
      while (!(yield* drain)) {
        yield* Effect.sleep(delay)
        delay = Duration.min(Duration.times(delay, 2), RETRY_MAX)
      }
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        push({ event: "audit.closed" }, yield* Clock.currentTimeMillis)
        const done = yield* drainUntilTaken.pipe(Effect.timeoutOption(options.shutdownGrace ?? Duration.seconds(10)))
        if (done._tag === "None") {
          yield* Effect.logError("audit sink failed at shutdown; buffered records lost").pipe(
            Effect.annotateLogs({ sink: sink.name, lost: pending.length + buffer.length })
          )
        }
        yield* sink.close
      })
    )

    // Registered after the finalizer above, so it stops first and the flush then runs alone.
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* wake.await
      Latch.closeUnsafe(wake)
      yield* drainUntilTaken
    })))

    const opened = yield* Clock.currentTimeMillis
    push({
      event: "audit.opened",
      cause: head === undefined ? "new" : head.event === "audit.closed" ? "resumed" : "unsealed"
    }, opened)

    const audit = AuditLog.of({
      append: (entry) => Effect.map(Clock.currentTimeMillis, (now) => void push(entry, now)),
      ready: Effect.sync(() => up)
    })
    return { audit, flush: drain } as const
  })

export type Writer = Effect.Success<ReturnType<typeof make>>

/** Parses the last record a sink holds (to continue its chain), or undefined if it is not one. */
export const headOf = (line: string): (ChainHead & { readonly event: string }) | undefined => {
  try {
    const record = JSON.parse(line) as Partial<AuditRecord>
    return typeof record.seq === "number" && typeof record.mac === "string" && typeof record.event === "string"
      ? { seq: record.seq, mac: record.mac, event: record.event }
      : undefined
  } catch {
    return undefined
  }
}
