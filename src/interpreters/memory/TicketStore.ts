// In-memory single-use tickets. Check-and-delete happens in one synchronous step, so no two
// fibers can both take a jti; expiry follows Effect's Clock so tests can move time.
import { Clock, Duration, Effect, Layer } from "effect"
import { TicketStore } from "../../services/TicketStore.ts"

export const layer = Layer.sync(TicketStore, () => {
  const expiries = new Map<string, number>()
  let puts = 0
  const prune = (now: number) => {
    for (const [jti, expiresAt] of expiries) if (expiresAt <= now) expiries.delete(jti)
  }
  return TicketStore.of({
    // Keyed by jti alone: it is unique, and the subject only places it on Redis.
    put: (_subject, jti, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (++puts % 1024 === 0) prune(now)
        expiries.set(jti, now + Duration.toMillis(ttl))
      }),
    take: (_subject, jti) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const expiresAt = expiries.get(jti)
        if (expiresAt === undefined) return false
        expiries.delete(jti)
        return expiresAt > now
      })
  })
})
