// In-memory token buckets for one node, refilled by Effect's Clock. Idle full buckets are
// pruned now and then so a stream of one-off keys cannot grow the map without bound.
import { Clock, Effect, Layer } from "effect"
import { RateLimited } from "../../domain/Errors.ts"
import { RateLimiter } from "../../services/RateLimiter.ts"

export const layer = Layer.sync(RateLimiter, () => {
  const buckets = new Map<string, { tokens: number; updatedAt: number; readonly full: number; readonly refillMs: number }>()
  let calls = 0
  return RateLimiter.of({
    consume: (key, rule) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (++calls % 4096 === 0) {
          for (const [k, b] of buckets) if (b.tokens + (now - b.updatedAt) / b.refillMs >= b.full) buckets.delete(k)
        }
        const refillMs = rule.windowMs / rule.limit
        const bucket = buckets.get(key) ?? { tokens: rule.limit, updatedAt: now, full: rule.limit, refillMs }
        bucket.tokens = Math.min(rule.limit, bucket.tokens + (now - bucket.updatedAt) / refillMs)
        bucket.updatedAt = now
        buckets.set(key, bucket)
        if (bucket.tokens >= 1) {
          bucket.tokens -= 1
          return Effect.void
        }
        return Effect.fail(new RateLimited({ scope: rule.scope, retryAfterMs: Math.ceil((1 - bucket.tokens) * refillMs) }))
      })
  })
})
