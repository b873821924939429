// In-memory session registry for a single node, which is then the whole gateway: the
// per-subject cap counts local sessions, and a revocation ends them directly (one process
// cannot miss its own announcement, so nothing needs re-checking later).
import { Clock, Effect, Layer } from "effect"
import { SessionRevoked, TooManySessions } from "../../domain/Errors.ts"
import { REVOCATION_TTL_S } from "../../domain/Limits.ts"
import type { Subject } from "../../domain/Principal.ts"
import { revokes, Sessions } from "../../services/Sessions.ts"
import { Settings } from "../../services/Settings.ts"
import { LocalSessions } from "../LocalSessions.ts"

export const layer = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const settings = yield* Settings
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
    return Sessions.of({
      register: (session) =>
        Effect.flatMap(revokedAt(session.subject), (at): Effect.Effect<Effect.Effect<void>, SessionRevoked | TooManySessions> => {
          if (revokes(at, session.issuedAt)) return Effect.fail(new SessionRevoked())
          if (live.count(session.subject) >= settings.maxSessionsPerSubject) return Effect.fail(new TooManySessions())
          const key = live.add(session)
          return Effect.succeed(Effect.sync(() => live.remove(key, session)))
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
