// The audit writer, whatever the sink: a commit is answered only once its batch is in the sink,
// an append never waits; a failing sink fails waiting commits and the node closed until it
// recovers, and loses nothing it could hold; the bound counts everything held and a drop is
// counted at once; shutdown refuses and reports what it could not write. The file sink's own
// behaviour is in FileSink.test.ts.
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Logger, Metric, Queue, Scope } from "effect"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { decodeJwt } from "jose"
import { closeFor } from "../../src/domain/Close.ts"
import { ClosedNormally, type GatewayError } from "../../src/domain/Errors.ts"
import type { PatientRef } from "../../src/domain/Ref.ts"
import * as Writer from "../../src/interpreters/audit/Writer.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import * as Session from "../../src/programs/Session.ts"
import * as Tickets from "../../src/programs/Tickets.ts"
import type { AccessGrant } from "../../src/services/AccessTokens.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import { memoryLayer } from "../support/layers.ts"

const key = randomBytes(32)

const alice: AccessGrant = { principal: { _tag: "Patient", ref: "pt_alice_0001" as PatientRef }, expiresAt: 3_600, issuedAt: 0 }

/** A session on a socket that sends nothing: enough to see whether it is admitted. */
const sessionWith = (ticket: string) =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<never, GatewayError>()
    const transport: Session.Transport = {
      origin: "https://app.example",
      peer: "192.0.2.10",
      ticket,
      outbox: { offer: () => true },
      closed: (error) => Deferred.doneUnsafe(ended, Exit.fail(error))
    }
    const session = yield* Session.start(transport)
    /** Fails with the error that ended the session, once it is closed and audited. */
    return { run: Deferred.await(ended), close: Effect.sync(() => session.end(new ClosedNormally())) }
  })

/**
 * A sink under the test's control: `failing` refuses every write; `gate` (when set) holds each
 * write until it opens. `batches` are the batches it took, in order.
 */
const controlledSink = () => {
  const state = {
    failing: false,
    gate: undefined as Deferred.Deferred<void> | undefined,
    attempts: 0,
    batches: [] as Array<ReadonlyArray<string>>
  }
  const sink: Writer.Sink = {
    name: "test",
    head: Effect.succeed(undefined),
    write: (lines) =>
      Effect.gen(function*() {
        state.attempts += 1
        if (state.gate !== undefined) yield* Deferred.await(state.gate)
        if (state.failing) return yield* Effect.fail(new Writer.SinkFailed())
        state.batches.push([...lines])
      }),
    close: Effect.void
  }
  const events = () => state.batches.flat().map((line) => JSON.parse(line) as { event: string; jti?: string })
  return { state, sink, events }
}

/** A failed assertion must not leave the sink failing: the scope's final flush would retry it forever on the TestClock. */
const recoverAtEnd = (state: { failing: boolean }) => Effect.ensuring(Effect.sync(() => void (state.failing = false)))

/** `tidings_audit_records_total{result="dropped"}` as an exporter would read it. */
const droppedSoFar = Effect.map(Metric.snapshot, (all) => {
  const counter = all.find((m) => m.id === "tidings_audit_records_total" && m.attributes?.result === "dropped")
  return counter?.type === "Counter" ? Number(counter.state.count) : 0
})

/** Log lines as the structured logger sees them, for checking what the writer reports. */
const captureLogs = () => {
  const lines: Array<{ message: unknown; level: string; annotations: Record<string, unknown> }> = []
  const layer = Logger.layer([Logger.map(Logger.formatStructured, (line) => void lines.push(line))])
  return { lines, layer }
}

describe("the audit writer", () => {
  it.effect("never makes an append wait for the sink: tickets are issued while a write hangs", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      let writes = 0
      const slow: Writer.Sink = {
        name: "slow",
        head: Effect.succeed(undefined),
        write: () => Effect.andThen(Effect.sync(() => void writes++), Deferred.await(release)),
        close: Effect.void
      }
      const writer = yield* Writer.make(slow, { key, node: "node-1" })
      // The writer fiber takes the first batch and hangs in the sink.
      yield* Effect.yieldNow
      for (let i = 0; i < 1_000; i++) yield* writer.audit.append({ event: "ws.opened", result: "ok" })
      expect(writes).toBe(1)
      expect(yield* writer.audit.ready).toBe(true)
      yield* Deferred.succeed(release, undefined)
    }).pipe(Effect.scoped))

  it.effect("answers a commit only once the sink took its batch, one batch for many commits", () =>
    Effect.gen(function*() {
      const { sink, state } = controlledSink()
      state.gate = yield* Deferred.make<void>()
      const writer = yield* Writer.make(sink, { key, node: "node-1" })
      // The writer takes the first batch (audit.opened) and hangs in the sink.
      yield* Effect.yieldNow
      const commits = yield* Effect.forkChild(Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => writer.audit.commit({ event: "event.published", jti: `jti_${i}`, result: "ok" }),
        { concurrency: "unbounded" }
      ))
      yield* Effect.yieldNow
      expect(commits.pollUnsafe()).toBeUndefined()
      expect(state.batches).toEqual([])

      yield* Deferred.succeed(state.gate, undefined)
      yield* Fiber.join(commits)
      // The hundred commits waited on one batch, written after the first.
      expect(state.batches.map((batch) => batch.length)).toEqual([1, 100])
    }).pipe(Effect.scoped))

  // Sequential commits, each awaited: without pacing every one is its own batch (the writer
  // runs as soon as it is woken); paced, those that come while a batch is recent wait and share
  // the next one. Wall time (it.live): pacing is about the sink's cost, not the Clock.
  const sequentialBatches = (batchIntervalMs: number) =>
    Effect.gen(function*() {
      const { sink, state } = controlledSink()
      const writer = yield* Writer.make(sink, { key, node: "node-1", batchIntervalMs })
      yield* writer.audit.commit({ event: "event.published", jti: "jti_first", result: "ok" })
      const started = performance.now()
      const rest = yield* Effect.forkChild(Effect.forEach(
        Array.from({ length: 5 }, (_, i) => i),
        (i) => Effect.andThen(Effect.yieldNow, writer.audit.append({ event: "event.published", jti: `jti_${i}`, result: "ok" })),
        { discard: true }
      ).pipe(Effect.andThen(writer.audit.commit({ event: "event.published", jti: "jti_last", result: "ok" }))))
      yield* Fiber.join(rest)
      return { batches: state.batches.map((batch) => batch.length), waitedMs: performance.now() - started }
    }).pipe(Effect.scoped)

  it.live("begins paced batches at least batchIntervalMs apart: what comes meanwhile shares one batch", () =>
    Effect.gen(function*() {
      const paced = yield* sequentialBatches(1_000)
      // audit.opened and the first commit, then everything after it in one batch.
      expect(paced.batches).toEqual([2, 6])
      expect(paced.waitedMs).toBeGreaterThanOrEqual(900)
    }))

  it.live("without pacing, writes whatever it was woken for at once", () =>
    Effect.gen(function*() {
      const unpaced = yield* sequentialBatches(0)
      expect(unpaced.batches.length).toBeGreaterThan(3)
    }))

  it.effect("fails a waiting commit at the first failed write, keeps its record, and writes it once the sink recovers", () => {
    const { sink, state, events } = controlledSink()
    return Effect.gen(function*() {
      const writer = yield* Writer.make(sink, { key, node: "node-1" })
      yield* Effect.yieldNow
      state.failing = true
      const failed = yield* Effect.flip(writer.audit.commit({ event: "event.published", jti: "jti_1", result: "ok" }))
      expect(failed).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect(yield* writer.audit.ready).toBe(false)
      // While the sink fails, a commit fails at once; its record is held all the same.
      const attempts = state.attempts
      expect(yield* Effect.flip(writer.audit.commit({ event: "event.published", jti: "jti_2", result: "ok" })))
        .toMatchObject({ _tag: "Unavailable" })
      expect(state.attempts).toBe(attempts)

      state.failing = false
      // The writer retries on its own, 100 ms after the failure.
      yield* TestClock.adjust("100 millis")
      expect(yield* writer.audit.ready).toBe(true)
      expect(events().map((r) => r.jti)).toEqual([undefined, "jti_1", "jti_2"])
      yield* writer.audit.commit({ event: "event.published", jti: "jti_3", result: "ok" })
      expect(events().map((r) => r.jti)).toEqual([undefined, "jti_1", "jti_2", "jti_3"])
    }).pipe(recoverAtEnd(state), Effect.scoped)
  })

  it.effect("never holds more than its bound, the batch being retried included, and counts each drop at once", () => {
    const { sink, state, events } = controlledSink()
    return Effect.gen(function*() {
      state.failing = true
      const writer = yield* Writer.make(sink, { key, node: "node-1", maxBuffered: 10 })
      // audit.opened and five records become the batch that fails and is retried.
      for (let i = 0; i < 5; i++) yield* writer.audit.append({ event: "ws.closed", jti: `held_${i}`, result: "ok" })
      expect(yield* writer.flush).toBe(false)
      const before = yield* droppedSoFar
      for (let i = 5; i < 15; i++) yield* writer.audit.append({ event: "ws.closed", jti: `held_${i}`, result: "ok" })
      // 6 in the pending batch + 4 buffered = 10: the other six were dropped, and counted before any recovery.
      expect((yield* droppedSoFar) - before).toBe(6)
      // A commit that cannot be held fails: its action is never acknowledged.
      expect(yield* Effect.flip(writer.audit.commit({ event: "event.published", jti: "refused", result: "ok" })))
        .toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect((yield* droppedSoFar) - before).toBe(7)

      state.failing = false
      expect(yield* writer.flush).toBe(true)
      expect(events().map((r) => r.jti)).toEqual([undefined, ...Array.from({ length: 9 }, (_, i) => `held_${i}`)])
    }).pipe(recoverAtEnd(state), Effect.scoped)
  })

  it.effect("at shutdown with a failing sink, fails the waiting commit and reports exactly what it could not write", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const { sink, state } = controlledSink()
      const scope = yield* Scope.make()
      const writer = yield* Writer.make(sink, { key, node: "node-1", shutdownGrace: "1 second" }).pipe(Scope.provide(scope))
      yield* Effect.yieldNow
      // The sink hangs on the next batch, then refuses it and every later one.
      state.gate = yield* Deferred.make<void>()
      state.failing = true
      const waiting = yield* Effect.forkChild(writer.audit.commit({ event: "event.published", jti: "waiting", result: "ok" }))
      yield* Effect.yieldNow
      yield* writer.audit.append({ event: "ws.closed", result: "ok" })
      yield* writer.audit.append({ event: "ws.closed", result: "ok" })
      const before = yield* droppedSoFar

      const shutdown = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Deferred.succeed(state.gate, undefined)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(shutdown)

      expect(yield* Effect.flip(Fiber.join(waiting))).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      // The waiting commit's record, two appended ones and the seal.
      expect((yield* droppedSoFar) - before).toBe(4)
      expect(logs.lines.find((line) => line.message === "audit sink failed at shutdown; records not written"))
        .toMatchObject({ level: "ERROR", annotations: { sink: "test", lost: 4 } })
      // Closed: a late commit is refused, not lost silently.
      expect(yield* Effect.flip(writer.audit.commit({ event: "event.published", result: "ok" }))).toMatchObject({ _tag: "Unavailable" })
      expect(yield* writer.audit.ready).toBe(false)
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("fails closed while the sink fails (503 for tickets, 4503 for sessions) and loses nothing", () =>
    Effect.gen(function*() {
      const records = yield* MemoryAuditRecords
      const before = yield* Tickets.issue(alice)
      records.failWrites(true)
      // Still ready until a write fails: this ticket's record is the one the sink refuses, so
      // the ticket is refused (503) and its record kept for later.
      const late = yield* Effect.flip(Tickets.issue(alice))
      expect(late).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect(yield* (yield* AuditLog).ready).toBe(false)

      const refused = yield* Effect.flip(Tickets.issue(alice))
      expect(refused).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      const session = yield* sessionWith(before.ticket)
      const ended = yield* Effect.flip(session.run)
      expect(ended).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect(closeFor(ended).code).toBe(4503)

      records.failWrites(false)
      expect(yield* records.flush).toBe(true)
      expect(yield* (yield* AuditLog).ready).toBe(true)
      // The ticket refused for the audit's sake was never burned: it opens a session now.
      const admitted = yield* sessionWith(before.ticket)
      const fiber = yield* Effect.forkChild(admitted.run)
      yield* Effect.yieldNow
      yield* admitted.close
      const exit = yield* Fiber.await(fiber)
      expect(exit._tag === "Failure" && closeFor(Cause.squash(exit.cause) as never).code).toBe(1000)

      const all = yield* records.all
      expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1))
      const events = all.map((r) => r.event)
      // The late ticket's record came through after the sink recovered; the refused one has none.
      expect(events.slice(0, 3)).toEqual(["audit.opened", "ticket.issued", "ticket.issued"])
      expect(events.filter((e) => e === "ticket.issued")).toHaveLength(2)
      expect(all.filter((r) => r.event === "ticket.issued").map((r) => r.jti)).toContain(decodeJwt(before.ticket).jti)
      // The refused session's close, written while the sink failed, came through after it recovered.
      expect(all.filter((r) => r.event === "ws.closed").map((r) => r.close)).toEqual([4503, 1000])
      expect(events).toContain("ws.opened")
    }).pipe(Effect.provide(memoryLayer())))
})
