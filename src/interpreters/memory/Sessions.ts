// In-memory session registry for a single node, which is then the whole gateway: the
// per-subject cap counts local sessions, and a revocation ends them directly (one process
// cannot miss its own announcement, so nothing needs re-checking later).
import { Clock, Effect, Layer } from "effect"
import { SessionRevoked, TooManySessions } from "../../domain/Errors.ts"
import { REVOCATION_TTL_S } from "../../domain/Limits.ts"
import type { Subject } from "../../domain/Principal.ts"
import { type LiveSession, revokes, Sessions } from "../../services/Sessions.ts"
import { Settings } from "../../services/Settings.ts"

export const layer = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const settings = yield* Settings
    const live = new Map<string, Set<LiveSession>>()
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
          const mine = live.get(session.subject) ?? new Set()
          if (mine.size >= settings.maxSessionsPerSubject) return Effect.fail(new TooManySessions())
          mine.add(session)
          live.set(session.subject, mine)
          return Effect.succeed(Effect.sync(() => {
            const mine = live.get(session.subject)
            mine?.delete(session)
            if (mine?.size === 0) live.delete(session.subject)
          }))
        }),
      revoke: (subject, atMs) =>
        Effect.sync(() => {
          revoked.set(subject, atMs)
          for (const session of live.get(subject) ?? []) session.end(new SessionRevoked())
        }),
      revokedAt,
      local: (subject) => [...(live.get(subject) ?? [])],
      everyLocal: () => [...live.values()].flatMap((sessions) => [...sessions])
    })
  })
)
