// The audit trail's one writer, shared by every sink. Records are stamped and buffered, and a
// background fiber chains what accumulated and hands it to the sink in one batch (group
// commit). `commit` waits for its record's batch to be in the sink (one waiter per batch, not
// per record); `append` does not wait. A failed batch is retried, the same records in the same
// order, until the sink takes it; meanwhile waiting commits fail, the log reports itself not
// ready and the programs refuse audited actions (fail closed). At shutdown what is left is
// written and the chain sealed with `audit.closed`; what cannot be written is counted and logged.
import { Clock, Deferred, Duration, Effect, Latch, Metric, Semaphore } from "effect"
import type { AuditEntry } from "../../domain/Audit.ts"
import { Unavailable } from "../../domain/Errors.ts"
import { AuditLog, AuditMetrics } from "../../services/AuditLog.ts"
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
  /**
   * Records held at most (buffered plus the batch being retried) while the sink fails; past
   * that, an append is dropped (and counted at once) and a commit fails.
   */
  readonly maxBuffered?: number
  /** How long shutdown keeps retrying a failing sink before it counts the rest as lost. */
  readonly shutdownGrace?: Duration.Input
  /**
   * Batches begin at least this far apart (wall time; 0: at once). A batch's write and sync
   * cost about the same for one record as for fifty (an fdatasync took ~100 µs of CPU on our
   * VMs), so under load the writer gathers records for a few ms instead of syncing each one.
   */
  readonly batchIntervalMs?: number
}

/** What the sinks' layers use: at most 200 batches a second, a commit waits 5 ms more at worst. */
export const BATCH_INTERVAL_MS = 5

// Defined with the contract (services/AuditLog.ts), so the metrics module can export them at 0.
export const { sinkUp, buffered, written, dropped } = AuditMetrics

const RETRY_FIRST = Duration.millis(100)
const RETRY_MAX = Duration.seconds(5)
/** Drops are counted one by one, but logged at most this often (with how many since the last line). */
const DROP_LOG_EVERY_MS = 1_000

interface Stamped {
  readonly entry: AuditEntry
  readonly at: number
}

/** Resolved once a batch is in the sink, failed when an attempt to write it fails. */
type Waiter = Deferred.Deferred<void, Unavailable>

const unavailable = new Unavailable({ service: "audit-log" })
const refused = Effect.fail(unavailable)

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
    // Open while the sink takes writes: ends a retry's wait early when another attempt (a
    // flush) already got through, so commits do not wait out a backoff on a working sink.
    const upLatch = yield* Latch.make(true)
    let buffer: Array<Stamped> = []
    // The waiter of the commits among `buffer`: it becomes the batch's waiter when the batch is taken.
    let waiter: Waiter | undefined
    // Chained lines the sink has not taken yet: kept, in order, across failed attempts.
    let pending: Array<string> = []
    let pendingWaiter: Waiter | undefined
    let up = true
    // Set once the shutdown's last attempt is over: the sink is closed, nothing more is taken.
    let closed = false
    let unloggedDrops = 0
    let lastDropLog = Number.NEGATIVE_INFINITY
    yield* Metric.update(sinkUp, 1)

    const logDrops = Effect.suspend(() => {
      const count = unloggedDrops
      unloggedDrops = 0
      return count === 0 ? Effect.void : Effect.logError("audit buffer full while the sink failed; records dropped").pipe(
        Effect.annotateLogs({ sink: sink.name, dropped: count })
      )
    })

    /** Counted the moment it happens, so the alarm fires even if the node stops before the sink recovers. */
    const drop = (now: number) =>
      Effect.gen(function*() {
        unloggedDrops += 1
        yield* Metric.update(dropped, 1)
        if (now - lastDropLog >= DROP_LOG_EVERY_MS) {
          lastDropLog = now
          yield* logDrops
        }
      })

    /** The bound counts everything held: the buffer and the batch being retried. */
    const hold = (entry: AuditEntry, at: number) => {
      if (closed || buffer.length + pending.length >= maxBuffered) return false
      buffer.push({ entry, at })
      return true
    }
    // Opening the latch can run the writer fiber synchronously, right here: a commit's waiter
    // must be in place before, or that batch would leave without it.
    const wakeWriter = () => Latch.openUnsafe(wake)
    const push = (entry: AuditEntry, at: number) => hold(entry, at) && (wakeWriter(), true)

    // Cleared before completing: a resumed caller may run synchronously and commit again.
    const failWaiters = () => {
      const waiting = [pendingWaiter, waiter]
      pendingWaiter = undefined
      waiter = undefined
      for (const each of waiting) if (each !== undefined) Deferred.doneUnsafe(each, refused)
    }

    /** Flips `up` at once (not when the returned effect runs), then reports the change. */
    const transition = (now: boolean): Effect.Effect<void> => {
      if (now === up) return Effect.void
      up = now
      if (now) Latch.openUnsafe(upLatch)
      else Latch.closeUnsafe(upLatch)
      return Effect.andThen(
        Metric.update(sinkUp, now ? 1 : 0),
        now
          ? Effect.logInfo("audit sink recovered; admitting audited actions again")
          : Effect.logError("audit sink failing; refusing audited actions until it recovers")
      ).pipe(Effect.annotateLogs({ sink: sink.name }))
    }

    /**
     * One attempt to move everything buffered into the sink (with `once`, only what is buffered
     * now: one batch). Uninterruptible: a batch is all or nothing.
     */
    const drainWith = (once: boolean): Effect.Effect<boolean> => lock.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
      for (let batches = 0; !once || batches < 1; batches++) {
        if (pending.length === 0) {
          if (buffer.length === 0) break
          const batch = buffer
          buffer = []
          pending = batch.map(({ at, entry }) => JSON.stringify(chain(entry, at)))
          pendingWaiter = waiter
          waiter = undefined
        }
        const ok = yield* Effect.match(sink.write(pending), { onFailure: () => false, onSuccess: () => true })
        if (!ok) {
          // Not ready before any commit can wait again (commits from now on fail at once), and
          // every waiting commit fails now, not after the retries: its records stay queued.
          const report = transition(false)
          failWaiters()
          yield* report
          yield* Metric.update(buffered, pending.length + buffer.length)
          return false
        }
        yield* Metric.update(written, pending.length)
        pending = []
        const taken = pendingWaiter
        pendingWaiter = undefined
        if (taken !== undefined) Deferred.doneUnsafe(taken, Effect.void)
        yield* transition(true)
      }
      yield* logDrops
      yield* Metric.update(buffered, buffer.length)
      return true
    })))
    const drain = drainWith(false)

    // Until the sink takes the batch: 100 ms, doubling, at most 5 s apart.
    const drainUntilTaken = (once: boolean) => Effect.gen(function*() {
      let delay = RETRY_FIRST
      while (!(yield* drainWith(once))) {
        yield* Effect.race(Effect.sleep(delay), upLatch.await)
        delay = Duration.min(Duration.times(delay, 2), RETRY_MAX)
      }
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (!push({ event: "audit.closed" }, now)) yield* drop(now)
        const done = yield* drainUntilTaken(false).pipe(Effect.timeoutOption(options.shutdownGrace ?? Duration.seconds(10)))
        // From here on nothing is taken: a late commit fails, a late append is counted as dropped.
        closed = true
        if (done._tag === "None") {
          // Every commit among these already failed at the first failed attempt (or fails
          // here): none was acknowledged. What was only appended is lost, and said so exactly.
          const lost = pending.length + buffer.length
          failWaiters()
          pending = []
          buffer = []
          yield* Metric.update(dropped, lost)
          yield* Metric.update(buffered, 0)
          yield* Effect.logError("audit sink failed at shutdown; records not written").pipe(
            Effect.annotateLogs({ sink: sink.name, lost })
          )
        }
        yield* logDrops
        yield* sink.close
      })
    )

    // Registered after the finalizer above, so it stops first and the flush then runs alone.
    // Wall time, not the Clock: pacing is about the sink's cost, and a test's clock that stands
    // still must not hold records back.
    const interval = options.batchIntervalMs ?? 0
    let nextBatchAt = 0
    const paced = Effect.suspend(() => {
      const wait = nextBatchAt - performance.now()
      return wait <= 0 ? Effect.void : Effect.callback<void>((resume) => {
        const timer = setTimeout(() => resume(Effect.void), wait)
        return Effect.sync(() => clearTimeout(timer))
      })
    })
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* wake.await
      if (interval > 0) yield* paced
      Latch.closeUnsafe(wake)
      nextBatchAt = performance.now() + interval
      // Paced, one batch at a time: what came in meanwhile waits for the next turn.
      yield* drainUntilTaken(interval > 0)
      if (buffer.length > 0) wakeWriter()
    })))

    const opened = yield* Clock.currentTimeMillis
    push({
      event: "audit.opened",
      cause: head === undefined ? "new" : head.event === "audit.closed" ? "resumed" : "unsealed"
    }, opened)

    const audit = AuditLog.of({
      append: (entry) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => push(entry, now) ? Effect.void : drop(now)),
      commit: (entry) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          // Not held: the action's record is lost, so the action is not acknowledged.
          if (!hold(entry, now)) return Effect.andThen(drop(now), refused)
          // Held and retried, but not durable now: the caller answers 503.
          if (!up) return (wakeWriter(), refused)
          const batch = waiter ?? (waiter = Deferred.makeUnsafe<void, Unavailable>())
          wakeWriter()
          return Deferred.await(batch)
        }),
      ready: Effect.sync(() => up && !closed)
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
