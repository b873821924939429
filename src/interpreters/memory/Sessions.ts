// In-memory session registry for a single node, which is then the whole gateway: the
// per-subject cap counts local sessions, and a revocation ends them directly (one process
// cannot miss its own announcement, so nothing needs re-checking later). Opening a session
// takes the ticket and the connect token from the node's own store and buckets.
import { Clock, Effect, Layer } from "effect"
import { SessionRevoked, TicketRejected, TooManySessions } from "../../domain/Errors.ts"
import { REVOCATION_TTL_S } from "../../domain/Limits.ts"
import type { Subject } from "../../domain/Principal.ts"
import { type LiveSession, revokes, Sessions } from "../../services/Sessions.ts"
import { RateLimiter } from "../../services/RateLimiter.ts"
import { Settings } from "../../services/Settings.ts"
import { TicketStore } from "../../services/TicketStore.ts"
import { LocalSessions } from "../LocalSessions.ts"

export const layer = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const settings = yield* Settings
    const tickets = yield* TicketStore
    const limiter = yield* RateLimiter
    const live = new LocalSessions((subject) => subject)
    const revoked = new Map<string, number>()
    const revokedAt = (subject: Subject) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const at = revoked.get(subject)
        if (at === undefined) return undefined
        if (at + REVOCATION_TTL_S * 1000 > now) return at
        revoked.delete(subject)
        return undefined
      })
    /** Holds the session within the cap; its release. */
    const add = (session: LiveSession): Effect.Effect<Effect.Effect<void>, TooManySessions> => {
      if (live.count(session.subject) >= settings.maxSessionsPerSubject) return Effect.fail(new TooManySessions())
      const key = live.add(session)
      return Effect.succeed(Effect.sync(() => live.remove(key, session)))
    }
    return Sessions.of({
      register: (session) =>
        Effect.flatMap(
          revokedAt(session.subject),
          (at): Effect.Effect<Effect.Effect<void>, SessionRevoked | TooManySessions> =>
            revokes(at, session.issuedAt) ? Effect.fail(new SessionRevoked()) : add(session)
        ),
      // One synchronous step in one process: nothing runs between the take and the registration.
      open: (session, jti, connect) =>
        Effect.gen(function*() {
          if (!(yield* tickets.take(session.subject, jti))) return yield* new TicketRejected({ cause: "used" })
          if (revokes(yield* revokedAt(session.subject), session.issuedAt)) return yield* new TicketRejected({ cause: "revoked" })
          yield* limiter.consume(`connect:${session.subject}`, connect)
          return yield* add(session)
        }),
      revoke: (subject, atMs) =>
        Effect.sync(() => {
          revoked.set(subject, atMs)
          for (const session of live.of(subject)) session.end(new SessionRevoked())
        }),
      revokedAt,
      local: (subject) => live.of(subject),
      everyLocal: () => live.all()
    })
  })
)
