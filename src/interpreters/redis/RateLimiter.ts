// Token buckets on Redis, one atomic script per take, so a limit holds across every node.
// Time comes from the caller's Clock (nodes' clocks agree to well under a refill step).
import { Clock, Effect, Layer } from "effect"
import { RateLimited, Unavailable } from "../../domain/Errors.ts"
import { RateLimiter } from "../../services/RateLimiter.ts"
import { RedisClient } from "./Client.ts"
import { Keys } from "./Keys.ts"

// KEYS: bucket. ARGV: limit, window ms, now ms. Returns {ok, retry after ms}.
const TAKE = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local refill = window / limit
local bucket = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(bucket[1]) or limit
local updated = tonumber(bucket[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - updated) / refill)
local ok, retry = 0, 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 else retry = math.ceil((1 - tokens) * refill) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2))
return {ok, retry}
`

interface Scripted {
  tidingsTake(key: string, limit: number, windowMs: number, now: number): Promise<[number, number]>
}

export const layer = Layer.effect(
  RateLimiter,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    redis.defineCommand("tidingsTake", { numberOfKeys: 1, lua: TAKE })
    const scripted = redis as unknown as Scripted
    return RateLimiter.of({
      consume: (key, rule) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const [ok, retryAfterMs] = yield* Effect.tryPromise({
            try: () => scripted.tidingsTake(Keys.rate(key), rule.limit, rule.windowMs, now),
            catch: () => new Unavailable({ service: "rate-limiter" })
          })
          if (ok !== 1) return yield* new RateLimited({ scope: rule.scope, retryAfterMs })
        })
    })
  })
)
