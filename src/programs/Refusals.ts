// Refused authentication, authorization and WebSocket upgrades, audited without letting a
// flood write the disk full: refusals are counted per (address, event, cause) and written as
// one record per interval with a `count`. The address goes to the sink raw, in memory only;
// the audit chain writes its keyed pseudonym (interpreters/audit/Chain.ts).
import { Context, Effect, Layer } from "effect"
import type { AuditEvent } from "../domain/Audit.ts"
import { AuditLog } from "../services/AuditLog.ts"

/** How long refusals are counted before their records are written (docs/SECURITY.md). */
export const INTERVAL_MS = 10_000

/**
 * Distinct (address, event, cause) counts held at once. A flood from more addresses than this
 * writes its records early rather than growing memory: still one record per address and
 * cause, never one per request.
 */
export const MAX_PENDING = 10_000

export type RefusalEvent = Extract<AuditEvent, "auth.refused" | "ws.rejected">

export interface Refusal {
  readonly event: RefusalEvent
  /** A fixed code: an Unauthenticated cause, `forbidden`, or an upgrade rejection reason. */
  readonly cause: string
  /** The caller's network address (raw; pseudonymized by the audit sink). */
  readonly peer: string
  /** Only an origin already on the allowlist (never caller text). */
  readonly origin?: string | undefined
}

interface Pending {
  readonly refusal: Refusal
  count: number
}

export class Refusals extends Context.Service<Refusals, {
  /** Counts one refusal; never waits and never fails. */
  readonly refused: (refusal: Refusal) => Effect.Effect<void>
  /** Writes every pending count now (the interval timer, shutdown, tests). */
  readonly flush: Effect.Effect<void>
}>()("tidings/Refusals") {
  static readonly layer = (intervalMs: number = INTERVAL_MS) =>
    Layer.effect(
      Refusals,
      Effect.gen(function*() {
        const audit = yield* AuditLog
        let pending = new Map<string, Pending>()
        const flush = Effect.suspend(() => {
          if (pending.size === 0) return Effect.void
          const batch = pending
          pending = new Map()
          return Effect.forEach(batch.values(), ({ count, refusal }) =>
            audit.append({
              event: refusal.event,
              result: "refused",
              cause: refusal.cause,
              peer: refusal.peer,
              count,
              ...(refusal.origin === undefined ? {} : { origin: refusal.origin })
            }), { discard: true })
        })
        // Registered before the timer fiber, so the timer stops first and this flush runs
        // last: a clean stop loses no count, and the AuditLog (built before us) is still open.
        yield* Effect.addFinalizer(() => flush)
        // The Clock's sleep, so tests move it with TestClock; the fiber ends with the layer.
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(intervalMs), flush)))
        return Refusals.of({
          refused: (refusal) =>
            Effect.suspend(() => {
              const key = `${refusal.event}\u0000${refusal.cause}\u0000${refusal.origin ?? ""}\u0000${refusal.peer}`
              const known = pending.get(key)
              if (known !== undefined) {
                known.count += 1
                return Effect.void
              }
              pending.set(key, { refusal, count: 1 })
              return pending.size >= MAX_PENDING ? flush : Effect.void
            }),
          flush
        })
      })
    )
}
