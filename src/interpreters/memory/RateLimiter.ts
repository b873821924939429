// In-memory token buckets for one node, refilled by Effect's Clock. Idle full buckets are
// pruned now and then so a stream of one-off keys cannot grow the map without bound.
import { Clock, Effect, Layer } from "effect"
import { RateLimited } from "../../domain/Errors.ts"
import * as TokenBucket from "../../domain/TokenBucket.ts"
import { RateLimiter, type RateRule } from "../../services/RateLimiter.ts"

export const layer = Layer.sync(RateLimiter, () => {
  const buckets = new Map<string, { bucket: TokenBucket.Bucket; readonly rule: RateRule }>()
  let calls = 0
  return RateLimiter.of({
    consume: (key, rule) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (++calls % 4096 === 0) {
          for (const [k, entry] of buckets) if (TokenBucket.isFull(entry.bucket, entry.rule, now)) buckets.delete(k)
        }
        const taken = TokenBucket.take(buckets.get(key)?.bucket ?? TokenBucket.full(rule, now), rule, now)
        buckets.set(key, { bucket: taken.bucket, rule })
        return taken.ok
          ? Effect.void
          : Effect.fail(new RateLimited({ scope: rule.scope, retryAfterMs: taken.retryAfterMs }))
      })
  })
})
