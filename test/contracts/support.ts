// Helpers shared by the contract suites: fresh refs per test (so no test sees another's keys),
// event drafts, and bounded real-time waits for what Redis delivers through pub/sub.
import { Cause, Duration, Effect, Exit } from "effect"
import * as Channel from "../../src/domain/Channel.ts"
import type { EventDraft } from "../../src/domain/Event.ts"
import { type Subject, subjectFor, type UserRole } from "../../src/domain/Principal.ts"
import type { ClinicianRef, EventId, EventRef, Jti, PatientRef } from "../../src/domain/Ref.ts"

let counter = 0
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`

/** A ref no other test uses: `<prefix>_<run>_<n>`, within `[A-Za-z0-9_-]{8,64}`. */
export const fresh = (prefix: string): string => `${prefix}_${run}_${(++counter).toString(36)}`

export const patientRef = (): PatientRef => fresh("pt") as PatientRef
export const clinicianRef = (): ClinicianRef => fresh("cl") as ClinicianRef
/** A fresh session subject (`role:ref`, a patient unless told otherwise). */
export const freshSubject = (role: UserRole = "patient"): Subject => subjectFor(role, fresh("sb"))
export const jti = (): Jti => fresh("jti_0000000000") as Jti
export const eventId = (): EventId => fresh("evt") as EventId

/** A patient channel no other test uses. */
export const channel = (): Channel.Channel => Channel.patient(patientRef())

/** A draft with a fresh id (or the given one) for the channel. */
export const draft = (on: Channel.Channel, id: EventId = eventId()): EventDraft => ({
  id,
  channel: on,
  kind: "task.assigned",
  ref: fresh("tsk") as EventRef,
  at: new Date(1_700_000_000_000 + counter).toISOString()
})

/**
 * Polls `probe` every 10 ms until `accept` holds, failing the test after `withinMs` (real time:
 * only for `it.live`). Returns the elapsed milliseconds.
 */
export const eventually = <A, E, R>(
  probe: Effect.Effect<A, E, R>,
  accept: (value: A) => boolean,
  withinMs: number,
  what: string
): Effect.Effect<number, E | Error, R> =>
  Effect.gen(function*() {
    const started = Date.now()
    while (true) {
      const value = yield* probe
      if (accept(value)) return Date.now() - started
      if (Date.now() - started >= withinMs) {
        return yield* Effect.fail(new Error(`not within ${withinMs} ms: ${what} (last: ${JSON.stringify(value)})`))
      }
      yield* Effect.sleep(Duration.millis(10))
    }
  })

/** Waits until `condition()` holds (a listener has heard enough), at most `withinMs` of real time. */
export const until = (condition: () => boolean, what: string, withinMs = 2_000) =>
  eventually(Effect.sync(condition), (ok) => ok, withinMs, what)

/**
 * How an effect ended, as one comparable string: "ok", "<Tag>" or "<Tag>:<service>" for a
 * failure, "defect: ..." for a die, "timeout" when it took longer than `withinMs` (real time).
 */
export const outcome = <A, E, R>(self: Effect.Effect<A, E, R>, withinMs = 3_000): Effect.Effect<string, never, R> =>
  self.pipe(
    Effect.timeout(Duration.millis(withinMs)),
    Effect.exit,
    Effect.map((exit) => {
      if (Exit.isSuccess(exit)) return "ok"
      const cause = exit.cause
      if (Cause.hasDies(cause)) return `defect: ${String(Cause.squash(cause))}`
      const error = Cause.squash(cause)
      if (Cause.isTimeoutError(error)) return "timeout"
      if (typeof error === "object" && error !== null && "_tag" in error) {
        const tagged = error as { readonly _tag: string; readonly service?: string }
        return tagged.service === undefined ? tagged._tag : `${tagged._tag}:${tagged.service}`
      }
      return `failure: ${String(error)}`
    })
  )
