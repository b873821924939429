// Token buckets on Redis, one atomic script per take, so a limit holds across every node.
// Time comes from the caller's Clock (nodes' clocks agree to well under a refill step).
// A fast limit (a service's publishes) is not worth a round trip per request: the node leases a
// few tokens at a time from the shared bucket and spends them locally (see `leaseSize`).
import { Clock, Effect, Layer } from "effect"
import { RateLimited, Unavailable } from "../../domain/Errors.ts"
import { RateLimiter, type RateRule } from "../../services/RateLimiter.ts"
import { RedisClient } from "./Client.ts"
import { DataKeys } from "./DataKey.ts"
import { named } from "./Keys.ts"
import * as Script from "./Script.ts"

/**
 * The token bucket in Lua, for every script that takes tokens (this one, and the session's
 * opening in Sessions.ts): `take(bucket key, limit, window ms, now ms, most tokens wanted)`
 * answers the tokens taken (0 when refused) and the retry after ms. Numbers, not strings.
 */
export const TAKE_LUA = `
local function take(key, limit, window, now, wanted)
  local refill = window / limit
  local bucket = redis.call('HMGET', key, 't', 'u')
  local tokens = tonumber(bucket[1]) or limit
  local updated = tonumber(bucket[2]) or now
  tokens = math.min(limit, tokens + math.max(0, now - updated) / refill)
  local taken, retry = 0, 0
  if tokens >= 1 then taken = math.min(wanted, math.floor(tokens)); tokens = tokens - taken
  else retry = math.ceil((1 - tokens) * refill) end
  redis.call('HSET', key, 't', tostring(tokens), 'u', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(window * 2))
  return taken, retry
end
`

// KEYS: bucket. ARGV: limit, window ms, now ms, most tokens wanted.
// Returns {tokens taken (0 when refused), retry after ms}.
const TAKE = Script.make<[bucket: string], [limit: number, windowMs: number, now: number, wanted: number], [number, number]>(`${TAKE_LUA}
local taken, retry = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
return {taken, retry}
`)

/** How long a node may hold leased tokens before they lapse (unused ones are not returned). */
export const LEASE_MS = 1_000

/**
 * Tokens a node takes from the shared bucket at once: a hundredth of what the bucket refills
 * in a lease, so only limits of 200 a second or more are leased (a service's publishes, 5,000/s
 * by default); per-user and per-address limits stay one exact take per request.
 * Leasing never lets more through than the shared bucket gives: its only cost is that tokens
 * one node holds cannot be spent on another, and lapse unused after LEASE_MS.
 */
export const leaseSize = (rule: RateRule): number => Math.max(1, Math.floor((rule.limit * LEASE_MS) / rule.windowMs / 100))

interface Lease {
  tokens: number
  readonly until: number
}

/** Lapsed leases are swept when the map grows past this, so one-off keys cannot grow it without bound. */
const SWEEP_AT = 10_000

export const layer = Layer.effect(
  RateLimiter,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const keys = named((yield* DataKeys).name)
    const leases = new Map<string, Lease>()
    const unavailable = () => new Unavailable({ service: "rate-limiter" })

    const take = (key: string, rule: RateRule, now: number, wanted: number) =>
      Effect.flatMap(
        Effect.tryPromise({
          try: () => TAKE.run(redis, [keys.rate(key)], [rule.limit, rule.windowMs, now, wanted]),
          catch: unavailable
        }),
        ([taken, retryAfterMs]) => {
          if (taken > 1) lease(key, taken - 1, now)
          // The bucket is empty, but takes that went out beside this one may have leased tokens
          // meanwhile: those are this node's to spend, so a burst is not refused while it holds some.
          if (taken < 1 && !spend(key, now)) return Effect.fail(new RateLimited({ scope: rule.scope, retryAfterMs }))
          return Effect.void
        }
      )

    /** Spends one leased token, if the node holds one for the key. */
    const spend = (key: string, now: number): boolean => {
      const held = leases.get(key)
      if (held === undefined) return false
      if (held.until > now && held.tokens >= 1) {
        held.tokens -= 1
        return true
      }
      leases.delete(key)
      return false
    }

    // Tokens of concurrent takes add up in one lease; a lapsed lease is replaced, not added to.
    const lease = (key: string, tokens: number, now: number) => {
      const held = leases.get(key)
      if (held !== undefined && held.until > now) {
        held.tokens += tokens
        return
      }
      if (leases.size >= SWEEP_AT) for (const [k, l] of leases) if (l.until <= now) leases.delete(k)
      leases.set(key, { tokens, until: now + LEASE_MS })
    }

    return RateLimiter.of({
      consume: (key, rule) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const wanted = leaseSize(rule)
          if (wanted === 1) return take(key, rule, now, 1)
          return spend(key, now) ? Effect.void : take(key, rule, now, wanted)
        })
    })
  })
)
